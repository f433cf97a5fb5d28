"""The vehicle's model store: verified, signed packages in the data directory, one active."""

from edge.model_store.signing import generate_keypair, sign_manifest, verify_signature
from edge.model_store.store import ModelStore, StoreEntry
from edge.model_store.verify import verify_package

__all__ = [
    "ModelStore",
    "StoreEntry",
    "generate_keypair",
    "sign_manifest",
    "verify_package",
    "verify_signature",
]
