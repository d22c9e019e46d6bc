"""The distillation loss against a hand-written NumPy reference on fixed logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tlcli_distill.loss import UNLABELLED, distillation_loss

STUDENT = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0], [-2.0, 1.5, 1.0], [0.0, 0.0, 0.0]])
TEACHER = np.array([[4.0, 0.0, -1.0], [1.0, -3.0, 2.5], [0.5, 0.5, 6.0], [3.0, -1.0, 0.0]])


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference(student, teacher, labels, T, alpha):
    """Hinton et al. written out: per image a*T^2*sum p_t (log p_t - log p_s) + (1-a)*(-log q_y), a=1 unlabelled."""
    total = 0.0
    p_t, p_s, q = _softmax(teacher / T), _softmax(student / T), _softmax(student)
    for i, y in enumerate(labels):
        kl = sum(p_t[i, c] * (np.log(p_t[i, c]) - np.log(p_s[i, c])) for c in range(student.shape[1]))
        a = 1.0 if y == UNLABELLED else alpha
        ce = 0.0 if y == UNLABELLED else -np.log(q[i, y])
        total += a * T * T * kl + (1 - a) * ce
    return total / len(labels)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 10.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 1.0])
def test_loss_equals_the_hand_written_reference(T, alpha):
    labels = [0, 2, 1, 1]
    got = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(labels), T, alpha)
    assert float(got) == pytest.approx(reference(STUDENT, TEACHER, labels, T, alpha), rel=1e-5, abs=1e-6)


def test_the_soft_term_is_scaled_by_t_squared():
    """alpha = 1 isolates the soft term: T^2 * KL, not KL (a missing T^2 shrinks it ~T^2 times at large T)."""
    labels = torch.tensor([0, 1, 2, 0])
    s, t = torch.tensor(STUDENT), torch.tensor(TEACHER)
    for T in (2.0, 8.0):
        kl = torch.nn.functional.kl_div(torch.log_softmax(s / T, 1), torch.log_softmax(t / T, 1),
                                        reduction="batchmean", log_target=True)
        assert float(distillation_loss(s, t, labels, T, 1.0)) == pytest.approx(float(kl) * T * T, rel=1e-5)


def test_no_labels_means_alpha_one_whatever_alpha_says():
    none = torch.full((4,), UNLABELLED)
    s, t = torch.tensor(STUDENT), torch.tensor(TEACHER)
    pure_soft = distillation_loss(s, t, torch.tensor([0, 1, 2, 0]), 4.0, 1.0)
    for alpha in (0.0, 0.5, 0.9):
        assert float(distillation_loss(s, t, none, 4.0, alpha)) == pytest.approx(float(pure_soft), rel=1e-6)
    # mixed batch: the unlabelled rows still count with alpha = 1
    mixed = [0, UNLABELLED, 1, UNLABELLED]
    got = distillation_loss(s, t, torch.tensor(mixed), 3.0, 0.25)
    assert float(got) == pytest.approx(reference(STUDENT, TEACHER, mixed, 3.0, 0.25), rel=1e-5)


def test_a_student_equal_to_the_teacher_has_zero_soft_loss_and_the_teacher_gets_no_gradient():
    s = torch.tensor(TEACHER, requires_grad=True)
    t = torch.tensor(TEACHER, requires_grad=True)
    loss = distillation_loss(s, t.detach(), torch.full((4,), UNLABELLED), 4.0, 0.5)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert t.grad is None and s.grad is not None
