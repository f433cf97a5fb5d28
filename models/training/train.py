"""Training loop: resumable, with a progress bar showing loss and ETA."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from edge.grading.preprocess import preprocess
from models.training.dataset import Sample, augment, load_voc_dir, make_targets, split
from models.training.net import STRIDE, RoadDamageNet
from models.training.spec import CLASS_CODES, input_spec

FROZEN_BLOCKS_PRETRAINED = 3  # stem + first blocks keep their ImageNet edges/textures


@dataclass(frozen=True)
class TrainOptions:
    data: Path
    out: Path
    epochs: int = 16
    init: str = "pretrained"  # or "scratch"
    input_size: int = 256
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    max_minutes: float | None = None  # stop cleanly (after a checkpoint) when over budget
    limit_images: int | None = None  # for smoke tests: train on the first N images only
    # Fine-tuning: start from a shipped package's network (e.g. at a larger input size) with
    # its batch-norm statistics kept (they were folded into the convolutions at export).
    init_package: Path | None = None
    # Heat-map loss weight per class, in CLASS_CODES order (the rare pothole class D40 may
    # get more): None is 1 for every class.
    class_weights: tuple[float, ...] | None = None
    # Blocks kept frozen after the stem (with ImageNet init: its edges and textures). Fine-
    # tuning at a larger input on 2 shared cores may freeze the whole trunk (11: up to the
    # stride-16 tap), which halves a step: no backward pass through the high-resolution layers.
    frozen_blocks: int = FROZEN_BLOCKS_PRETRAINED


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of box centres;
    ``class_weights`` (C) scales each class's channel."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    per_cell = -(torch.log(p) * (1 - p) ** 2 * pos) - (
        torch.log(1 - p) * p**2 * (1 - target) ** 4 * (1 - pos)
    )
    if class_weights is not None:
        per_cell = per_cell * class_weights.view(1, -1, 1, 1)
    return per_cell.sum() / pos.sum().clamp(min=1.0)


def decode_boxes(box_raw: torch.Tensor, input_size: int) -> torch.Tensor:
    """Log side distances (in strides) → normalised x0,y0,x1,y1 for every cell (N×4×H×W)."""
    h, w = box_raw.shape[2:]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cx, cy = (xs + 0.5) / w, (ys + 0.5) / h
    dist = torch.exp(box_raw.clamp(max=6.0)) * (STRIDE / input_size)
    return torch.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], dim=1)


def giou_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    mask = weight > 0
    if not mask.any():
        return pred.sum() * 0.0
    p = pred.permute(0, 2, 3, 1)[mask]
    t = target.permute(0, 2, 3, 1)[mask]
    wgt = weight[mask]
    ix0, iy0 = torch.max(p[:, 0], t[:, 0]), torch.max(p[:, 1], t[:, 1])
    ix1, iy1 = torch.min(p[:, 2], t[:, 2]), torch.min(p[:, 3], t[:, 3])
    inter = (ix1 - ix0).clamp(min=0) * (iy1 - iy0).clamp(min=0)
    area_p = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    area_t = (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
    union = area_p + area_t - inter
    cx0, cy0 = torch.min(p[:, 0], t[:, 0]), torch.min(p[:, 1], t[:, 1])
    cx1, cy1 = torch.max(p[:, 2], t[:, 2]), torch.max(p[:, 3], t[:, 3])
    enclose = (cx1 - cx0) * (cy1 - cy0)
    giou = inter / union.clamp(min=1e-9) - (enclose - union) / enclose.clamp(min=1e-9)
    return ((1 - giou) * wgt).sum() / wgt.sum().clamp(min=1e-6)


class Batches:
    """Decoded images kept in memory (decoding JPEGs every epoch would cost more than it saves)."""

    def __init__(self, samples: list[Sample], opts: TrainOptions):
        self.samples = samples
        self.images = [cv2.imread(str(s.image_path), cv2.IMREAD_COLOR) for s in samples]
        missing = [s.image_path for s, im in zip(samples, self.images, strict=True) if im is None]
        if missing:
            raise FileNotFoundError(f"unreadable images: {missing[:5]}")
        self.opts = opts
        self.spec = input_spec(opts.input_size)

    def __len__(self) -> int:
        return len(self.samples) // self.opts.batch_size

    def epoch(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        order = rng.permutation(len(self.samples))
        out = self.opts.input_size // STRIDE
        for b in range(len(self)):
            xs, heats, boxes, weights = [], [], [], []
            for i in order[b * self.opts.batch_size : (b + 1) * self.opts.batch_size]:
                s = self.samples[i]
                px = np.array([[bx.x0, bx.y0, bx.x1, bx.y1] for bx in s.boxes], np.float32)
                ids = np.array([CLASS_CODES.index(bx.code) for bx in s.boxes], np.int64)
                image, px, kept = augment(self.images[i], px.reshape(-1, 4), rng)
                ids = ids[kept] if len(ids) else ids
                h, w = image.shape[:2]
                norm = px / np.array([w, h, w, h], np.float32)
                heat, box_t, wgt = make_targets(norm, ids, len(CLASS_CODES), out, out)
                xs.append(preprocess(image, self.spec)[0])
                heats.append(heat)
                boxes.append(box_t)
                weights.append(wgt)
            yield (
                torch.from_numpy(np.stack(xs)),
                torch.from_numpy(np.stack(heats)),
                torch.from_numpy(np.stack(boxes)),
                torch.from_numpy(np.stack(weights)),
            )


def build_model(
    init: str,
    input_size: int,
    package: Path | None = None,
    frozen_blocks: int = FROZEN_BLOCKS_PRETRAINED,
) -> RoadDamageNet:
    if package is not None:
        from models.training.resize import rebuilt_at

        model = rebuilt_at(package, input_size)
        model.image_head = None  # refitted at export, on the fine-tuned features
    else:
        model = RoadDamageNet(len(CLASS_CODES), input_size, pretrained=init == "pretrained")
    if init == "pretrained":
        bb = model.backbone
        frozen = [bb._conv_stem, bb._bn0, *bb._blocks[:frozen_blocks]]
        for module in frozen:
            module.requires_grad_(False)
    return model


def _set_train_mode(model: RoadDamageNet, opts: TrainOptions) -> None:
    model.train()
    # The package's statistics are folded in: batch statistics would undo them.
    if opts.init_package is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
        return
    if opts.init == "pretrained":  # frozen layers keep their ImageNet batch-norm statistics
        bb = model.backbone
        for module in (bb._bn0, *bb._blocks[: opts.frozen_blocks]):
            module.eval()


def warmup_cosine(
    optim: torch.optim.Optimizer, total_steps: int, warmup: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to zero at ``total_steps``."""

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optim, lr_at)


