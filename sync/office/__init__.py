"""The maintenance office's side: receive the fleet's messages, store them, export for GIS."""
