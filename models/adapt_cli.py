"""`roadpatrol model adapt`: retrain a shipped package on the office's graded images."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from edge.errors import UsageError
from edge.grading.manifest import ModelPackageError, load_manifest
from models.adapt import trained_part

_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def _check_request(args: argparse.Namespace) -> None:
    """Everything that can be refused before a single file is written."""
    if not _VERSION.match(args.version):
        raise UsageError(f"--version {args.version!r}: expected X.Y.Z")
    if args.epochs < 1:
        raise UsageError(f"--epochs {args.epochs}: give at least 1")
    why = trained_part.problem(args.train_from_block, args.keep_boxes)
    if why is not None:
        raise UsageError(f"--train-from-block {why}")
    try:
        base = load_manifest(args.base.with_suffix(".json"))
    except ModelPackageError as exc:
        raise UsageError(f"--base: {exc}") from exc
    if base.version == args.version:
        raise UsageError(f"--version {args.version}: the base already has that version")
    if not (args.voc / "annotations" / "xmls").is_dir() or not (args.voc / "images").is_dir():
        raise UsageError(f"--voc {args.voc}: expected images/ and annotations/xmls/ inside")
    for name in (args.name, args.fp32_name):
        for suffix in (".json", ".onnx"):
            target = args.out / f"{name}-{args.version}{suffix}"
            if target.exists():
                raise UsageError(f"--out: {target} exists already; choose another --version")


def cmd_adapt(args: argparse.Namespace) -> int:
    from models.adapt.graded import (
        GradedDataError,
        choose_holdout,
        image_digest,
        leave_out,
        read_graded,
        split_holdout,
    )

    _check_request(args)
    try:
        graded = read_graded(list(args.graded))
        graded = leave_out(graded, list(args.leave_out), args.holdout)
        holdout = choose_holdout(graded, args.holdout)
        train_g, _ = split_holdout(graded, holdout)
    except GradedDataError as exc:
        raise UsageError(str(exc)) from exc
    try:
        import torch  # noqa: F401

        from models.adapt.pipeline import AdaptRequest, adapt, trained_on
        from models.adapt.train import AdaptOptions, resume_mismatch
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"training needs the optional extra: pip install -e '.[train]' ({exc.name} missing)"
        ) from exc
    # Each training image is read once here: the resume check and the provenance share it.
    digests = tuple(image_digest(g.path) for g in train_g)
    base_manifest = load_manifest(args.base.with_suffix(".json"))
    options = AdaptOptions(
        run=args.run, epochs=args.epochs, keep_boxes=args.keep_boxes, lr=args.lr,
        graded_per_step=args.graded_per_step, rdd_per_step=args.rdd_per_step,
        threads=args.threads, max_steps=args.max_steps, views=args.views,
        train_from_block=args.train_from_block,
        graded_weight=args.graded_weight, class_balance=args.class_balance,
        graded_loss=args.graded_loss, seed=args.seed,
        trained_on=trained_on(base_manifest, train_g, digests, args.voc),
    )  # fmt: skip
    mismatch = resume_mismatch(options)
    if mismatch is not None:
        raise UsageError(f"--run: {mismatch}")
    request = AdaptRequest(
        base=args.base, graded=tuple(args.graded), voc=args.voc, out=args.out,
        version=args.version, options=options, train_digests=digests, holdout=holdout,
        name=args.name, fp32_name=args.fp32_name, rehearsal_images=args.rehearsal_images,
        threads=args.threads,
    )  # fmt: skip
    left = "".join(f"; left out: {g} ({n})" for g, n in graded.left_out)
    print(
        f"graded: {len(graded.images)} images in {len(graded.groups())} group(s); "
        f"held out: {holdout or 'none (one group only)'}{left}"
    )
    summary = adapt(request, graded, holdout)
    for group, folder in summary["left_out"].items():
        print(f"left out {group}: its images are in {folder} (unseen: fit for --folders)")
    print(json.dumps(summary))
    return 0


def add_adapt(msub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = msub.add_parser(
        "adapt", help="fine-tune a package on office-graded images (needs the train extra)"
    )
    p.add_argument("--base", type=Path, required=True, help="package to start from (.json)")
    p.add_argument(
        "--graded", type=Path, action="append", required=True,
        help="a folder as `office export-graded` writes it (D00/ D10/ D20/ D40/ none/); "
        "repeatable",
    )  # fmt: skip
    p.add_argument(
        "--voc", type=Path, required=True,
        help="the base's RDD training folder (images/ + annotations/xmls/): rehearsal, "
        "calibration, and its validation split for thresholds and figures",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="folder for the two packages")
    p.add_argument("--version", required=True, help="X.Y.Z of the new packages")
    p.add_argument(
        "--run", type=Path, default=None,
        help="work folder (feature cache, checkpoints, held-out images); run the same "
        "command again to resume. Default: ~/.cache/roadpatrol/adapt-NAME-VERSION",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=6, help="passes over the graded images")
    p.add_argument(
        "--max-steps", type=int, default=None, help="stop after this many steps (smoke tests)"
    )
    p.add_argument(
        "--holdout", default=None,
        help="group (city, or capture week) kept out of training for the gate; default: the "
        "one closest to a fifth of the images",
    )  # fmt: skip
    p.add_argument(
        "--leave-out", action="append", default=[], metavar="GROUP",
        help="group neither trained on nor held out (repeatable): to check whether a city's "
        "or week's verdicts help the others, or to keep them out of a fleet model",
    )  # fmt: skip
    p.add_argument(
        "--keep-boxes", choices=["rehearsal", "distill", "frozen"], default="rehearsal",
        help="how the box head keeps its knowledge (see models/adapt/train.py)",
    )  # fmt: skip
    p.add_argument(
        "--train-from-block", type=int, default=trained_part.DEFAULT_FIRST, metavar="5..11",
        help="first backbone block that trains: 11 the stride-32 blocks only (default); "
        "5-10 also stride-16 blocks from that one (slower steps, features cached before it)",
    )  # fmt: skip
    p.add_argument(
        "--views", type=int, default=4,
        help="cached views per graded image: itself and VIEWS-1 augmented copies",
    )  # fmt: skip
    p.add_argument(
        "--graded-weight", type=float, default=1.0, help="weight of the graded images' losses"
    )
    p.add_argument(
        "--class-balance", type=float, default=0.5,
        help="graded images are drawn with weight (images of their class)^-B: 0 as they "
        "come, 1 every class alike",
    )  # fmt: skip
    p.add_argument(
        "--graded-loss", choices=["independent", "one-of"], default="independent",
        help="independent: a yes/no per type (BCE); one-of: a verdict is one type or none, so "
        "the types compete (softmax with a fixed none logit), as the image head's refit does",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=int, default=0,
        help="random seed of the batches (which graded images, which cached view, mirrored "
        "or not); one run's held-out figures move by a few hundredths with it, so compare "
        "recipes over two seeds",
    )  # fmt: skip
    p.add_argument("--rehearsal-images", type=int, default=640)
    p.add_argument("--graded-per-step", type=int, default=8)
    p.add_argument("--rdd-per-step", type=int, default=8)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--name", default="road-damage")
    p.add_argument("--fp32-name", default="road-damage-fp32")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(handler=_with_default_run)


def _with_default_run(args: argparse.Namespace) -> int:
    if args.run is None:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        args.run = cache / "roadpatrol" / f"adapt-{args.name}-{args.version}"
    return cmd_adapt(args)
