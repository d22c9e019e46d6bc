"""LoRA adapters on any torch model, through PEFT (the field's library, so the numbers are PEFT's).

One job: choose the modules to adapt, inject PEFT's LoRA layers into a plain ``nn.Module`` in place (no
``PeftModel`` wrapper: the engine, DDP and the checkpoints see the model they always see), and read the
adapters back out in PEFT's own format or merged into the base weights.

Names are module names as ``tlcli layers MODEL`` prints them (``blocks.0.attn.qkv``). A pattern matches a
module when it equals its full name, its last part (``qkv``), or matches it as a glob (``blocks.*.attn.*``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

ADAPTER_NAME = "default"  # PEFT's; a saved adapter loads into PeftModel under it
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"

# Leaf names of attention projections and MLP linears across timm, torchvision, open_clip, BERT-style
# encoders (MiniLM) and causal LMs (GPT-2, Llama-style).
DEFAULT_TARGET_NAMES = frozenset({
    "qkv", "proj", "fc1", "fc2",                                  # timm ViT
    "q", "k", "v", "o",                                           # T5-style
    "query", "key", "value", "dense",                             # BERT / MiniLM
    "q_proj", "k_proj", "v_proj", "o_proj", "out_proj",           # Llama, CLIP text (HF)
    "gate_proj", "up_proj", "down_proj",                          # Llama MLP
    "c_attn", "c_proj", "c_fc",                                   # GPT-2, open_clip MLP
    "in_proj", "linear1", "linear2",                              # torch.nn.Transformer layers
})
ADAPTABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)


def _adaptable(module: nn.Module) -> bool:
    # transformers' GPT-2 uses a Conv1D that is a linear layer with transposed weights; PEFT supports it.
    return isinstance(module, ADAPTABLE) or type(module).__name__ == "Conv1D"


def matches(name: str, patterns: Iterable[str]) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return any(name == p or leaf == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def matching_modules(model: nn.Module, patterns: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Names of the adaptable modules (linear, conv, embedding) that a pattern names, outside ``exclude``
    (module names whose subtree is left alone: a new classifier head that trains in full)."""
    patterns = list(patterns)
    skip = tuple(exclude)
    return [name for name, module in model.named_modules()
            if name and _adaptable(module) and matches(name, patterns)
            and not any(name == e or name.startswith(e + ".") for e in skip)]


def default_targets(model: nn.Module, exclude: Iterable[str] = ()) -> list[str]:
    """The attention projections and MLP linears; a model with none of those (a CNN) gets its convolutions
    with a spatial kernel, where a CNN's capacity is."""
    linear = {n for n, m in model.named_modules() if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"}
    names = [n for n in matching_modules(model, DEFAULT_TARGET_NAMES, exclude) if n in linear]
    if names:
        return names
    skip = tuple(exclude)
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1) and module.groups == 1
            and not any(name == e or name.startswith(e + ".") for e in skip)]


def peft_config(rank: int, alpha: float | None, dropout: float, targets: list[str],
                keep_training: list[str] = (), base_model: str | None = None, fan_in_fan_out: bool = False):
    from peft import LoraConfig

    # Full names as exact-match targets: PEFT matches a string target by suffix, a list element exactly or
    # by ".name" suffix, so a list of full names adapts exactly these modules.
    return LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else 2 * rank, lora_dropout=dropout,
                      target_modules=list(targets), modules_to_save=list(keep_training) or None,
                      base_model_name_or_path=base_model, bias="none", fan_in_fan_out=fan_in_fan_out)


def _transposed(model: nn.Module, targets: list[str]) -> bool:
    """Whether every target stores its weight transposed (GPT-2's Conv1D): PEFT's ``fan_in_fan_out``, said in
    the config so that PEFT does not correct it (with a warning) layer by layer, now and when loading."""
    def base(name: str) -> nn.Module:
        module = model.get_submodule(name)
        return getattr(module, "base_layer", module)  # once injected, the LoRA layer wraps the original

    return bool(targets) and all(type(base(t)).__name__ == "Conv1D" for t in targets)