def optimiser(
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    lr_and_decay: tuple[float, float],
    total_steps: int,
    max_warmup: int,
    ckpt_path: Path,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR, dict[str, Any] | None]:
    """AdamW with warm-up and cosine decay; model, optimiser and schedule are loaded from
    ``ckpt_path`` when it exists (resuming), and the checkpoint is returned for the rest."""
    optim = torch.optim.AdamW(params, lr=lr_and_decay[0], weight_decay=lr_and_decay[1])
    sched = warmup_cosine(optim, total_steps, min(max_warmup, total_steps // 10 + 1))
    if not ckpt_path.exists():
        return optim, sched, None
    ckpt: dict[str, Any] = torch.load(ckpt_path, weights_only=False)
    model.load_state_dict(ckpt["model"])
    optim.load_state_dict(ckpt["optim"])
    sched.load_state_dict(ckpt["sched"])
    return optim, sched, ckpt


def train(opts: TrainOptions) -> Path:
    """Train (or resume) into opts.out; return the path of the final weights."""
    torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    opts.out.mkdir(parents=True, exist_ok=True)
    samples = load_voc_dir(opts.data, CLASS_CODES)
    train_set, val_set = split(samples)
    if opts.limit_images:
        train_set = train_set[: opts.limit_images]
    batches = Batches(train_set, opts)
    if len(batches) == 0:
        raise ValueError(f"{opts.data}: fewer images than one batch ({opts.batch_size})")
    model = build_model(opts.init, opts.input_size, opts.init_package, opts.frozen_blocks)
    weights_c = None if opts.class_weights is None else torch.tensor(opts.class_weights)
    params = [p for p in model.parameters() if p.requires_grad]
    total_steps = opts.epochs * len(batches)
    ckpt_path = opts.out / "last.ckpt"
    optim, sched, ckpt = optimiser(
        model, params, (opts.lr, opts.weight_decay), total_steps, 100, ckpt_path
    )
    start_epoch, history = 0, []
    if ckpt is not None:
        start_epoch, history = ckpt["epoch"], ckpt["history"]
        print(f"resuming from {ckpt_path} after epoch {start_epoch}")
    started = time.monotonic()
    for epoch in range(start_epoch, opts.epochs):
        _set_train_mode(model, opts)
        rng = np.random.default_rng(opts.seed * 1000 + epoch)
        sums = np.zeros(2)
        bar = tqdm(batches.epoch(rng), total=len(batches), desc=f"epoch {epoch + 1}/{opts.epochs}")
        for step, (x, heat_t, box_t, wgt) in enumerate(bar, start=1):
            heat, box_raw = model(x)
            l_heat = focal_loss(heat, heat_t, weights_c)
            l_box = giou_loss(decode_boxes(box_raw, opts.input_size), box_t, wgt)
            loss = l_heat + 5.0 * l_box
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optim.step()
            sched.step()
            sums += (l_heat.item(), l_box.item())
            bar.set_postfix(heat=f"{sums[0] / step:.3f}", giou=f"{sums[1] / step:.3f}")
        history.append(
            {
                "epoch": epoch + 1,
                "heat_loss": sums[0] / len(batches),
                "giou_loss": sums[1] / len(batches),
                "elapsed_s": time.monotonic() - started,
            }
        )
        torch.save(
            {
                "model": model.state_dict(),
                "optim": optim.state_dict(),
                "sched": sched.state_dict(),
                "epoch": epoch + 1,
                "history": history,
                "options": {k: str(v) for k, v in asdict(opts).items()},
            },
            ckpt_path.with_suffix(".tmp"),
        )
        ckpt_path.with_suffix(".tmp").replace(ckpt_path)
        torch.save(model.state_dict(), opts.out / f"weights-epoch{epoch + 1:03d}.pt")
        if opts.max_minutes and (time.monotonic() - started) / 60 > opts.max_minutes:
            print(f"time budget of {opts.max_minutes} min spent after epoch {epoch + 1}")
            break
    final = opts.out / "weights.pt"
    torch.save(model.state_dict(), final)
    meta = {
        "init": opts.init,
        "init_package": str(opts.init_package) if opts.init_package else None,
        "class_weights": list(opts.class_weights) if opts.class_weights else None,
        "lr": opts.lr,
        "frozen_blocks": opts.frozen_blocks,
        "input_size": opts.input_size,
        "epochs_done": len(history),
        "history": history,
        "train_images": len(train_set),
        "val_images": len(val_set),
        "data": str(opts.data),
    }
    (opts.out / "training.json").write_text(json.dumps(meta, indent=2))
    return final
