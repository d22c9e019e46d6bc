"""Multinomial logistic regression on frozen embeddings, in torch: full-batch L-BFGS, L2 on the weights.

The objective is ``mean cross-entropy + weight_decay / 2 * ||W||^2`` (bias not penalised), i.e.
scikit-learn's ``LogisticRegression(C=1 / (weight_decay * n))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

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
    """Minimise the objective above from zero weights; deterministic for the same inputs."""
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float64))
    y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return LinearHead(weight.detach().float().numpy(), bias.detach().float().numpy())


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
