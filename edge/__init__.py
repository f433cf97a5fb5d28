"""Vehicle-side recorder: capture, GPS, grading, geotagging, the outbox and the CLI."""

__version__ = "0.1.0"
