"""`roadpatrol model list|install|activate|rollback|keygen|sign`: models on a vehicle.

`sign --activate-on-arrival` writes the decision into the manifest before signing it, so a
pushed package is activated only when its signer said so.

Exit 0 on success, 1 when a package is refused or the store cannot change (nothing changed),
2 for misuse of the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from edge.config.loader import load_config
from edge.errors import UsageError
from edge.grading.manifest import ModelPackageError, load_manifest
from edge.model_store import ModelStore, generate_keypair, sign_manifest


def _store(args: argparse.Namespace) -> ModelStore:
    if (args.data_dir is None) == (args.config is None):
        raise UsageError("give exactly one of --data-dir DIR or --config FILE")
    extra_keys = tuple(args.trusted_key or ())
    if args.config is not None:
        config = load_config(args.config)  # a ConfigError is shown by edge.cli, exit 2
        store = ModelStore.from_config(config)
        return ModelStore(store.root, store.trusted_keys + extra_keys)
    return ModelStore(args.data_dir / "models", extra_keys)


def _refused(exc: Exception) -> int:
    print(f"refused: {exc}", file=sys.stderr)
    return 1


def cmd_list(args: argparse.Namespace) -> int:
    try:
        entries = _store(args).entries()
    except ModelPackageError as exc:
        return _refused(exc)
    if args.json:
        rows = [{**asdict(e), "manifest_path": str(e.manifest_path)} for e in entries]
        print(json.dumps({"models": rows}))
        return 0
    if not entries:
        print("no models installed (the shipped default package is used)")
    for e in entries:
        mark = "*" if e.active else ("-" if e.previous else " ")
        print(f"{mark} {e.model_id:32} {e.precision:5} {e.file_bytes:>10} bytes")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        result = store.install(
            args.package, activate=args.activate, allow_downgrade=args.allow_downgrade
        )
    except (ModelPackageError, OSError) as exc:
        return _refused(exc)
    state = "already installed" if result.already_installed else "installed"
    print(f"{result.model_id}: {state}{', active' if result.activated else ''}")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    try:
        before = _store(args).activate(args.model_id)
    except (ModelPackageError, OSError) as exc:
        return _refused(exc)
    print(f"{args.model_id}: active (was {before or 'the shipped default'})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    try:
        model_id = _store(args).rollback()
    except (ModelPackageError, OSError) as exc:
        return _refused(exc)
    print(f"{model_id}: active again")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    try:
        private_path, public_path = generate_keypair(args.out)
    except FileExistsError as exc:
        return _refused(exc)
    print(f"private key (keep in the office): {private_path}")
    print(f"public key (vehicles' [model] trusted_keys): {public_path}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    try:
        sig_path = sign_manifest(
            args.package, args.key, activate_on_arrival=args.activate_on_arrival
        )
        on_arrival = load_manifest(args.package).activate_on_arrival
    except (ModelPackageError, OSError) as exc:
        return _refused(exc)
    print(sig_path)  # alone on stdout, for scripts
    print(f"activate_on_arrival: {str(on_arrival).lower()}", file=sys.stderr)
    return 0


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="vehicle data directory")
    p.add_argument("--config", type=Path, default=None, help="vehicle config file (TOML)")
    p.add_argument(
        "--trusted-key",
        type=Path,
        action="append",
        help="public key file trusted besides the config's (repeatable)",
    )


def add_commands(msub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = msub.add_parser("list", help="packages in the vehicle's model store (* active)")
    _store_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)

    p = msub.add_parser("install", help="verify a signed package and copy it into the store")
    p.add_argument("package", type=Path, help="package .json or .onnx (with its .sig)")
    p.add_argument("--activate", action="store_true", help="make it active once installed")
    p.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="install a version older than the newest of its name installed here",
    )
    _store_options(p)
    p.set_defaults(handler=cmd_install)

    p = msub.add_parser("activate", help="make an installed package active (atomic)")
    p.add_argument("model_id", metavar="NAME-VERSION")
    _store_options(p)
    p.set_defaults(handler=cmd_activate)

    p = msub.add_parser("rollback", help="make the previously active package active again")
    _store_options(p)
    p.set_defaults(handler=cmd_rollback)

    p = msub.add_parser("keygen", help="new Ed25519 signing key pair (office side)")
    p.add_argument("--out", type=Path, required=True, help="folder for the key files")
    p.set_defaults(handler=cmd_keygen)

    p = msub.add_parser("sign", help="sign a package's manifest (writes PKG's .sig)")
    p.add_argument("package", type=Path, help="package .json or .onnx")
    p.add_argument("--key", type=Path, required=True, help="private key file (PEM)")
    p.add_argument(
        "--activate-on-arrival",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the manifest's activate_on_arrival before signing: whether a vehicle "
        "activates the package when `office push-model` delivers it (default: keep the "
        "manifest's value; a manifest without it says false)",
    )
    p.set_defaults(handler=cmd_sign)
