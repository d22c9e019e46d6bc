from __future__ import annotations

import torch

from tlcli_selfsup.pseudolabel import select_confident


def test_threshold_and_class_cap_are_respected():
    probabilities = torch.tensor([
        [0.95, 0.05], [0.97, 0.03], [0.99, 0.01], [0.60, 0.40],  # class 0: three confident, one not
        [0.08, 0.92], [0.10, 0.90], [0.20, 0.80],                # class 1: two at or above 0.9
    ])
    kept, labels = select_confident(probabilities, threshold=0.9, cap=2)
    assert kept.tolist() == [1, 2, 4, 5]  # class 0 keeps its two most confident (rows 2, 1), not row 0
    assert labels.tolist() == [0, 0, 1, 1]
    kept, _ = select_confident(probabilities, threshold=0.9, cap=None)
    assert kept.tolist() == [0, 1, 2, 4, 5]
    kept, _ = select_confident(probabilities, threshold=0.999, cap=None)
    assert kept.numel() == 0
