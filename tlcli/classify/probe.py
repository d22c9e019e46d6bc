"""The one linear probe: multinomial logistic regression on frozen features, for images and texts.

The head works on L2-normalised features: ``logits = normalize(f) @ W.T + b``. It is fit full-batch with
L-BFGS in float64 (tlcli.classify.logistic: a convex problem, so the optimum does not depend on the start),
minimising ``mean cross-entropy + weight_decay / 2 * ||W - anchor||^2``. The anchor is zero, or a head to
stay near (CLIP's zero-shot head: with few shots the probe then starts from zero-shot and is pulled back
towards it). The weight decay is swept on a validation split, as clip_benchmark does.

Everything is NumPy: a probe on cached features never imports torch and takes well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WEIGHT_DECAYS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
SWEEP_MAX_ITER = 150  # each sweep point stops early; the winner is then fitted to convergence
FALLBACK_WEIGHT_DECAY = 1e-2  # too few examples to hold any out: a moderate decay


def normalize(x: np.ndarray) -> np.ndarray:
    """L2-normalised rows, as torch.nn.functional.normalize (eps 1e-12)."""
    x = np.asarray(x)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit(x: np.ndarray, y: np.ndarray, num_classes: int, weight_decay: float, anchor: np.ndarray | None = None,
        max_iter: int = 500, start: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(W (C, D), b (C,))`` float32 minimising mean CE of ``x @ W.T + b`` + ``wd/2 * ||W - anchor||^2``.

    ``x`` is used as given (callers normalise it). ``start`` only changes where the solver begins (a warm
    start from a neighbouring weight decay), not the optimum."""
    from tlcli.classify.logistic import fit_logistic as solve

    weight, bias = solve(np.asarray(x, dtype=np.float64), np.asarray(y), num_classes, weight_decay,
                         anchor=anchor, start=start, max_iter=max_iter)
    return weight.astype(np.float32), bias.astype(np.float32)


def logits(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return x @ weight.T + bias


def probabilities(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Softmax of the head's logits, row by row."""
    z = logits(x, weight, bias)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def accuracy(x: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> float:
    """Top-1 accuracy; NaN on an empty set."""
    if len(y) == 0:
        return float("nan")
    return float((logits(x, weight, bias).argmax(axis=1) == np.asarray(y)).mean())


def log_loss(x: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> float:
    """Mean cross-entropy; NaN on an empty set."""
    if len(y) == 0:
        return float("nan")
    z = logits(x, weight, bias)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), np.asarray(y)].mean())


@dataclass
class SweepResult:
    weight_decay: float
    val_accuracy: float
    head: tuple[np.ndarray, np.ndarray]
    tried: list[dict] = field(default_factory=list)  # [{"weight_decay", "val_accuracy", "val_loss"}]


def sweep(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, num_classes: int,
          anchor: np.ndarray | None = None, decays: list[float] = WEIGHT_DECAYS) -> SweepResult:
    """Fit each weight decay; the best validation accuracy wins. Ties, common on small easy sets, go to the
    lower validation log-loss: there the strongest decay ties on accuracy with near-uniform probabilities,
    which are of no use to a user.

    From the strongest decay down, each fit starting from the previous solution: weak decays on
    ill-conditioned features converge slowly from scratch, and quickly from a neighbour."""
    results = []
    previous = None
    for wd in sorted(decays, reverse=True):
        weight, bias = fit(train_x, train_y, num_classes, wd, anchor, max_iter=SWEEP_MAX_ITER, start=previous)
        previous = (weight, bias)
        results.append({"weight_decay": wd, "val_accuracy": accuracy(val_x, val_y, weight, bias),
                        "val_loss": log_loss(val_x, val_y, weight, bias), "head": (weight, bias)})
    ranked = [r for r in results if not np.isnan(r["val_accuracy"])] or results
    best = max(ranked, key=lambda r: (r["val_accuracy"], -r["val_loss"], r["weight_decay"]))
    # The sweep stops early where a weak decay converges slowly; finish the winner from where it stopped.
    head = fit(train_x, train_y, num_classes, best["weight_decay"], anchor, start=best["head"])
    return SweepResult(best["weight_decay"], accuracy(val_x, val_y, *head), head,
                       [{k: v for k, v in r.items() if k != "head"} for r in results])


def fit_with_inner_split(x: np.ndarray, y: np.ndarray, num_classes: int, anchor: np.ndarray | None, seed: int,
                         decays: list[float] = WEIGHT_DECAYS) -> tuple[np.ndarray, np.ndarray, float]:
    """A probe that never sees a test set: the weight decay is chosen on a stratified quarter of ``x``
    itself (when every class has at least 4 examples, else FALLBACK_WEIGHT_DECAY), then the head is refit
    on all of ``x``. Returns ``(W, b, weight_decay)``."""
    from tlcli.data.sources import stratified_split

    counts = np.bincount(np.asarray(y), minlength=num_classes)
    weight_decay = FALLBACK_WEIGHT_DECAY
    if int(counts.min()) >= 4:
        items = [_Item(i, int(label)) for i, label in enumerate(np.asarray(y).tolist())]
        inner_train, inner_val = stratified_split(items, 0.25, seed)
        a = np.array([item.index for item in inner_train])
        b = np.array([item.index for item in inner_val])
        scores, previous = [], None
        for candidate in sorted(decays, reverse=True):  # warm starts, as in sweep
            weight, bias = fit(x[a], y[a], num_classes, candidate, anchor, max_iter=SWEEP_MAX_ITER, start=previous)
            previous = (weight, bias)
            scores.append((accuracy(x[b], y[b], weight, bias), candidate))
        weight_decay = max(scores)[1]
    weight, bias = fit(x, y, num_classes, weight_decay, anchor)
    return weight, bias, weight_decay


class _Item:
    """What stratified_split needs of a sample: a label."""

    def __init__(self, index: int, label: int):
        self.index, self.label = index, label
