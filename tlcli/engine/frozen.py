"""Submodules a task never trains (a frozen CLIP, a distillation teacher), handled once by the engine.

They stay in eval mode (dropout off, BatchNorm statistics fixed) whatever ``model.train()`` does, get no
gradients, and are left out of checkpoints: a CoOp checkpoint holds its few context vectors, not the
150M-parameter CLIP beside them. Loading a checkpoint checks that exactly the frozen keys are missing.

The base weights under LoRA adapters are frozen too, parameter by parameter (``frozen_params``): they are
left out of checkpoints the same way (a LoRA checkpoint of a 1B-parameter model holds the adapters and the
optimizer's state of the adapters, not 4 GB of unchanged weights), but their modules keep training mode,
since the adapters inside them train.
"""

from __future__ import annotations

from torch import nn


class FrozenParts:
    def __init__(self, model: nn.Module, names: list[str], frozen_params: set[str] = frozenset()):
        self.names = list(names)
        self.frozen_params = set(frozen_params)  # state-dict keys of parameters that never train (LoRA's base)
        self.modules = [model.get_submodule(name) for name in self.names]
        self.prefixes = tuple(f"{name}." for name in self.names if name)
        self.everything = "" in self.names
        for module in self.modules:
            module.requires_grad_(False)

    def __bool__(self) -> bool:
        return bool(self.names or self.frozen_params)

    def is_frozen_key(self, key: str) -> bool:
        return self.everything or key.startswith(self.prefixes) or key in self.frozen_params

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


def frozen_param_keys(model: nn.Module) -> set[str]:
    """The state-dict keys of every parameter that does not require gradients, tied copies included (GPT-2's
    ``lm_head.weight`` is its ``wte.weight``: one parameter, two keys)."""
    return {name for name, param in model.named_parameters(remove_duplicate=False) if not param.requires_grad}
