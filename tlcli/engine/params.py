"""Blocks, freezing and parameter groups (timm's freeze() and _param_groups.py are the model).

A *block* is a named, ordered unit of a model from input to output (``conv1``, ``layer1``..``layer4``,
``fc``): the names ``--freeze-until`` accepts, the units of gradual unfreezing and of discriminative
learning rates. Loose parameters (a ViT's class token) are blocks of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

# Stages that users name as a whole (`layer3`), even when they hold many repeated blocks.
_STAGE_BLOCK_CLASSES = {"BasicBlock", "Bottleneck", "CNBlock"}
_MIN_STACK = 8  # a Sequential/ModuleList of this many same-class blocks is a transformer-like stack
_NO_DECAY_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


@dataclass
class Block:
    name: str
    params: dict[str, nn.Parameter] = field(default_factory=dict)  # full parameter name -> parameter
    modules: list[nn.Module] = field(default_factory=list)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.params.values())

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.params.values())


def _is_stack(module: nn.Module) -> bool:
    if not isinstance(module, (nn.Sequential, nn.ModuleList)):
        return False
    children = list(module.children())
    if len(children) < _MIN_STACK:
        return False
    kinds = {type(child).__name__ for child in children}
    return len(kinds) == 1 and not kinds & _STAGE_BLOCK_CLASSES


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _split(prefix: str, module: nn.Module) -> list[tuple[str, nn.Module | nn.Parameter]]:
    """Direct parts of a module in order: embedding-like loose parameters, children, other loose ones."""
    first, children, last = [], [], []
    for name, param in module.named_parameters(recurse=False):
        is_input_side = any(key in name for key in ("embed", "token", "cls", "pos"))
        (first if is_input_side else last).append((prefix + name, param))
    for name, child in module.named_children():
        children.append((prefix + name, child))
    return first + children + last


def _should_expand(module: nn.Module) -> bool:
    if _is_stack(module):
        return True
    total = _count(module)
    return total > 0 and any(_is_stack(c) and _count(c) * 2 >= total for c in module.children())


def list_blocks(model: nn.Module) -> list[Block]:
    """The model's blocks in input-to-output order. Only blocks that hold parameters are listed.

    Top-level children, with transformer-like stacks expanded (``encoder.layers.encoder_layer_0``...), and
    a model of fewer than four parametrised parts split further at its largest part (EfficientNet's
    ``features`` becomes ``features.0``..``features.8``).
    """
    parts = _split("", model)

    def expand(parts):
        out = []
        for name, part in parts:
            if isinstance(part, nn.Module) and _should_expand(part):
                out.extend(expand(_split(name + ".", part)))
            else:
                out.append((name, part))
        return out

    parts = expand(parts)
    while sum(1 for _, p in parts if _numel(p)) < 4:
        largest = max(range(len(parts)), key=lambda i: _numel(parts[i][1]))
        name, part = parts[largest]
        if not isinstance(part, nn.Module) or not list(part.children()):
            break
        parts[largest : largest + 1] = expand(_split(name + ".", part))
    blocks = []
    for name, part in parts:
        if not _numel(part):
            continue
        if isinstance(part, nn.Parameter):
            blocks.append(Block(name, {name: part}, []))
        else:
            params = {f"{name}.{n}": p for n, p in part.named_parameters()}
            blocks.append(Block(name, params, [part]))
    return blocks


def block_name(blocks: list[Block], name: str | None) -> str | None:
    """``name`` as one of ``blocks``' names: as given, or with the prefix of the only block path it ends
    (``transformer.resblocks.8`` names ``visual.transformer.resblocks.8`` of a CLIP image classifier)."""
    names = [b.name for b in blocks]
    if name is None or name in names:
        return name
    matches = [n for n in names if n.endswith("." + name)]
    return matches[0] if len(matches) == 1 else name


def _numel(part) -> int:
    return part.numel() if isinstance(part, nn.Parameter) else _count(part)


def block_names(blocks: Iterable[Block]) -> list[str]:
    return [b.name for b in blocks]


def freeze_until(blocks: list[Block], name: str | None) -> int:
    """Freeze every block up to and including ``name``; the rest trainable. Returns the index of the
    first trainable block (0 when nothing is frozen). Raises KeyError for an unknown name."""
    names = block_names(blocks)
    boundary = 0 if name is None else names.index(name) + 1
    for i, block in enumerate(blocks):
        for param in block.params.values():
            param.requires_grad_(i >= boundary)
    return boundary


def set_trainable(block: Block, trainable: bool) -> None:
    for param in block.params.values():
        param.requires_grad_(trainable)


def apply_train_mode(model: nn.Module, train_bn: bool = False) -> None:
    """model.train(), except BatchNorm layers whose parameters are frozen: they stay in eval mode so their
    running statistics don't change (unless ``train_bn``)."""
    model.train()
    if train_bn:
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def _no_decay_names(model: nn.Module) -> set[str]:
    """Biases, 1-D parameters and every parameter of a norm layer: no weight decay (timm's rule)."""
    names = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if param.ndim <= 1 or param_name.endswith("bias") or isinstance(module, _NO_DECAY_TYPES):
                names.add(full)
            # Token/position embeddings are not decayed either.
            elif any(key in param_name for key in ("pos_embed", "positional_embedding", "class_embedding",
                                                   "cls_token", "class_token", "pos_embedding")):
                names.add(full)
    return names


