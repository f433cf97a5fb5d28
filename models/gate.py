"""`model compare BASE NEW ... --gate`: both models side by side, and whether NEW may ship.

NEW fails the gate when, against BASE on the same images in the same run:

- on the RDD split: image-level macro-F1 is down by more than ``MAX_IMAGE_DROP`` or box-level
  macro-F1 by more than ``MAX_BOX_DROP``;
- on any office folder (the held-out part of the graded images): its office macro-F1 (over the
  labels with at least 10 images, ``none`` included) is down by more than ``MAX_OFFICE_DROP``;
- any office folder holds images NEW was trained on (the same file, or an image of a city or
  capture week NEW trained on, as its provenance records): such a folder is not held out, and
  neighbouring crops of one road are near-duplicates, so its figures would flatter NEW;
- NEW was adapted on office-graded images, yet no folder held out from its training is given:
  nothing would then show how it grades office images it has not seen, and RDD alone says
  nothing about Japanese roads.

A passing gate marks NEW ``default_for_vehicles`` and clears the mark on the other packages of
NEW's folder, so exactly one package there is the vehicles' default; a failing one clears NEW's
mark. Either way the gate's figures are recorded in NEW's manifest (``metrics.gate``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.grading.decode import apply_grade_rules, frame_grade, select
from edge.grading.grader import Grader
from edge.grading.manifest import ModelManifest, ModelPackageError, load_manifest
from edge.types import Damage
from models.adapt.graded import GradedImage, image_digest, read_graded
from models.adapt.tuning import FolderResult, collect_graded, folder_report
from models.evaluate import ImageResult, collect_voc, manifest_thresholds, voc_report
from models.metrics import confusion_report

MAX_IMAGE_DROP = 0.01
MAX_BOX_DROP = 0.02
MAX_OFFICE_DROP = 0.01
GRADES = ("0", "1", "2", "3")


def _truth_grade_voc(r: ImageResult, manifest: ModelManifest) -> int:
    grades = {c.code: c.grade for c in manifest.classes}
    truth = [Damage(t.code, 1.0, t.box, grades[t.code]) for t in r.truth if t.code in grades]
    return frame_grade(apply_grade_rules(truth, manifest))


def grade_report(pairs: list[tuple[int, int]]) -> dict[str, Any]:
    """Frame grades (truth, predicted): P/R/F1 per grade and the confusion matrix."""
    report = confusion_report([(str(t), str(p)) for t, p in pairs], GRADES)
    return {"per_grade": report["per_class"], "confusion": report["confusion"]}


def _voc_side(grader: Grader, voc: Path, split: str) -> dict[str, Any]:
    results = collect_voc(grader, voc, split)
    th = manifest_thresholds(grader)
    pairs = [
        (_truth_grade_voc(r, grader.manifest),
         frame_grade(select(list(r.peaks), r.image_probs, grader.manifest, th)))
        for r in results
    ]  # fmt: skip
    return {**voc_report(results, grader.manifest, th), "grades": grade_report(pairs)}


def _folder_side(grader: Grader, results: list[FolderResult]) -> dict[str, Any]:
    grades = {c.code: c.grade for c in grader.manifest.classes}
    pairs = [
        (grades.get(r.label, 0),
         frame_grade(select(list(r.result.peaks), r.result.image_probs, grader.manifest)))
        for r in results
    ]  # fmt: skip
    return {**folder_report(results, grader.manifest), "grades": grade_report(pairs)}


def _trained_on(manifest: ModelManifest) -> tuple[set[str], set[str]]:
    """(file digests, groups) of the graded images the package was trained on, as its
    provenance records them. Packages adapted before the digests were recorded give their
    groups only: every group of their graded sources but the held-out one."""
    training = manifest.training or {}
    digests = set(training.get("graded_train_sha256_16") or ())
    groups = set(training.get("graded_train_groups") or ())
    if not groups:
        held = training.get("heldout_group")
        for source in training.get("graded_sources") or ():
            groups |= {g for g in (source.get("groups") or {}) if g != held}
    return digests, groups


def seen_in_training(
    manifest: ModelManifest,
    images: list[GradedImage],
    folder: Path,
    file_digests: dict[Path, str],
) -> dict[str, Any]:
    """How many of a folder's images the package has seen: identical files, and images of a
    group (city, capture week) it trained on. A group that is only the folder's own name says
    nothing (two unrelated folders may share a name) and is not counted. ``file_digests``:
    the images' digests (empty when no side of the comparison recorded any)."""
    digests, groups = _trained_on(manifest)
    same_file = {i.path for i in images if file_digests.get(i.path) in digests}
    same_group = {i.path for i in images if i.group in groups and i.group != folder.name}
    return {
        "images": len(same_file | same_group),
        "identical_files": len(same_file),
        "groups": sorted({i.group for i in images if i.path in same_group}),
    }


