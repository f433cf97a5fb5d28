"""`roadpatrol privacy check IMAGE... [--out DIR]`: what the anonymiser finds, for a technician.

It runs the same detectors with the same settings as the recorder (from ``--config`` or the
defaults) and writes each anonymised image to ``--out`` for a look, printing the regions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

from edge.config.loader import load_config
from edge.config.privacy import PrivacyConfig
from edge.privacy.anonymise import Anonymiser, encode_jpeg
from edge.privacy.detect import PrivacyError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    privacy = subparsers.add_parser("privacy", help="Check the face/plate anonymiser.")
    actions = privacy.add_subparsers(dest="privacy_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="Anonymise images and print what was found.",
        description="Detect and blur plates in IMAGEs as the recorder would; print the "
        "regions found and write the anonymised images to --out.",
    )
    check.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    check.add_argument("--out", type=Path, help="Write the anonymised images here.")
    check.add_argument("--config", type=Path, help="Take [privacy] from this vehicle file.")
    check.add_argument("--json", action="store_true", help="One JSON object per image.")
    check.set_defaults(handler=run_check)


def _settings(path: Path | None) -> PrivacyConfig:
    if path is None:
        return PrivacyConfig()
    return load_config(path).privacy  # a ConfigError is shown by edge.cli, exit 2


def run_check(args: argparse.Namespace) -> int:
    config = _settings(args.config)
    try:
        anonymiser = Anonymiser(config.model_copy(update={"enabled": True}))
    except PrivacyError as exc:
        print(f"roadpatrol privacy check: {exc}", file=sys.stderr)
        return 1
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in args.images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"{path}: not a readable image", file=sys.stderr)
            failed += 1
            continue
        result = anonymiser.anonymise(image)
        regions = [
            {"kind": r.kind, "box_px": [r.x0_px, r.y0_px, r.x1_px, r.y1_px], "score": r.score}
            for r in result.regions
        ]
        written = None
        if args.out is not None:
            written = args.out / f"{path.stem}.anonymised.jpg"
            written.write_bytes(encode_jpeg(result.image, 90))
        if args.json:
            doc = {"image": str(path), "regions": regions, "out": written and str(written)}
            print(json.dumps({**doc, "detect_ms": round(result.detect_ms, 1)}))
        else:
            print(f"{path}: {len(regions)} region(s) blurred in {result.detect_ms:.0f} ms")
            for r in regions:
                print(f"  {r['kind']} {r['box_px']} score {r['score']:.2f}")
    print(f"by {anonymiser.by}", file=sys.stderr)
    anonymiser.close()
    return 1 if failed else 0