@dataclass
class ParamGroup:
    name: str
    params: list[nn.Parameter]
    lr: float
    weight_decay: float

    def as_torch(self) -> dict:
        return {"params": self.params, "lr": self.lr, "weight_decay": self.weight_decay, "name": self.name}


def discriminative_groups(
    model: nn.Module, blocks: list[Block], first_trainable: int, lr: float, lr_decay: float,
    weight_decay: float, include_frozen: bool = False,
) -> list[ParamGroup]:
    """One group per block (two when it has decayed and non-decayed parameters), the last block at
    ``lr`` and each earlier block ``lr_decay`` times the next one's (fastai's slice, timm's layer decay).

    Blocks before ``first_trainable`` are left out, unless ``include_frozen`` (gradual unfreezing: they
    get their groups now and receive gradients once unfrozen; an optimizer skips parameters without
    gradients, so frozen ones stay bit-for-bit unchanged). Otherwise a frozen parameter inside a trainable
    block (a LoRA layer's base weight) is left out: it never trains and must hold no optimizer state.
    """
    no_decay = _no_decay_names(model)
    groups = []
    start = 0 if include_frozen else first_trainable
    last = len(blocks) - 1
    placed: set[int] = set()  # a tied parameter (GPT-2's lm_head is its wte) joins the first block holding it
    for i in range(start, len(blocks)):
        block = blocks[i]
        block_lr = lr * (lr_decay ** (last - i))
        own = {n: p for n, p in block.params.items()
               if id(p) not in placed and (include_frozen or p.requires_grad)}
        placed.update(id(p) for p in own.values())
        decay = [p for n, p in own.items() if n not in no_decay]
        plain = [p for n, p in own.items() if n in no_decay]
        if decay:
            groups.append(ParamGroup(block.name, decay, block_lr, weight_decay))
        if plain:
            groups.append(ParamGroup(f"{block.name}/no_decay", plain, block_lr, 0.0))
    return groups


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def block_states(blocks: list[Block]) -> list[dict]:
    """For events: every block with its parameter count and trainable flag."""
    return [{"name": b.name, "params": b.num_params, "trainable": b.trainable} for b in blocks]


def clone_frozen(blocks: list[Block]) -> dict[str, torch.Tensor]:  # used by tests and sanity checks
    return {n: p.detach().clone() for b in blocks if not b.trainable for n, p in b.params.items()}
