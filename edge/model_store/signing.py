"""Ed25519 signatures over a package's manifest bytes.

The manifest carries the model file's sha256, so signing the manifest vouches for the model
too. The signature lives beside the manifest as ``<stem>.sig`` (64 raw bytes).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.grading.manifest import ModelPackageError, manifest_path_for, set_activate_on_arrival

PRIVATE_KEY_NAME = "model-signing.key"
PUBLIC_KEY_NAME = "model-signing.pub"
SIGNATURE_SUFFIX = ".sig"


def signature_path_for(package: Path) -> Path:
    return manifest_path_for(package).with_suffix(SIGNATURE_SUFFIX)


def generate_keypair(out_dir: Path) -> tuple[Path, Path]:
    """Write a new private key (mode 0600) and its public key; refuse to overwrite either."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / PRIVATE_KEY_NAME, out_dir / PUBLIC_KEY_NAME
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path}: already exists; not overwriting a signing key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelPackageError(
            f"{path}: not a readable unencrypted PEM private key ({exc})"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ModelPackageError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ModelPackageError(f"{path}: not a readable PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ModelPackageError(f"{path}: not an Ed25519 public key")
    return key


def sign_manifest(
    package: Path, key_file: Path, *, activate_on_arrival: bool | None = None
) -> Path:
    """Sign the package's manifest bytes with ``key_file``; returns the written .sig path.

    ``activate_on_arrival`` (when not None) is written into the manifest first, so the signed
    bytes carry the decision. The key is loaded before anything changes: a wrong key file
    leaves the manifest as it was.
    """
    manifest_path = manifest_path_for(package)
    key = load_private_key(key_file)
    if activate_on_arrival is not None:
        set_activate_on_arrival(manifest_path, activate_on_arrival)
    try:
        data = manifest_path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelPackageError(f"{manifest_path}: manifest not found") from exc
    signature = key.sign(data)
    sig_path = signature_path_for(manifest_path)
    tmp = sig_path.with_name(sig_path.name + ".tmp")
    tmp.write_bytes(signature)
    tmp.replace(sig_path)
    return sig_path


def verify_signature(package: Path, trusted_keys: tuple[Path, ...]) -> Path:
    """Return the public key file that vouches for the manifest; raise naming why none does."""
    manifest_path = manifest_path_for(package)
    sig_path = signature_path_for(manifest_path)
    if not trusted_keys:
        raise ModelPackageError(
            f"{manifest_path}: no trusted public key configured ([model] trusted_keys), "
            "so no package can be verified"
        )
    if not sig_path.is_file():
        raise ModelPackageError(f"{sig_path}: package is unsigned (signature file missing)")
    signature = sig_path.read_bytes()
    data = manifest_path.read_bytes()
    for key_path in trusted_keys:
        try:
            load_public_key(key_path).verify(signature, data)
        except InvalidSignature:
            continue
        return key_path
    raise ModelPackageError(
        f"{sig_path}: signature does not verify against any trusted key "
        f"({', '.join(str(k) for k in trusted_keys)}): signed by an unknown key, "
        "or the manifest was changed after signing"
    )
