"""`roadpatrol model ...`: the technicians' commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.errors import UsageError
from edge.grading.manifest import ModelPackageError, load_manifest

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return
    print(f"images: {report['images']}   median latency: {report['latency_ms_median']} ms")
    print(f"image-level macro-F1: {report['macro_f1']}")
    if report.get("box_macro_f1") is not None:
        print(f"box-level macro-F1 (IoU ≥ 0.5): {report['box_macro_f1']}")
    print(
        f"{'class':6} {'P':>6} {'R':>6} {'F1':>6} {'n':>5}"
        + ("   box P  box R box F1" if "box_per_class" in report else "")
    )
    for code, m in report["per_class"].items():
        line = f"{code:6} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} {m['support']:5d}"
        if "box_per_class" in report:
            b = report["box_per_class"][code]
            line += f"  {b['precision']:6.3f} {b['recall']:6.3f} {b['f1']:6.3f}"
        print(line)
    if "confusion" in report:
        labels = list(report["confusion"])
        print("confusion (rows: truth, columns: predicted)")
        print("       " + " ".join(f"{x:>5}" for x in labels))
        for t in labels:
            print(f"{t:6} " + " ".join(f"{report['confusion'][t][p]:5d}" for p in labels))


def _grader(path: Path, threads: int | None) -> Any:
    from edge.grading.grader import Grader

    try:
        return Grader(path, threads=threads)
    except ModelPackageError as exc:
        raise UsageError(str(exc)) from exc


def cmd_train(args: argparse.Namespace) -> int:
    try:
        from models.training.train import TrainOptions, train
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"training needs the optional extra: pip install -e '.[train]' ({exc.name} missing)"
        ) from exc
    if not (args.data / "annotations" / "xmls").is_dir():
        raise UsageError(f"{args.data}: expected images/ and annotations/xmls/ inside")
    weights = train(
        TrainOptions(
            data=args.data,
            out=args.out,
            epochs=args.epochs,
            init=args.init,
            input_size=args.input_size,
            batch_size=args.batch_size,
            max_minutes=args.max_minutes,
            limit_images=args.limit_images,
            threads=args.threads,
            lr=args.lr,
            frozen_blocks=args.frozen_blocks,
            init_package=args.init_package,
            class_weights=tuple(args.class_weights) if args.class_weights else None,
        )
    )
    print(f"weights: {weights}  (resume: run the same command again)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from models.training.export import export_package

    if not (args.run / "training.json").is_file():
        raise UsageError(f"{args.run}: not a training output folder (no training.json)")
    print(
        export_package(
            args.run,
            args.out,
            name=args.name,
            version=args.version,
            image_head=not args.no_image_head,
        )
    )
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from models.quantize import EARLY_FP32_PREFIXES, quantize_package

    try:
        print(
            quantize_package(
                args.model,
                args.calib,
                args.out or args.model.parent,
                name=args.name,
                version=args.version,
                calib_images=args.calib_images,
                calibration=args.calibration,
                refit_head_voc=_labels_for(args),
                fp32_heads=not args.int8_heads,
                fp32_prefixes=()
                if args.int8_early_layers
                else tuple(args.fp32_prefix or EARLY_FP32_PREFIXES),
            )
        )
    except (ModelPackageError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc
    return 0


def _labels_for(args: argparse.Namespace) -> Path | None:
    """The VOC folder whose training split refits the image head: --labels, or the calibration
    folder's parent when that is an RDD layout (images/ beside annotations/xmls/)."""
    if args.labels is not None:
        return Path(args.labels)
    parent = Path(args.calib).parent
    return parent if (parent / "annotations" / "xmls").is_dir() else None


