"""`roadpatrol model compare BASE NEW --voc DIR [--folders DIR ...] [--gate]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.errors import UsageError


def _side_by_side(report: dict[str, Any]) -> None:
    from models.gate import seen_phrase

    v = report["voc"]
    a, b = v["a"], v["b"]
    print(f"A = {report['a']}   B = {report['b']}")
    print(f"RDD ({v['split']} split, {a['images']} images)")
    for label, key in (("image macro-F1", "macro_f1"), ("box macro-F1  ", "box_macro_f1")):
        print(f"  {label}  A {a[key]:.4f}  B {b[key]:.4f}  Δ {v['delta'][key]:+.4f}")
    print(f"  {'class':6} {'A img F1':>9} {'B img F1':>9} {'A box F1':>9} {'B box F1':>9}")
    for code in a["per_class"]:
        figures = (a["per_class"], b["per_class"], a["box_per_class"], b["box_per_class"])
        print(f"  {code:6} " + " ".join(f"{m[code]['f1']:9.3f}" for m in figures))
    _grades(a, b)
    for f in report["folders"]:
        fa, fb = f["a"], f["b"]
        print(f"{f['folder']} ({fa['images']} images): office macro-F1 over "
              f"{', '.join(fa['office_macro_labels'])}  A {fa['office_macro_f1']:.4f}  "
              f"B {fb['office_macro_f1']:.4f}  Δ {f['delta']['office_macro_f1']:+.4f}")  # fmt: skip
        for side in ("a", "b"):
            seen = f[side]["seen_in_training"]
            if seen["images"]:
                print(f"  note: {seen_phrase(seen, fa['images'], report[side])}")
        print(f"  {'label':6} {'n':>5} {'A F1':>7} {'B F1':>7}")
        for label, m in fa["per_class"].items():
            if m["support"]:
                print(f"  {label:6} {m['support']:5d} {m['f1']:7.3f} "
                      f"{fb['per_class'][label]['f1']:7.3f}")  # fmt: skip
        _grades(fa, fb)
    print(f"median latency  A {a['latency_ms_median']} ms  B {b['latency_ms_median']} ms"
          f"  ratio B/A {report['latency_ratio_b_over_a']}")  # fmt: skip


def _grades(a: dict[str, Any], b: dict[str, Any]) -> None:
    ga, gb = a["grades"]["per_grade"], b["grades"]["per_grade"]
    print("  grade  frames  A F1   B F1")
    for g in ga:
        if ga[g]["support"]:
            print(f"  {g:>5} {ga[g]['support']:7d} {ga[g]['f1']:6.3f} {gb[g]['f1']:6.3f}")


def cmd_compare(args: argparse.Namespace) -> int:
    from edge.grading.manifest import ModelPackageError
    from models.adapt.graded import GradedDataError
    from models.cli import _grader
    from models.gate import compare_models, gate_failures, record_gate

    a, b = _grader(args.a, args.threads), _grader(args.b, args.threads)
    try:
        report = compare_models(a, b, args.voc, args.split, list(args.folders or []))
    except (ValueError, FileNotFoundError, GradedDataError) as exc:
        raise UsageError(str(exc)) from exc
    failures = gate_failures(report)
    report["gate"] = {"passed": not failures, "failures": failures} if args.gate else None
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        _side_by_side(report)
    if not args.gate:
        return 0
    try:
        record_gate(args.b, a, report, failures)
    except ModelPackageError as exc:
        raise UsageError(str(exc)) from exc
    if failures:
        for why in failures:
            print(f"gate: FAILED: {why}")
        print(f"gate: {b.model_id} is not marked default_for_vehicles")
        return 1
    print(f"gate: passed; {b.model_id} is now marked default_for_vehicles")
    return 0


def add_compare(msub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = msub.add_parser(
        "compare",
        help="two models side by side on the same images; --gate: may NEW replace BASE?",
    )
    p.add_argument("a", type=Path, metavar="BASE")
    p.add_argument("b", type=Path, metavar="NEW")
    p.add_argument("--voc", type=Path, required=True, help="images/ + annotations/xmls/")
    p.add_argument(
        "--split", choices=["all", "train", "val"], default="val",
        help="the fixed train/validation split of --voc, or every image",
    )  # fmt: skip
    p.add_argument(
        "--folders", type=Path, action="append",
        help="office-graded label folders (D00/ .. none/), e.g. the held-out part `model "
        "adapt` writes; repeatable",
    )  # fmt: skip
    p.add_argument(
        "--gate", action="store_true",
        help="exit 1 when NEW is worse than BASE (RDD image macro-F1 down > 0.01, box "
        "macro-F1 down > 0.02, office macro-F1 down > 0.01 on a folder); a pass marks NEW "
        "default_for_vehicles",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_compare)
