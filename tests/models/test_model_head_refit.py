"""The image head's fit (numpy, no torch): frames one-vs-rest, office verdicts as one type or
none. Synthetic features with a known answer, so the expected values come from the data's
making, not from the code under test."""

from __future__ import annotations

import numpy as np
import pytest

from models.head_refit import fit_logistic_numpy

pytestmark = pytest.mark.slow  # each fit is 3,000 full-batch steps: seconds on two busy cores


def _verdicts(rng: np.random.Generator, n: int, w_true: np.ndarray) -> tuple[np.ndarray, ...]:
    """Features and one-hot verdicts drawn from a softmax over two types and a 0 "none"."""
    x = rng.normal(size=(n, w_true.shape[1]))
    logits = np.concatenate([x @ w_true.T, np.zeros((n, 1))], axis=1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    choice = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)  # one draw per row
    y = np.zeros((n, 2))
    y[choice < 2, choice[choice < 2]] = 1.0  # "none" (2) is all zeros
    return x, y


def test_verdicts_recover_the_softmax_that_made_them() -> None:
    rng = np.random.default_rng(7)
    w_true = np.array([[2.0, -1.0, 0.0], [-1.0, 0.0, 2.0]])
    x, y = _verdicts(rng, 6000, w_true)
    w, b = fit_logistic_numpy(x, y, l2=0.0, one_of=np.ones(len(x), bool))
    np.testing.assert_allclose(w, w_true, atol=0.15)
    np.testing.assert_allclose(b, 0.0, atol=0.15)
    # Fitted one-vs-rest instead, the same data give other weights: each type's sigmoid is
    # then "this type against the other type and none together".
    w_ovr, _ = fit_logistic_numpy(x, y, l2=0.0)
    assert np.abs(w_ovr - w_true).max() > 0.3


def test_frames_stay_one_vs_rest_beside_verdicts() -> None:
    """Frames may show both types at once; their rows keep the per-type sigmoid even when
    verdict rows are fitted in the same call."""
    rng = np.random.default_rng(3)
    frames = rng.normal(size=(3000, 2))
    both = np.stack([frames[:, 0] > 0, frames[:, 1] > 0], axis=1).astype(float)
    x_v, y_v = _verdicts(rng, 3000, np.array([[2.0, 0.0], [0.0, 2.0]]))
    x = np.concatenate([frames, x_v])
    y = np.concatenate([both, y_v])
    one_of = np.arange(len(x)) >= len(frames)
    w, b = fit_logistic_numpy(x, y, l2=1e-4, one_of=one_of)
    p = 1.0 / (1.0 + np.exp(-(np.array([[2.0, 2.0]]) @ w.T + b)))
    assert (p > 0.8).all()  # a frame clearly showing both types: both present
    p_none = 1.0 / (1.0 + np.exp(-(np.array([[-2.0, -2.0]]) @ w.T + b)))
    assert (p_none < 0.2).all()
