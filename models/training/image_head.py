"""An image-level head: does this frame show damage type X at all?

Deciding *whether* a frame shows a type is easier than saying *where*: a logistic regression
on pooled backbone features does it well. We fit one on the trained backbone's pooled
stride-32 features and put it in the exported graph as a third output; the decoder uses it to
confirm or veto the box findings of each type (see ``edge.grading.decode``).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import torch
from torch import nn

from edge.grading.preprocess import preprocess
from models.training.dataset import Sample
from models.training.net import RoadDamageNet
from models.training.spec import CLASS_CODES, input_spec


def pooled_features(
    model: RoadDamageNet, images: Iterator[np.ndarray], input_size: int
) -> np.ndarray:
    spec = input_spec(input_size)
    model.eval()
    rows = []
    with torch.no_grad():
        for image in images:
            x = torch.from_numpy(preprocess(image, spec))
            rows.append(model.pooled(x)[0].numpy())
    return np.stack(rows)


def labels(samples: list[Sample]) -> np.ndarray:
    y = np.zeros((len(samples), len(CLASS_CODES)), np.float32)
    for i, s in enumerate(samples):
        for b in s.boxes:
            y[i, CLASS_CODES.index(b.code)] = 1.0
    return y


def sample_images(samples: list[Sample], flip: bool = False) -> Iterator[np.ndarray]:
    for s in samples:
        image = cv2.imread(str(s.image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(s.image_path)
        yield image[:, ::-1].copy() if flip else image


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 300) -> nn.Linear:
    """One-vs-rest logistic regression (L-BFGS, L2), features standardised into the weights."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std).float()
    yt = torch.from_numpy(y).float()
    linear = nn.Linear(x.shape[1], y.shape[1])
    nn.init.zeros_(linear.weight)
    pos = yt.mean(0).clamp(1e-3, 1 - 1e-3)
    with torch.no_grad():
        linear.bias.copy_(torch.log(pos / (1 - pos)))
    optim = torch.optim.LBFGS(
        linear.parameters(), lr=0.5, max_iter=steps, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optim.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(linear(xt), yt)
        loss = loss + l2 * (linear.weight**2).sum()
        loss.backward()
        return loss

    optim.step(closure)
    folded = nn.Linear(x.shape[1], y.shape[1])
    with torch.no_grad():  # fold the standardisation in: w·(x−m)/s + b = (w/s)·x + (b − w·m/s)
        w = linear.weight / torch.from_numpy(std).float()
        folded.weight.copy_(w)
        folded.bias.copy_(linear.bias - w @ torch.from_numpy(mean).float())
    return folded
