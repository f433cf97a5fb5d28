"""Fine-tuning the base network on office-graded images while it keeps what it knows of boxes.

Each step sees a batch of graded images (image-level labels only) and, unless the box path is
frozen, a batch of the base's own RDD training images with their boxes:

- graded images: binary cross-entropy on the image head (the folder's type is present, every
  other type absent; ``none`` = absent for every type), and the same on the heat map's
  strongest cell per type (multiple-instance learning: a D20 image must have a D20 peak
  somewhere, a ``none`` image no peak of any type), since the vehicle reports a type only
  where the heat map has a peak;
- ``rehearsal``: the RDD images with the base's training losses (centre heat map focal loss,
  GIoU on the box sides) and image-head BCE from their boxes;
- ``distill``: the RDD images with the *base model's* heat map and box sides as soft targets
  instead of the annotated boxes;
- ``frozen``: no RDD images; the neck, the box head and the backbone up to stride 16 are
  frozen, so only the stride-32 blocks and the image head move.

``train_from_block`` moves the frozen/trained border: 11 (the default) trains the stride-32
blocks and up; 5 to 10 also train the stride-16 blocks from that one, at about twice the cost
per step for 5. The trunk's features are cached up to the block before it.

Batch norms stay in inference mode (the base's statistics are folded into its weights, and
small mixed batches would give poor estimates). Checkpoints after every epoch make a stopped
run resumable: run the same command again.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from models.adapt import trained_part
from models.adapt.features import Features
from models.adapt.graded import GradedImage
from models.training.dataset import Sample, make_targets
from models.training.net import STRIDE, RoadDamageNet
from models.training.spec import CLASS_CODES
from models.training.train import (
    decode_boxes,
    focal_loss,
    giou_loss,
    optimiser,
)

KeepBoxes = Literal["rehearsal", "distill", "frozen"]
GradedLoss = Literal["independent", "one-of"]
LABEL_INDEX = {code: i for i, code in enumerate(CLASS_CODES)}


@dataclass(frozen=True)
class AdaptOptions:
    run: Path
    epochs: int = 6
    graded_per_step: int = 8
    rdd_per_step: int = 8
    keep_boxes: KeepBoxes = "rehearsal"
    lr: float = 4e-4
    weight_decay: float = 1e-4
    graded_weight: float = 1.0
    views: int = 1  # cached views per graded image: the image itself and views - 1 augmented
    class_balance: float = 0.5  # graded images drawn with weight (images of their class)^-this
    seed: int = 0
    threads: int = 2
    max_steps: int | None = None  # stop after this many steps in all (tests, timing)
    train_from_block: int = trained_part.DEFAULT_FIRST  # the first backbone block that trains
    graded_loss: GradedLoss = "independent"  # how a verdict's types are scored (see _graded_loss)
    trained_on: str = ""  # base, graded training images, RDD folder (pipeline.trained_on)

    @property
    def last_frozen_block(self) -> int:
        return self.train_from_block - 1


# Options that do not change what a run learns: a resumed run may differ in these.
_RESUMABLE_CHANGES = frozenset({"run", "threads", "max_steps"})


def resume_mismatch(opts: AdaptOptions) -> str | None:
    """Why ``opts.run``'s checkpoint cannot be resumed with ``opts`` (None when it can, or
    when there is none): resuming a run begun with another seed, loss or number of epochs
    would silently train a mix of two recipes under one manifest, and resuming on other
    images (another --graded, --holdout or --leave-out, base or RDD folder) would carry
    weights fitted to them into a manifest that names only the new ones."""
    path = opts.run / "last.ckpt"
    if not path.exists():
        return None
    saved = torch.load(path, weights_only=False).get("options", {})
    now = json.loads(json.dumps(asdict(opts), default=str))
    differs = [
        key
        for key in sorted(saved.keys() & now.keys() - _RESUMABLE_CHANGES)
        if saved[key] != now[key]
    ]
    reasons = [
        f"with {key} {saved[key]} (now {now[key]})" for key in differs if key != "trained_on"
    ]
    if "trained_on" in differs:
        reasons.append(f"on {saved['trained_on']} (now {now['trained_on']})")
    if not reasons:
        return None
    return (
        f"{path} was trained {'; '.join(reasons)}; resume it with the same options and "
        "images or give another --run"
    )


def graded_targets(label: str) -> np.ndarray:
    y = np.zeros(len(CLASS_CODES), np.float32)
    if label in LABEL_INDEX:
        y[LABEL_INDEX[label]] = 1.0
    return y


class Mixer:
    """Batches from the cached trunk features: graded images (drawn with weight
    (images of their class)^-class_balance, so rare classes come more often without drowning
    in copies; one of their cached views at random) and RDD images with their box targets.
    Each sample is mirrored left-right at random by flipping its feature maps (and targets):
    an approximation of flipping the image, which the trunk's ImageNet filters were trained
    to treat alike."""

    def __init__(
        self,
        graded: list[GradedImage],
        graded_features: Features,
        rdd: list[Sample],
        rdd_features: Features | None,
        opts: AdaptOptions,
        size: int,
    ):
        self.opts, self.graded_features, self.rdd_features = opts, graded_features, rdd_features
        counts: dict[str, int] = {}
        for g in graded:
            counts[g.label] = counts.get(g.label, 0) + 1
        w = np.array([counts[g.label] ** -opts.class_balance for g in graded])
        self.graded_p = w / w.sum()
        self.graded_y = np.stack([graded_targets(g.label) for g in graded])
        self.n_graded = len(graded)
        self.views = max(1, graded_features.c8.shape[0] // max(1, len(graded)))
        self.rdd_targets = [_rdd_targets(s, size // STRIDE) for s in rdd]

    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.n_graded / self.opts.graded_per_step))

    def graded_batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        idx = rng.choice(self.n_graded, self.opts.graded_per_step, p=self.graded_p)
        rows = rng.integers(0, self.views, len(idx)) * self.n_graded + idx
        flip = rng.random(len(idx)) < 0.5
        f = self.graded_features
        return (
            _flipped(f.c8[rows], flip), _flipped(f.last_frozen[rows], flip),
            torch.from_numpy(self.graded_y[idx]),
        )  # fmt: skip

    def rdd_batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        assert self.rdd_features is not None
        idx = rng.choice(len(self.rdd_targets), self.opts.rdd_per_step, replace=False)
        flip = rng.random(len(idx)) < 0.5
        heat, box, wgt, y = (np.stack([self.rdd_targets[i][k] for i in idx]) for k in range(4))
        box = box.copy()
        box[flip] = box[flip][:, [2, 1, 0, 3]]  # mirrored: x0' = 1 - x1, x1' = 1 - x0
        box[flip, 0] = 1.0 - box[flip, 0]
        box[flip, 2] = 1.0 - box[flip, 2]
        box[flip] *= (wgt[flip] > 0)[:, None]
        return (
            _flipped(self.rdd_features.c8[idx], flip),
            _flipped(self.rdd_features.last_frozen[idx], flip),
            _flipped(heat, flip), _flipped(box, flip),
            _flipped(wgt[:, None], flip)[:, 0], torch.from_numpy(y),
        )  # fmt: skip


def _flipped(a: np.ndarray, flip: np.ndarray) -> torch.Tensor:
    out = a.astype(np.float32)
    out[flip] = out[flip][..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(out))


def _rdd_targets(s: Sample, cells: int) -> tuple[np.ndarray, ...]:
    """Heat map, box and weight targets of an unaugmented RDD image, and its image labels."""
    w, h = max(s.width, 1), max(s.height, 1)
    norm = np.array([[b.x0 / w, b.y0 / h, b.x1 / w, b.y1 / h] for b in s.boxes], np.float32)
    ids = np.array([LABEL_INDEX[b.code] for b in s.boxes], np.int64)
    heat, box_t, wgt = make_targets(norm.reshape(-1, 4), ids, len(CLASS_CODES), cells, cells)
    y = np.zeros(len(CLASS_CODES), np.float32)
    y[ids] = 1.0
    return heat, box_t, wgt, y


def _trainable(model: RoadDamageNet, opts: AdaptOptions) -> list[nn.Parameter]:
    why = trained_part.problem(opts.train_from_block, opts.keep_boxes)
    if why is not None:
        raise ValueError(f"train_from_block {why}")
    bb = model.backbone
    frozen: list[nn.Module] = [bb._conv_stem, bb._bn0, *bb._blocks[: opts.train_from_block]]
    if opts.keep_boxes == "frozen":
        frozen += [model.lat8, model.lat16, model.lat32]
        frozen += [model.smooth8, model.smooth16, model.heat, model.box]
    for module in frozen:
        module.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def _graded_loss(
    heat: torch.Tensor, image_logits: torch.Tensor, y: torch.Tensor, how: GradedLoss
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image-head loss, loss on each type's strongest heat-map cell).

    ``independent``: binary cross-entropy per type. ``one-of``: an office verdict names one
    type or none, so the types compete: softmax cross-entropy over the types' logits and a
    "none" logit fixed at 0 (the loss the image head's refit uses, ``models/head_refit.py``).
    On a crop the vehicle reports its strongest finding's type, so what matters is that the
    verdict's type beats the others, not each type's score alone."""
    peaks = heat.amax(dim=(2, 3))
    if how == "independent":
        image = F.binary_cross_entropy_with_logits(image_logits, y)
        return image, F.binary_cross_entropy_with_logits(peaks, y)
    return _one_of_loss(image_logits, y), _one_of_loss(peaks, y)