def cmd_inspect(args: argparse.Namespace) -> int:
    try:
        manifest = load_manifest(args.file)
    except ModelPackageError as exc:
        raise UsageError(str(exc)) from exc
    grader = _grader(args.file, 1)
    print(manifest.to_json(), end="")
    print(
        f"OK: {grader.model_path.name} matches its manifest (sha256, {manifest.file_bytes} bytes, "
        f"input 1×3×{manifest.input.height}×{manifest.input.width}, "
        f"{len(manifest.classes)} classes)",
        file=sys.stderr,
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate_folders, evaluate_voc

    if (args.voc is None) == (args.folders is None):
        raise UsageError("give exactly one of --voc DIR or --folders DIR")
    grader = _grader(args.model, args.threads)
    try:
        if args.voc is not None:
            report = evaluate_voc(grader, args.voc, args.split)
        else:
            report = evaluate_folders(grader, args.folders)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc
    report = {"model": grader.model_id, **report}
    _print_report(report, args.json)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Pick per-class thresholds on labelled images, then record them and the metrics."""
    from models.evaluate import collect_voc, cross_tuned, tune_thresholds, voc_report
    from models.package import update_manifest

    grader = _grader(args.model, args.threads)
    try:
        results = collect_voc(grader, args.voc, args.split)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc
    thresholds = tune_thresholds(results, grader.manifest)
    report = voc_report(results, grader.manifest, thresholds)
    manifest = load_manifest(args.model)
    classes = [
        {
            **c.model_dump(),
            "threshold": thresholds[c.code][0],
            "image_threshold": thresholds[c.code][1],
        }
        for c in manifest.classes
    ]
    metrics = {
        **report,
        "evaluated_on": f"{args.voc.name} ({args.split} split)",
        "thresholds_tuned_on": f"{args.voc.name} ({args.split} split): per class, maximising "
        "image-level F1 + box-level F1",
        "threads": args.threads,
        "cross_tuned": cross_tuned(results, grader.manifest),
    }
    update_manifest(args.model, classes=classes, metrics=metrics)
    print(
        json.dumps(
            {
                "model": grader.model_id,
                "thresholds": thresholds,
                **report,
                "cross_tuned": metrics["cross_tuned"],
            }
        )
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    model = sub.add_parser("model", help="train, export, quantise, inspect and evaluate models")
    msub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    p = msub.add_parser("train", help="train on an RDD/VOC folder (needs the train extra)")
    p.add_argument(
        "--data", type=Path, required=True, help="folder with images/ and annotations/xmls/"
    )
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints; resumable)")
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--init", choices=["pretrained", "scratch"], default="pretrained")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--max-minutes", type=float, default=None, help="stop after the epoch that passes it"
    )
    p.add_argument(
        "--limit-images", type=int, default=None, help="train on the first N images only"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (AdamW, cosine)")
    p.add_argument(
        "--init-package",
        type=Path,
        default=None,
        help="fine-tune from this package's FP32 network (at --input-size) instead of ImageNet",
    )
    p.add_argument(
        "--frozen-blocks",
        type=int,
        default=3,
        help="EfficientNet blocks kept frozen after the stem (11: the whole stride-16 trunk)",
    )
    p.add_argument(
        "--class-weights",
        type=float,
        nargs=4,
        metavar=("D00", "D10", "D20", "D40"),
        default=None,
        help="heat-map loss weight per class (default 1 each)",
    )
    p.set_defaults(handler=cmd_train)

    p = msub.add_parser("export", help="export a training run to an FP32 ONNX package")
    p.add_argument("--run", type=Path, required=True, help="training run folder")
    p.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR)
    p.add_argument("--name", default="road-damage-fp32")
    p.add_argument(
        "--no-image-head",
        action="store_true",
        help="skip the image-level head (fitted on the run's training split)",
    )
    p.add_argument("--version", required=True)
    p.set_defaults(handler=cmd_export)

    p = msub.add_parser("quantize", help="static INT8 (QDQ, per-channel) quantisation")
    p.add_argument("model", type=Path, help="FP32 package (.onnx or .json)")
    p.add_argument("--calib", type=Path, required=True, help="folder of real road images")
    p.add_argument("--calib-images", type=int, default=300)
    p.add_argument("--calibration", choices=["minmax", "percentile", "entropy"], default="minmax")
    p.add_argument("--int8-heads", action="store_true", help="quantise the output layers too")
    p.add_argument(
        "--fp32-prefix",
        action="append",
        metavar="NODE_PREFIX",
        help="keep graph nodes whose name starts with this in FP32 (repeatable; default: the "
        "stem and first three blocks of EfficientNet-Lite0)",
    )
    p.add_argument(
        "--int8-early-layers",
        action="store_true",
        help="quantise the stem and first blocks too (faster, box-level F1 about 0.03 lower)",
    )
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="VOC folder whose training split refits the image head on INT8 features "
        "(default: the calibration folder's parent when it has annotations/xmls)",
    )
    p.add_argument("--out", type=Path, default=None, help="default: beside the FP32 package")
    p.add_argument("--name", default="road-damage")
    p.add_argument("--version", required=True)
    p.set_defaults(handler=cmd_quantize)

    p = msub.add_parser("inspect", help="print a manifest and check hash and shapes")
    p.add_argument("file", type=Path, help="package .onnx or .json")
    p.set_defaults(handler=cmd_inspect)

    p = msub.add_parser(
        "tune", help="set per-class thresholds from labelled images; record metrics"
    )
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--voc", type=Path, required=True)
    p.add_argument("--split", choices=["all", "train", "val"], default="val")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(handler=cmd_tune)

    p = msub.add_parser("evaluate", help="precision/recall/F1 on labelled images")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--voc", type=Path, default=None, help="images/ + annotations/xmls/")
    p.add_argument("--folders", type=Path, default=None, help="one sub-folder per type code")
    p.add_argument(
        "--split",
        choices=["all", "train", "val"],
        default="all",
        help="with --voc: the fixed train/validation split, or every image",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_evaluate)
    from models.gate_cli import add_compare

    add_compare(msub)

    from edge.model_store.cli import add_commands
    from models.adapt_cli import add_adapt

    add_adapt(msub)
    add_commands(msub)
