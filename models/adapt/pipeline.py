"""`model adapt` from end to end: check the graded folders, fine-tune, export, tune, quantise.

Steps (each writes into the run folder or the output folder, and the run is resumable: the
cached features and the last checkpoint are reused when the command is run again):

1. read and check every graded folder (nothing is written before this passes);
2. hold out one group (a city) for the gate, and write it as label folders in the run folder;
3. cache the frozen trunk's features; fine-tune (``models.adapt.train``);
4. export the FP32 package, refit its image head on the RDD training split plus the graded
   training images (as the base's recipe does), tune thresholds;
5. quantise with the base's recipe (static QDQ INT8, the early blocks kept FP32, image head
   refitted on the INT8 features), tune thresholds; record the figures and the provenance.

Neither package is marked ``default_for_vehicles``: `model compare --gate` does that when the
new model is no worse than the base.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.grading.grader import Grader
from edge.grading.manifest import ModelManifest, load_manifest
from models.adapt import trained_part
from models.adapt.graded import GradedImage, GradedSet, split_holdout, write_tree
from models.adapt.train import AdaptOptions
from models.training.dataset import Box, Sample

HELDOUT_PREFIX = "heldout-"
LEFT_OUT_PREFIX = "leftout-"


@dataclass(frozen=True)
class AdaptRequest:
    base: Path
    graded: tuple[Path, ...]
    voc: Path  # the base's RDD training folder: rehearsal, calibration, validation split
    out: Path
    version: str
    options: AdaptOptions
    train_digests: tuple[str, ...]  # image_digest of each graded training image, read once
    holdout: str | None = None
    name: str = "road-damage"
    fp32_name: str = "road-damage-fp32"
    rehearsal_images: int = 640
    threads: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


def as_samples(images: list[GradedImage]) -> tuple[Sample, ...]:
    """Graded images as image-level samples: one whole-frame box of the label's type, none for
    ``none`` (the head refit reads only which types a sample shows)."""
    return tuple(
        Sample(g.path, 1, 1, () if g.label == "none" else (Box(g.label, 0.0, 0.0, 1.0, 1.0),))
        for g in images
    )


def trained_on(
    base: ModelManifest, train_g: list[GradedImage], digests: tuple[str, ...], voc: Path
) -> str:
    """What a run trains on, in one line its checkpoint keeps: the base package, the graded
    training images (their labels and file digests, ``digests[i]`` of ``train_g[i]``: another
    --graded, --holdout or --leave-out gives another set) and the RDD folder. A run folder
    resumes only on the same, since the checkpoint's weights and the cached features belong
    to it."""
    digest = hashlib.sha256()
    for line in sorted(f"{g.label}/{d}" for g, d in zip(train_g, digests, strict=True)):
        digest.update(f"{line}\n".encode())
    return (
        f"base {base.model_id} (sha256 {base.sha256[:12]}), {len(train_g)} graded images "
        f"(sha256 {digest.hexdigest()[:12]}), RDD {voc.resolve()}"
    )


def _rehearsal(voc: Path, limit: int) -> tuple[list[Sample], list[Sample]]:
    from models.training.dataset import load_voc_dir, split
    from models.training.spec import CLASS_CODES

    train, _ = split(load_voc_dir(voc, CLASS_CODES))
    step = max(1, len(train) // max(1, limit))
    return train, train[::step][:limit]


def fine_tuned_model(
    req: AdaptRequest, train_g: list[GradedImage]
) -> tuple[Any, ModelManifest, list[dict[str, float]], int]:
    """The base network fine-tuned on the graded training images (resuming when it can)."""
    from models.adapt.base_weights import load_base
    from models.adapt.features import cache_folder, graded_views, trunk_features
    from models.adapt.train import fine_tune

    model, base_manifest = load_base(req.base)
    size = base_manifest.input.width
    last_frozen = req.options.last_frozen_block
    cache = cache_folder(req.options.run, last_frozen)
    _, rehearsal = _rehearsal(req.voc, req.rehearsal_images)
    graded_f = graded_views(
        model, [g.path for g in train_g], size, cache, req.options.views, last_frozen
    )
    rdd_f = None
    if req.options.keep_boxes != "frozen":
        rdd_f = trunk_features(
            model, [s.image_path for s in rehearsal], size, cache / "rdd", "RDD features",
            last_frozen=last_frozen,
        )  # fmt: skip
    history = fine_tune(model, size, (train_g, graded_f), (rehearsal, rdd_f), req.options)
    return model, base_manifest, history, len(rehearsal)


def export_fp32(
    req: AdaptRequest, model: Any, base: ModelManifest, training: dict[str, Any]
) -> Path:
    from models.package import write_package
    from models.training.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        onnx_tmp = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_tmp, base.input.width)
        return write_package(
            onnx_tmp, req.out, name=req.fp32_name, version=req.version, precision="fp32",
            input_spec=base.input, output_spec=base.output, classes=base.classes,
            grade_rules=base.grade_rules, training=training,
        )  # fmt: skip


def refit_and_tune(
    manifest_path: Path,
    req: AdaptRequest,
    train_g: list[GradedImage],
    held: list[GradedImage],
    refit: bool,
) -> dict[str, Any]:
    """Refit the image head (FP32 only: quantize does its own), tune thresholds on the RDD
    validation split and the graded training images, and record the figures."""
    from models.adapt.tuning import collect_graded, folder_report, tune_with_graded
    from models.evaluate import collect_voc, cross_tuned, voc_report
    from models.head_refit import refit_image_head
    from models.package import update_manifest

    manifest = load_manifest(manifest_path)
    if refit:
        rdd_train, _ = _rehearsal(req.voc, 10**9)
        onnx_path = manifest_path.with_suffix(".onnx")
        refit_image_head(
            onnx_path, manifest, rdd_train, manifest.class_codes(), as_samples(train_g)
        )
        from edge.grading.manifest import sha256_of

        update_manifest(
            manifest_path, sha256=sha256_of(onnx_path), file_bytes=onnx_path.stat().st_size
        )
    grader = Grader(manifest_path, threads=req.threads)
    rdd = collect_voc(grader, req.voc, "val")
    graded = collect_graded(grader, train_g)
    thresholds = tune_with_graded(rdd, graded, grader.manifest)
    classes = [
        {**c.model_dump(), "threshold": thresholds[c.code][0],
         "image_threshold": thresholds[c.code][1]}
        for c in grader.manifest.classes
    ]  # fmt: skip
    metrics: dict[str, Any] = {
        **voc_report(rdd, grader.manifest, thresholds),
        "evaluated_on": f"{req.voc.name} (val split)",
        "thresholds_tuned_on": f"{req.voc.name} (val split) and the graded training images: "
        "per class, image-level F1 + box-level F1 + graded macro-F1",
        "threads": req.threads,
        "cross_tuned": cross_tuned(rdd, grader.manifest),
        "office_train": folder_report(graded, grader.manifest, thresholds),
    }
    if held:
        report = folder_report(collect_graded(grader, held), grader.manifest, thresholds)
        metrics["office_heldout"] = {**report, "group": held[0].group}
    update_manifest(manifest_path, classes=classes, metrics=metrics)
    return metrics


def provenance(
    req: AdaptRequest,
    graded: GradedSet,
    holdout: str | None,
    history: list[dict[str, float]],
    base: ModelManifest,
    rehearsal_images: int,
) -> dict[str, Any]:
    given = load_manifest(req.base.with_suffix(".json"))
    trained = [g for g in graded.images if g.group != holdout]
    return {
        **base.training,
        "adapted_from": {
            "package": given.model_id,
            "sha256": given.sha256,
            "weights_from": base.model_id,
        },
        "adapted_utc": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "graded_sources": list(graded.sources),
        "heldout_group": holdout,
        "graded_left_out_groups": dict(graded.left_out),
        "graded_train_images": len(trained),
        "graded_heldout_images": len(graded.images) - len(trained),
        # What the gate checks its folders against: a model scored on images (or on a city)
        # it was trained on says nothing about roads it has not seen.
        "graded_train_groups": sorted({g.group for g in trained}),
        "graded_train_sha256_16": sorted(req.train_digests),
        "adapt": {
            "keep_boxes": req.options.keep_boxes,
            "trained": trained_part.describe(req.options.train_from_block),
            "train_from_block": req.options.train_from_block,
            "epochs": req.options.epochs,
            "graded_per_step": req.options.graded_per_step,
            "graded_views": req.options.views,
            "class_balance": req.options.class_balance,
            "graded_loss": req.options.graded_loss,
            "rdd_per_step": req.options.rdd_per_step if req.options.keep_boxes != "frozen" else 0,
            "rehearsal_images": rehearsal_images,
            "lr": req.options.lr,
            "seed": req.options.seed,
            "history": history,
        },
        "image_head": "logistic regression on pooled stride-32 features of the RDD training "
        "split (one-vs-rest per type) and the graded training images with their mirror images "
        "(each one type or none: softmax with a fixed none logit)",
        **req.extra,
    }


def _write_left_out(graded: GradedSet, run: Path) -> dict[str, str]:
    """Each left-out group's images as label folders (``RUN/leftout-GROUP/``): the model never
    sees them, so `model compare --folders` can score it on them as on the held-out group."""
    folders = {}
    for group, _ in graded.left_out:
        images = [i for i in graded.left_out_images if i.group == group]
        folders[group] = str(write_tree(images, run / f"{LEFT_OUT_PREFIX}{group}"))
    return folders


def adapt(req: AdaptRequest, graded: GradedSet, holdout: str | None) -> dict[str, Any]:
    """Run the whole adaptation; ``graded`` has been read and checked already."""
    from models.quantize import EARLY_FP32_PREFIXES, quantize_package

    train_g, held = split_holdout(graded, holdout)
    run = req.options.run
    run.mkdir(parents=True, exist_ok=True)
    heldout_dir = write_tree(held, run / f"{HELDOUT_PREFIX}{holdout}") if held else None
    left_dirs = _write_left_out(graded, run)
    model, base, history, n_rehearsal = fine_tuned_model(req, train_g)
    training = provenance(req, graded, holdout, history, base, n_rehearsal)
    fp32 = export_fp32(req, model, base, training)
    fp32_metrics = refit_and_tune(fp32, req, train_g, held, refit=True)
    int8 = quantize_package(
        fp32, req.voc / "images", req.out, name=req.name, version=req.version,
        refit_head_voc=req.voc, extra_head_samples=as_samples(train_g),
        fp32_prefixes=EARLY_FP32_PREFIXES,
    )  # fmt: skip
    int8_metrics = refit_and_tune(int8, req, train_g, held, refit=False)
    summary = {
        "fp32": str(fp32),
        "int8": str(int8),
        "heldout": str(heldout_dir) if heldout_dir else None,
        "heldout_group": holdout,
        "graded_left_out_groups": dict(graded.left_out),
        "left_out": left_dirs,
        "figures": {
            name: {
                "rdd_val_image_macro_f1": m["macro_f1"],
                "rdd_val_box_macro_f1": m["box_macro_f1"],
                "office_heldout_macro_f1": m.get("office_heldout", {}).get("office_macro_f1"),
                "office_heldout_d20_f1": m.get("office_heldout", {})
                .get("per_class", {})
                .get("D20", {})
                .get("f1"),
            }
            for name, m in (("fp32", fp32_metrics), ("int8", int8_metrics))
        },
    }
    (run / "adapt-summary.json").write_text(json.dumps(summary, indent=2))
    return summary
