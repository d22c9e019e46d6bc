"""Preference losses on summed completion log-probabilities, as TRL computes them (tested against TRL).

- ``dpo`` (Rafailov et al. 2023; TRL's ``loss_type="sigmoid"``): ``-log σ(β (Δchosen - Δrejected))`` where
  ``Δ = log π(y|x) - log π_ref(y|x)``, summed over the completion's tokens.
- ``ipo`` (Azar et al. 2023; TRL's ``"ipo"``): ``((Δchosen/|chosen| - Δrejected/|rejected|) - 1/(2β))²``, the
  log-ratios averaged per completion token, as TRL does (confirmed with the IPO authors, says TRL).
- ``simpo`` (Meng et al. 2024; TRL's CPO trainer with ``loss_type="simpo"``, ``cpo_alpha=0``): no reference;
  ``-log σ(β (avg log π(chosen) - avg log π(rejected)) - γ)``, log-probabilities averaged per token.

``sft`` (TRL's ``loss_type "sft"``, added with a weight as RPO does, Pang et al. 2024): the chosen replies'
negative log-likelihood per token, over all chosen tokens of the batch.

Rewards, for the logs: ``β Δ`` (dpo, ipo: TRL's ``rewards/chosen``) or ``β · average log π`` (simpo).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSSES = ("dpo", "ipo", "simpo")
DEFAULT_BETA = {"dpo": 0.1, "ipo": 0.1, "simpo": 2.0}


@dataclass
class PreferenceOutput:
    losses: torch.Tensor  # (B,) per pair
    chosen_rewards: torch.Tensor  # (B,) detached
    rejected_rewards: torch.Tensor


def preference_loss(kind: str, beta: float, chosen_logps: torch.Tensor, rejected_logps: torch.Tensor,
                    chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
                    ref_chosen_logps: torch.Tensor | None = None, ref_rejected_logps: torch.Tensor | None = None,
                    gamma: float = 0.0) -> PreferenceOutput:
    """Per-pair losses and rewards from summed completion log-probabilities (and token counts)."""
    if kind == "simpo":
        chosen_avg = chosen_logps / chosen_tokens.clamp(min=1)
        rejected_avg = rejected_logps / rejected_tokens.clamp(min=1)
        losses = -F.logsigmoid(beta * (chosen_avg - rejected_avg) - gamma)
        return PreferenceOutput(losses, beta * chosen_avg.detach(), beta * rejected_avg.detach())
    chosen_ratio = chosen_logps - ref_chosen_logps
    rejected_ratio = rejected_logps - ref_rejected_logps
    if kind == "dpo":
        losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    elif kind == "ipo":
        delta = chosen_ratio / chosen_tokens.clamp(min=1) - rejected_ratio / rejected_tokens.clamp(min=1)
        losses = (delta - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"unknown preference loss {kind!r}; one of {', '.join(LOSSES)}")
    return PreferenceOutput(losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach())


def chosen_nll(chosen_logps: torch.Tensor, chosen_tokens: torch.Tensor) -> torch.Tensor:
    """The chosen replies' negative log-likelihood per token, over all their tokens in the batch (TRL's "sft"
    term: the mean of the chosen completion tokens' log-probabilities, negated)."""
    return -chosen_logps.sum() / chosen_tokens.sum().clamp(min=1)
