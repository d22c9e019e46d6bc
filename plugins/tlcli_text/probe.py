"""Multinomial logistic regression on frozen embeddings: full-batch L-BFGS, L2 on the weights.

The objective is ``mean cross-entropy + weight_decay / 2 * ||W||^2`` (bias not penalised), i.e.
scikit-learn's ``LogisticRegression(C=1 / (weight_decay * n))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_WEIGHT_DECAYS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@dataclass
class LinearHead:
    weight: np.ndarray  # (classes, dim)
    bias: np.ndarray  # (classes,)

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weight.T + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = self.logits(features)
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def fit_logistic(features: np.ndarray, targets: np.ndarray, num_classes: int, weight_decay: float,
                 max_iter: int = 300) -> LinearHead:
    """Minimise the objective above from zero weights (tlcli.logistic's L-BFGS); deterministic."""
    from tlcli.logistic import fit_logistic as solve

    weight, bias = solve(features, targets, num_classes, weight_decay, max_iter=max_iter, gtol=1e-9, ftol=1e-12)
    return LinearHead(weight.astype(np.float32), bias.astype(np.float32))


def accuracy(head: LinearHead, features: np.ndarray, targets: np.ndarray) -> float:
    return float((head.logits(features).argmax(axis=1) == targets).mean())


def log_loss(head: LinearHead, features: np.ndarray, targets: np.ndarray) -> float:
    probabilities = head.probabilities(features)[np.arange(len(targets)), targets]
    return float(-np.log(np.clip(probabilities, 1e-12, None)).mean())


def sweep_weight_decay(train_x, train_y, val_x, val_y, num_classes: int, candidates=DEFAULT_WEIGHT_DECAYS):
    """Fit one head per candidate; returns (best weight decay, [{weight_decay, val_accuracy, val_loss}...]).
    Best is the highest validation accuracy; ties (common on small, easy sets) go to the lower
    validation log-loss, which keeps probabilities calibrated instead of merely favouring one extreme."""
    results = []
    for decay in candidates:
        head = fit_logistic(train_x, train_y, num_classes, decay)
        results.append({"weight_decay": decay, "val_accuracy": accuracy(head, val_x, val_y),
                        "val_loss": log_loss(head, val_x, val_y)})
    best = max(results, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    return best["weight_decay"], results
