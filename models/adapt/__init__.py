"""`model adapt`: fine-tune a shipped package on the office's graded images (needs torch)."""
