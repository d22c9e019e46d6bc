"""Submodules a task never trains (a frozen CLIP, a distillation teacher), handled once by the engine.

They stay in eval mode (dropout off, BatchNorm statistics fixed) whatever ``model.train()`` does, get no
gradients, and are left out of checkpoints: a CoOp checkpoint holds its few context vectors, not the
150M-parameter CLIP beside them. Loading a checkpoint checks that exactly the frozen keys are missing.
"""

from __future__ import annotations

from torch import nn


class FrozenParts:
    def __init__(self, model: nn.Module, names: list[str]):
        self.names = list(names)
        self.modules = [model.get_submodule(name) for name in self.names]
        self.prefixes = tuple(f"{name}." for name in self.names if name)
        self.everything = "" in self.names
        for module in self.modules:
            module.requires_grad_(False)

    def __bool__(self) -> bool:
        return bool(self.names)

    def is_frozen_key(self, key: str) -> bool:
        return self.everything or key.startswith(self.prefixes)

    def keep_eval(self) -> None:
        """Call after ``model.train()``: put the frozen parts back in eval mode."""
        for module in self.modules:
            module.eval()

    def trainable_state(self, model: nn.Module) -> dict:
        """The model's state without the frozen parts (what checkpoints hold)."""
        return {k: v for k, v in model.state_dict().items() if not self.is_frozen_key(k)}

    def load_trainable_state(self, model: nn.Module, state: dict) -> None:
        if not self:
            model.load_state_dict(state)
            return
        result = model.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not self.is_frozen_key(k)]
        if missing or result.unexpected_keys:
            raise RuntimeError(f"checkpoint does not match the model: missing {missing[:5]}, "
                               f"unexpected {result.unexpected_keys[:5]}")