def _one_of_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over [types..., none = 0]; ``y`` is one-hot over the types, or all
    0 for none. Divided by the number of types, so that each logit's gradient is as large as
    under the per-type mean BCE and the graded images keep their weight against rehearsal."""
    types = logits.shape[1]
    with_none = torch.cat([logits, torch.zeros_like(logits[:, :1])], dim=1)
    none = torch.full_like(y[:, 0], types, dtype=torch.long)
    target = torch.where(y.sum(dim=1) > 0, y.argmax(dim=1), none)
    return F.cross_entropy(with_none, target) / types


def _distill_loss(
    heat: torch.Tensor, box_raw: torch.Tensor, teacher: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    t_heat, t_box = torch.sigmoid(teacher[0]), teacher[1]
    heat_l = F.binary_cross_entropy_with_logits(heat, t_heat)
    where = t_heat.amax(dim=1, keepdim=True)  # regress sides where the teacher sees damage
    box_l = (where * (box_raw - t_box).abs()).sum() / where.sum().clamp(min=1e-6) / 4
    return 10.0 * heat_l + box_l


class Stepper:
    """One optimisation step of the mix chosen by ``keep_boxes``, on cached trunk features."""

    def __init__(self, model: RoadDamageNet, opts: AdaptOptions, size: int):
        self.model, self.opts, self.size = model, opts, size
        self.teacher = copy.deepcopy(model).eval() if opts.keep_boxes == "distill" else None
        self.params = _trainable(model, opts)

    def _run(self, c8: torch.Tensor, last_frozen: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c16 = self.model.middle(last_frozen, self.opts.last_frozen_block)
        return self.model.heads(c8, c16, self.model.top(c16))

    def losses(self, mixer: Mixer, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        g8, g16, gy = mixer.graded_batch(rng)
        if self.opts.keep_boxes == "frozen":
            heat, _, logits = self._run(g8, g16)
            image_l, peak_l = _graded_loss(heat, logits, gy, self.opts.graded_loss)
            return {"graded_image": image_l, "graded_peak": peak_l}
        r8, r16, heat_t, box_t, wgt, ry = mixer.rdd_batch(rng)
        heat, box_raw, logits = self._run(torch.cat([r8, g8]), torch.cat([r16, g16]))
        r = r8.shape[0]
        image_l, peak_l = _graded_loss(heat[r:], logits[r:], gy, self.opts.graded_loss)
        out = {"graded_image": image_l, "graded_peak": peak_l}
        out["rdd_image"] = F.binary_cross_entropy_with_logits(logits[:r], ry)
        if self.teacher is not None:
            with torch.no_grad():
                t16 = self.teacher.middle(r16, self.opts.last_frozen_block)
                teacher = self.teacher.heads(r8, t16, self.teacher.top(t16))
            out["rdd_distill"] = _distill_loss(heat[:r], box_raw[:r], teacher)
        else:
            out["rdd_heat"] = focal_loss(heat[:r], heat_t)
            out["rdd_giou"] = 5.0 * giou_loss(decode_boxes(box_raw[:r], self.size), box_t, wgt)
        return out

    def total(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        graded = parts["graded_image"] + parts["graded_peak"]
        rest = [v for k, v in parts.items() if not k.startswith("graded")]
        return self.opts.graded_weight * graded + sum(rest, torch.zeros(()))


def _set_modes(model: RoadDamageNet) -> None:
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def fine_tune(
    model: RoadDamageNet,
    size: int,
    graded: tuple[list[GradedImage], Features],
    rdd: tuple[list[Sample], Features | None],
    opts: AdaptOptions,
) -> list[dict[str, float]]:
    """Train ``model`` in place (resuming from ``opts.run/last.ckpt``); returns the history."""
    torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    opts.run.mkdir(parents=True, exist_ok=True)
    mixer = Mixer(graded[0], graded[1], rdd[0], rdd[1], opts, size)
    stepper = Stepper(model, opts, size)
    per_epoch = mixer.steps_per_epoch()
    total = opts.epochs * per_epoch
    if opts.max_steps is not None:
        total = min(total, opts.max_steps)
    ckpt_path = opts.run / "last.ckpt"
    optim, sched, ckpt = optimiser(
        model, stepper.params, (opts.lr, opts.weight_decay), total, 30, ckpt_path
    )
    done, history = 0, []
    if ckpt is not None:
        done, history = ckpt["steps"], ckpt["history"]
        print(f"resuming from {ckpt_path} after step {done} of {total}")
    started = time.monotonic()
    bar = tqdm(total=total, initial=done, desc="adapt", unit="step", dynamic_ncols=True)
    sums: dict[str, float] = {}
    while done < total:
        rng = np.random.default_rng(opts.seed * 100_003 + done)
        _set_modes(model)
        parts = stepper.losses(mixer, rng)
        loss = stepper.total(parts)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(stepper.params, 10.0)
        optim.step()
        sched.step()
        done += 1
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v.item())
        seen = done - per_epoch * ((done - 1) // per_epoch)
        bar.set_postfix(
            epoch=f"{(done - 1) // per_epoch + 1}/{opts.epochs}",
            **{k.replace("graded_", "g_").replace("rdd_", "r_"): f"{v / seen:.3f}"
               for k, v in sums.items()},
        )  # fmt: skip
        bar.update(1)
        if done % per_epoch == 0 or done == total:
            history.append(
                {"step": done, "epoch": done / per_epoch,
                 **{k: v / seen for k, v in sums.items()},
                 "elapsed_s": time.monotonic() - started}
            )  # fmt: skip
            sums = {}
            _checkpoint(ckpt_path, model, optim, sched, done, history, opts)
    bar.close()
    model.eval()
    return history


def _checkpoint(
    path: Path,
    model: nn.Module,
    optim: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    steps: int,
    history: list[dict[str, float]],
    opts: AdaptOptions,
) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optim": optim.state_dict(),
            "sched": sched.state_dict(),
            "steps": steps,
            "history": history,
            "options": json.loads(json.dumps(asdict(opts), default=str)),
        },
        tmp,
    )
    tmp.replace(path)
