"""Training, export, quantisation and evaluation. Needs the optional ``train`` extra (torch)."""