def compare_models(
    a: Grader, b: Grader, voc: Path, split: str, folders: list[Path]
) -> dict[str, Any]:
    """Both models on the RDD split and on each folder, in one run."""
    report: dict[str, Any] = {
        "a": a.model_id,
        "b": b.model_id,
        "voc": {"split": split, "a": _voc_side(a, voc, split), "b": _voc_side(b, voc, split)},
        "folders": [],
        # Adapted on graded images: its provenance names some it was trained on.
        "b_adapted": any(_trained_on(b.manifest)),
    }
    va, vb = report["voc"]["a"], report["voc"]["b"]
    report["voc"]["delta"] = {
        "macro_f1": round(vb["macro_f1"] - va["macro_f1"], 4),
        "box_macro_f1": round(vb["box_macro_f1"] - va["box_macro_f1"], 4),
    }
    report["latency_ratio_b_over_a"] = round(vb["latency_ms_median"] / va["latency_ms_median"], 3)
    for folder in folders:
        images = list(read_graded([folder], min_classes=1).images)
        fa = _folder_side(a, collect_graded(a, images))
        fb = _folder_side(b, collect_graded(b, images))
        # Each file read once for both sides, and only if a side recorded digests.
        recorded = any(_trained_on(g.manifest)[0] for g in (a, b))
        digests = {i.path: image_digest(i.path) for i in images} if recorded else {}
        fa["seen_in_training"] = seen_in_training(a.manifest, images, folder, digests)
        fb["seen_in_training"] = seen_in_training(b.manifest, images, folder, digests)
        report["folders"].append(
            {"folder": str(folder), "a": fa, "b": fb,
             "delta": {"office_macro_f1": round(fb["office_macro_f1"] - fa["office_macro_f1"], 4)}}
        )  # fmt: skip
    return report


def seen_phrase(seen: dict[str, Any], total: int, model_id: str) -> str:
    parts = []
    if seen["identical_files"]:
        parts.append(f"{seen['identical_files']} identical files")
    if seen["groups"]:
        parts.append(f"group(s) {', '.join(seen['groups'])}")
    return (
        f"{seen['images']} of its {total} images were in {model_id}'s training "
        f"({'; '.join(parts)})"
    )


def gate_failures(report: dict[str, Any]) -> list[str]:
    """Why NEW (b) may not ship; empty when it may."""
    why = []
    d = report["voc"]["delta"]
    if d["macro_f1"] < -MAX_IMAGE_DROP:
        why.append(f"RDD {report['voc']['split']} image macro-F1 down {-d['macro_f1']:.4f} "
                   f"(more than {MAX_IMAGE_DROP})")  # fmt: skip
    if d["box_macro_f1"] < -MAX_BOX_DROP:
        why.append(f"RDD {report['voc']['split']} box macro-F1 down {-d['box_macro_f1']:.4f} "
                   f"(more than {MAX_BOX_DROP})")  # fmt: skip
    why.extend(_office_evidence_failures(report))
    for f in report["folders"]:
        seen = f["b"]["seen_in_training"]
        if seen["images"]:
            why.append(
                f"{f['folder']}: {seen_phrase(seen, f['b']['images'], report['b'])}: not held "
                "out, so it cannot show how NEW grades roads it has not seen"
            )
        drop = -f["delta"]["office_macro_f1"]
        if drop > MAX_OFFICE_DROP:
            why.append(f"{f['folder']}: office macro-F1 down {drop:.4f} "
                       f"(more than {MAX_OFFICE_DROP})")  # fmt: skip
    return why


def _office_evidence_failures(report: dict[str, Any]) -> list[str]:
    held_out = any(not f["b"]["seen_in_training"]["images"] for f in report["folders"])
    if report["b_adapted"] and not held_out:
        return [
            f"{report['b']} was adapted on office-graded images, but no office folder held "
            "out from its training was given (--folders RUN/heldout-GROUP, as model adapt "
            "wrote it)"
        ]
    return []


def record_gate(new: Path, base: Grader, report: dict[str, Any], failures: list[str]) -> None:
    """Write the outcome into NEW's manifest and set the default marks (module docstring)."""
    from models.package import update_manifest

    new_path = new.with_suffix(".json")
    passed = not failures
    gate = {
        "base": base.model_id,
        "passed": passed,
        "failures": failures,
        "checked_utc": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "rdd": {"split": report["voc"]["split"], **report["voc"]["delta"],
                "new_macro_f1": report["voc"]["b"]["macro_f1"],
                "new_box_macro_f1": report["voc"]["b"]["box_macro_f1"]},
        "folders": [
            {"folder": Path(f["folder"]).name, "base_office_macro_f1": f["a"]["office_macro_f1"],
             "new_office_macro_f1": f["b"]["office_macro_f1"],
             "new_trained_on_images": f["b"]["seen_in_training"]["images"]}
            for f in report["folders"]
        ],
        "latency_ratio_new_over_base": report["latency_ratio_b_over_a"],
    }  # fmt: skip
    current = load_manifest(new_path)
    update_manifest(
        new_path, default_for_vehicles=passed, metrics={**current.metrics, "gate": gate}
    )
    if not passed:
        return
    for other in sorted(new_path.parent.glob("*.json")):
        if other.resolve() == new_path.resolve():
            continue
        try:
            if load_manifest(other).default_for_vehicles:
                update_manifest(other, default_for_vehicles=False)
        except ModelPackageError:
            continue
