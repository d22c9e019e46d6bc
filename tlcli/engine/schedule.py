"""Learning-rate schedules as plain functions of the optimizer step (nanoGPT style): nothing to save
but the step, so resume is exact."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "onecycle", "constant")


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier on each group's base lr for optimizer step ``step`` (0-based)."""
    total_steps = max(1, total_steps)
    if schedule == "onecycle":
        # Leslie Smith's one-cycle: cosine ramp up for 30% (or the warmup given), cosine down to ~0.
        peak = warmup_steps or max(1, int(0.3 * total_steps))
        if step < peak:
            return 0.04 + 0.96 * (1 - math.cos(math.pi * step / peak)) / 2
        progress = min(1.0, (step - peak) / max(1, total_steps - peak))
        return 1e-4 + (1 - 1e-4) * (1 + math.cos(math.pi * progress)) / 2
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
