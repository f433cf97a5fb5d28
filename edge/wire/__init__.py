"""The vehicle ↔ office contract, imported by both sides: topics, ids (the one vehicle-id
pattern), the finding's dict form, JSON schemas for every message and their validators, and
the model-push message."""