def apply_lora(model: nn.Module, rank: int, alpha: float | None = None, dropout: float = 0.0,
               targets: list[str] | None = None, keep_training: Iterable[str] = ()) -> list[str]:
    """Inject LoRA layers into ``model`` in place and freeze everything else but ``keep_training`` (module
    names that train in full, such as a new head). Returns the adapted module names.

    Freezing is by ``requires_grad``: the engine puts only trainable parameters in the optimizer, so the
    frozen base has no gradients and no optimizer state.
    """
    from peft import inject_adapter_in_model

    keep = list(keep_training)
    targets = default_targets(model, exclude=keep) if targets is None else list(targets)
    if not targets:
        raise ValueError("no module to adapt: --lora-targets matched nothing (see `tlcli layers MODEL "
                         "--lora-targets PATTERNS`)")
    keep_params = {id(p) for name in keep for p in model.get_submodule(name).parameters()}
    inject_adapter_in_model(peft_config(rank, alpha, dropout, targets, fan_in_fan_out=_transposed(model, targets)),
                            model, adapter_name=ADAPTER_NAME)
    for name, param in model.named_parameters():
        param.requires_grad_(".lora_" in name or id(param) in keep_params)
    return targets


def has_lora(model: nn.Module) -> bool:
    return any(".lora_A." in name for name, _ in model.named_parameters())


def adapted_modules(model: nn.Module) -> list[str]:
    """Names of the modules that hold LoRA adapters (what ``apply_lora`` returned), from the model itself."""
    from peft.tuners.lora import LoraLayer

    return [name for name, module in model.named_modules() if isinstance(module, LoraLayer)]


@contextlib.contextmanager
def adapters_disabled(model: nn.Module):
    """Inside, the model computes as its base: every LoRA layer skips its adapters (PEFT's
    ``enable_adapters(False)`` on each layer; nothing is copied). Adapter weights and their ``requires_grad``
    are as before on exit. A DPO reference under LoRA is the base this way, with no second model in memory."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [module for module in model.modules() if isinstance(module, BaseTunerLayer)]
    was_disabled = [layer.disable_adapters for layer in layers]
    trainable = {name: param.requires_grad for name, param in model.named_parameters()}
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield model
    finally:
        for layer, disabled in zip(layers, was_disabled):
            layer.enable_adapters(not disabled)
        for name, param in model.named_parameters():
            param.requires_grad_(trainable[name])


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' weights with PEFT's key names (what ``adapter_model.safetensors`` holds)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(
        model, adapter_name=ADAPTER_NAME).items()}


def save_adapter(model: nn.Module, folder: Path, rank: int, alpha: float | None, dropout: float,
                 targets: list[str], base_model: str | None = None, key_prefix: str = "",
                 task_type: str | None = None, part: str = "") -> None:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` in PEFT's format, so that
    ``PeftModel.from_pretrained(base, folder)`` rebuilds the adapted model. ``key_prefix`` is where the
    adapted model sits inside the model PEFT will wrap (PEFT prefixes ``base_model.model.`` itself);
    ``task_type`` is PEFT's (``CAUSAL_LM``: ``AutoPeftModelForCausalLM`` loads the folder); ``part`` is the
    submodule of ``model`` that is the model PEFT will wrap (``lm`` of a wrapper the engine trained: the
    adapters were injected into the whole, ``targets`` are named within the part). Non-finite adapter
    weights are refused (JobFailed), as every tlcli export refuses them."""
    from safetensors.torch import save_file

    from tlcli.runs.artifacts import first_nonfinite

    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"{key_prefix}." if key_prefix else ""
    inner = model.get_submodule(part) if part else model
    config = peft_config(rank, alpha, dropout, [f"{prefix}{t}" for t in targets], base_model=base_model,
                         fan_in_fan_out=_transposed(inner, targets))
    within = f"{part}." if part else ""
    state = {f"base_model.model.{prefix}{k[len(within):]}": v for k, v in adapter_state(model).items()
             if k.startswith(within)}
    bad = first_nonfinite(state)
    if bad is not None:
        from tlcli.console.errors import JobFailed

        raise JobFailed(f"the trained adapters are not finite (NaN or inf in {bad}); no adapter exported. Lower "
                        "--lr or pass --clip-grad, and start again")
    save_file(state, str(folder / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    config_dict = config.to_dict()
    config_dict["target_modules"] = sorted(config_dict["target_modules"])
    if task_type:
        config_dict["task_type"] = task_type
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config_dict, indent=2, default=list) + "\n")


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain base layer back (PEFT's
    ``merge_and_unload`` on an unwrapped model). The result has the base model's structure and state keys."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge(safe_merge=True)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    return model
