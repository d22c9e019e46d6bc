"""Moved to core (tlcli.data.decoded) so other plugins train on image folders the same way; kept here
so existing imports keep working."""

from tlcli.data.decoded import (  # noqa: F401
    INTERPOLATIONS, MEMORY_BUDGET_BYTES, DecodedImages, EvalImages, TrainImages, eval_transform, train_transform,
)
