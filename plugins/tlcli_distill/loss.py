"""The distillation losses: soft targets (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
Network", 2015) and the feature hint (Romero et al., "FitNets: Hints for Thin Deep Nets", 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

UNLABELLED = -1  # the label of an image that has none: its loss is the soft term alone (alpha = 1)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """Mean over the batch of ``a_i * T^2 * KL(p_T(teacher) || p_T(student)) + (1 - a_i) * CE(student, y_i)``.

    ``p_T`` is the softmax of logits divided by ``T``; the ``T^2`` keeps the soft term's gradients on the
    scale of the hard one's whatever ``T`` (Hinton et al., section 2). ``a_i`` is ``alpha`` for a labelled
    image and 1 for one whose label is ``UNLABELLED`` (only the teacher speaks for it).
    """
    s = student_logits.float() / temperature
    t = teacher_logits.float() / temperature
    log_p_student = F.log_softmax(s, dim=1)
    log_p_teacher = F.log_softmax(t, dim=1)
    soft = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1) * temperature**2
    labelled = labels != UNLABELLED
    hard = F.cross_entropy(student_logits.float(), labels.clamp_min(0), reduction="none")
    weight = torch.where(labelled, torch.full_like(soft, alpha), torch.ones_like(soft))
    return (weight * soft + (1 - weight) * torch.where(labelled, hard, torch.zeros_like(hard))).mean()


def feature_loss(regressed_student: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """FitNets' hint loss on penultimate features: the mean over the batch and the feature dimension of
    ``(r(s_i) - t_i)^2``, where ``r`` is the learned linear regressor from the student's feature width to
    the teacher's (already applied: ``regressed_student`` is ``r(s)``) and ``t`` the teacher's features."""
    return F.mse_loss(regressed_student.float(), teacher_features.float())
