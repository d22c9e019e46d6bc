"""Submodules a task never trains (a frozen CLIP, a distillation teacher), handled once by the engine.

They stay in eval mode (dropout off, BatchNorm statistics fixed) whatever ``model.train()`` does, get no
gradients, and are left out of checkpoints: a CoOp checkpoint holds its few context vectors, not the
150M-parameter CLIP beside them. Loading a checkpoint checks that exactly the frozen keys are missing.

A LoRA run's frozen base is left out the same way, named parameter by parameter (``params``, tied copies
included: GPT-2's ``lm_head.weight`` is its ``wte.weight``): its checkpoints hold the adapters, the head and
their optimizer state. The base's modules keep training mode, since the adapters inside them train.
``build_model`` rebuilds that base the same way on resume, and ``digest`` (a hash of the frozen base
weights, kept in the checkpoint) proves it.
"""

from __future__ import annotations

from torch import nn


class FrozenParts:
    def __init__(self, model: nn.Module, names: list[str], params: list[str] | set[str] = ()):
        self.names = list(names)
        self.modules = [model.get_submodule(name) for name in self.names]
        self.prefixes = tuple(f"{name}." for name in self.names if name)
        self.everything = "" in self.names
        self.params = frozenset(params)
        for module in self.modules:
            module.requires_grad_(False)
        self.digest = base_digest(model, self.params) if self.params else None

    def __bool__(self) -> bool:
        return bool(self.names) or bool(self.params)

    def is_frozen_key(self, key: str) -> bool:
        return self.everything or key.startswith(self.prefixes) or key in self.params

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


def base_digest(model: nn.Module, names=None) -> str:
    """A hash of the model's frozen parameters (``names``, default: every parameter that does not train),
    as float32 bytes in name order: equal for the same base weights wherever they were rebuilt."""
    import hashlib

    import torch

    wanted = None if names is None else set(names)
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        if (name in wanted) if wanted is not None else not param.requires_grad:
            digest.update(name.replace(".base_layer.", ".").encode())
            digest.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
