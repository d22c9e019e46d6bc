"""How good are features without training a classifier: a k-nearest-neighbour vote on a labelled set."""

from __future__ import annotations

import torch
import torch.nn.functional as F

KNN_TEMPERATURE = 0.07  # votes weighted by exp(cosine / T), as in Wu et al. 2018 (instance discrimination)


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = 20) -> float:
    """Leave-one-out accuracy: each sample is classified by the similarity-weighted vote of its ``k``
    nearest others (cosine similarity). Needs no split, so a small labelled set is used whole."""
    n = features.shape[0]
    if n < 2:
        return float("nan")
    normed = F.normalize(features.float(), dim=1)
    similarity = normed @ normed.t()
    similarity.fill_diagonal_(float("-inf"))
    k = min(k, n - 1)
    top, index = similarity.topk(k, dim=1)
    classes = int(labels.max()) + 1
    votes = torch.zeros(n, classes).scatter_add_(1, labels[index], (top / KNN_TEMPERATURE).exp())
    return (votes.argmax(dim=1) == labels).float().mean().item()
