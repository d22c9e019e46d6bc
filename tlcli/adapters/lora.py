"""LoRA adapters on any torch model, through PEFT (the field's library, so the numbers are PEFT's).

One job: choose the modules to adapt, inject PEFT's LoRA layers into a plain ``nn.Module`` in place (no
``PeftModel`` wrapper: the engine, DDP and the checkpoints see the model they always see), and read the
adapters back out in PEFT's own format or merged into the base weights.

Names are module names as ``tlcli layers MODEL`` prints them (``blocks.0.attn.qkv``). A pattern matches a
module when it equals its full name, its last part (``qkv``), or matches it as a glob (``blocks.*.attn.*``);
``default`` stands for the default targets. Linear, convolution and embedding layers are adapted as PEFT
adapts them; an ``nn.MultiheadAttention`` (open_clip, torchvision ViT) through its fused q,k,v weight
(PEFT's ``target_parameters``, see :func:`is_attention`).
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
# A Linear under a module of one of these names is an MLP linear (torchvision ViT's mlp.0 / mlp.3).
MLP_PARENTS = frozenset({"mlp", "ffn", "feed_forward"})
DEFAULT = "default"  # in --lora-targets: the default targets (``default,patch_embed.proj``)
# What LoRA adapts in an nn.MultiheadAttention (open_clip towers, torchvision ViT): its fused q,k,v weight.
IN_PROJ = "in_proj_weight"


def is_attention(module: nn.Module) -> bool:
    """An ``nn.MultiheadAttention`` whose q, k, v share one ``in_proj_weight`` (open_clip, torchvision ViT).

    It is adapted through that parameter (PEFT's ``target_parameters``): q, k and v get one LoRA on their
    fused (3d x d) weight, as LoRA adapts timm's fused ``qkv`` Linear. Its ``out_proj`` is never adapted:
    the attention reads ``out_proj.weight`` directly and never calls the Linear, so a LoRA layer there
    would be ignored (PEFT's own MultiheadAttention layer works around that by merging and unmerging
    weights on every forward pass, which makes the frozen base drift by rounding)."""
    return isinstance(module, nn.MultiheadAttention) and bool(getattr(module, "_qkv_same_embed_dim", False))


def _adaptable(module: nn.Module) -> bool:
    # transformers' GPT-2 uses a Conv1D that is a linear layer with transposed weights; PEFT supports it.
    return isinstance(module, ADAPTABLE) or type(module).__name__ == "Conv1D" or is_attention(module)


def _linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def _never_called(model: nn.Module) -> set[str]:
    """Names of Linear layers whose forward never runs: the ``out_proj`` of an nn.MultiheadAttention."""
    return {f"{name}.out_proj" if name else "out_proj" for name, module in model.named_modules()
            if isinstance(module, nn.MultiheadAttention)}


def _outside(name: str, exclude: tuple[str, ...]) -> bool:
    return not any(name == e or name.startswith(e + ".") for e in exclude)


def matches(name: str, patterns: Iterable[str]) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return any(name == p or leaf == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def matching_modules(model: nn.Module, patterns: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Names of the adaptable modules (linear, conv, embedding, multi-head attention) that a pattern names,
    outside ``exclude`` (module names whose subtree is left alone: a new classifier head that trains in
    full), in the model's order. The pattern ``default`` stands for :func:`default_targets`."""
    patterns = list(patterns)
    skip = tuple(exclude)
    chosen = set(default_targets(model, skip)) if DEFAULT in patterns else set()
    patterns = [p for p in patterns if p != DEFAULT]
    ignored = _never_called(model)
    return [name for name, module in model.named_modules()
            if name and _outside(name, skip) and name not in ignored
            and (name in chosen or (_adaptable(module) and matches(name, patterns)))]


def default_targets(model: nn.Module, exclude: Iterable[str] = ()) -> list[str]:
    """The attention projections and MLP linears (multi-head attention modules count for their q,k,v);
    a model with none of those (a CNN) gets its convolutions with a spatial kernel, where a CNN's
    capacity is."""
    skip = tuple(exclude)
    ignored = _never_called(model)
    names = []
    for name, module in model.named_modules():
        if not name or not _outside(name, skip) or name in ignored:
            continue
        parent_leaf = name.rsplit(".", 2)[-2] if name.count(".") else ""
        if is_attention(module) or (_linear(module) and (name.rsplit(".", 1)[-1] in DEFAULT_TARGET_NAMES
                                                          or parent_leaf in MLP_PARENTS)):
            names.append(name)
    if names:
        return names
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1) and module.groups == 1
            and _outside(name, skip)]


def resolve_targets(model: nn.Module, patterns: Iterable[str] | None, exclude: Iterable[str] = ()) -> list[str]:
    """``--lora-targets`` against ``model``: the matching modules, or the default targets without patterns."""
    return matching_modules(model, patterns, exclude) if patterns else default_targets(model, exclude)


def describe_target(module: nn.Module) -> str:
    """What LoRA adapts in a target module, for `tlcli layers --lora-targets`."""
    from peft.tuners.lora import LoraLayer

    while isinstance(module, LoraLayer):
        module = module.get_base_layer()
    if is_attention(module):
        return f"q,k,v ({IN_PROJ} {tuple(module.in_proj_weight.shape)[0]}x{tuple(module.in_proj_weight.shape)[1]})"
    if isinstance(module, nn.Linear):
        return f"linear {module.in_features}->{module.out_features}"
    if isinstance(module, nn.Conv2d):
        return f"conv {module.in_channels}->{module.out_channels} {'x'.join(map(str, module.kernel_size))}"
    if isinstance(module, nn.Embedding):
        return f"embedding {module.num_embeddings}x{module.embedding_dim}"
    return type(module).__name__


def split_targets(model: nn.Module, targets: Iterable[str]) -> tuple[list[str], list[str]]:
    """(module targets, parameter targets): attention modules are adapted through their ``in_proj_weight``."""
    modules, parameters = [], []
    for name in targets:
        module = _unwrapped(model.get_submodule(name))
        (parameters if is_attention(module) else modules).append(f"{name}.{IN_PROJ}" if is_attention(module)
                                                                 else name)
    return modules, parameters


def _unwrapped(module: nn.Module) -> nn.Module:
    base = getattr(module, "get_base_layer", None)
    return base() if callable(base) else module


def _module_spec(model: nn.Module, modules: list[str], prefix: str = ""):
    """PEFT's ``target_modules`` for exactly these names (each written with ``prefix``). PEFT matches a list
    element by equality or as a ``.name`` suffix, so ``transformer.resblocks.0.mlp.c_fc`` (CLIP's text
    tower) would also adapt ``visual.transformer.resblocks.0.mlp.c_fc``: where a name is such a suffix of
    a module not chosen, an anchored regular expression (which PEFT matches whole) is written instead."""
    import re

    chosen = set(modules)
    others = [n for n, _ in model.named_modules() if n and n not in chosen]
    names = sorted(prefix + n for n in modules)
    if not any(other.endswith("." + name) for name in chosen for other in others):
        return names
    return "^(?:" + "|".join(re.escape(n) for n in names) + ")$"


def peft_config(rank: int, alpha: float | None, dropout: float, targets: list[str],
                keep_training: list[str] = (), base_model: str | None = None, parameters: list[str] = (),
                model: nn.Module | None = None, fan_in_fan_out: bool = False):
    """PEFT's ``LoraConfig`` adapting exactly ``targets`` (module names) and ``parameters`` (parameter
    names: an attention's ``in_proj_weight``). With ``model``, module names that PEFT's suffix matching
    would confuse with others are written as an anchored regular expression (see ``_module_spec``).
    ``fan_in_fan_out``: the targets store their weights transposed (GPT-2's Conv1D)."""
    from peft import LoraConfig

    modules = _module_spec(model, list(targets)) if model is not None else list(targets)
    return LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else 2 * rank, lora_dropout=dropout,
                      target_modules=modules, target_parameters=list(parameters) or None,
                      modules_to_save=list(keep_training) or None, base_model_name_or_path=base_model, bias="none",
                      fan_in_fan_out=fan_in_fan_out)


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
    frozen base has no gradients and no optimizer state. Raises ValueError (a usage error's message) when
    nothing matches or PEFT cannot adapt a target as asked.
    """
    from peft import inject_adapter_in_model

    keep = list(keep_training)
    targets = default_targets(model, exclude=keep) if targets is None else list(targets)
    if not targets:
        raise ValueError("no module to adapt: --lora-targets matched nothing (see `tlcli layers MODEL "
                         "--lora-targets PATTERNS`)")
    modules, parameters = split_targets(model, targets)
    if parameters and dropout:
        raise ValueError(f"--lora-dropout {dropout}: PEFT adapts an attention's fused q,k,v weight ({IN_PROJ}) "
                         "without dropout; pass --lora-dropout 0, or --lora-targets without attention modules")
    keep_params = {id(p) for name in keep for p in model.get_submodule(name).parameters()}
    config = peft_config(rank, alpha, dropout, modules, parameters=parameters, model=model,
                         fan_in_fan_out=_transposed(model, modules))
    try:
        inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    except (ValueError, TypeError, RuntimeError) as error:
        raise ValueError(f"PEFT cannot adapt these --lora-targets ({' '.join(str(error).split())[:200]})") from None
    adapted = adapted_modules(model)
    if sorted(adapted) != sorted(targets):  # PEFT matches parameter names by suffix: refuse a wider match
        extra = sorted(set(adapted) - set(targets))
        raise ValueError(f"--lora-targets: PEFT would also adapt {', '.join(extra[:3])} (it matches parameter "
                         "names by their ending); target those modules too, or neither")
    for name, param in model.named_parameters():
        param.requires_grad_(".lora_" in name or id(param) in keep_params)
    return targets


def adapted_modules(model: nn.Module) -> list[str]:
    """Names of the modules holding LoRA adapters (outermost wrappers), in the model's order: the
    targets as ``apply_lora`` was given them."""
    from peft.tuners.lora import LoraLayer

    names: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and not any(name.startswith(n + ".") for n in names):
            names.append(name)
    return names


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
    """The adapters' weights with PEFT's key names (what ``adapter_model.safetensors`` holds: the parameter
    names without the adapter's name, as ``get_peft_model_state_dict`` writes them for LoRA). Works on any
    submodule of the model the adapters were injected into."""
    state = {}
    for name, param in model.named_parameters():
        if ".lora_" not in f".{name}":
            continue
        key = name.replace(f".{ADAPTER_NAME}.", ".")
        key = key.removesuffix(f".{ADAPTER_NAME}")
        state[key] = param.detach().cpu().contiguous()
    return state


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
    sub = model.get_submodule(part) if part else model
    modules, parameters = split_targets(sub, targets)
    config = peft_config(rank, alpha, dropout, [], base_model=base_model,
                         parameters=[f"{prefix}{t}" for t in parameters],
                         fan_in_fan_out=_transposed(sub, modules))
    config.target_modules = _module_spec(sub, modules, prefix)
    state = {f"base_model.model.{prefix}{k}": v for k, v in adapter_state(sub).items()}
    bad = first_nonfinite(state)
    if bad is not None:
        from tlcli.console.errors import JobFailed

        raise JobFailed(f"the trained adapters are not finite (NaN or inf in {bad}); no adapter exported. Lower "
                        "--lr or pass --clip-grad, and start again")
    save_file(state, str(folder / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    config_dict = config.to_dict()
    for key in ("target_modules", "target_parameters"):
        if isinstance(config_dict.get(key), (set, list, tuple)):
            config_dict[key] = sorted(config_dict[key])
    if task_type:
        config_dict["task_type"] = task_type
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config_dict, indent=2, default=list) + "\n")


def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor], key_prefix: str = "") -> None:
    """Put saved adapter weights (PEFT's keys, as ``adapter_model.safetensors`` holds them) into a model that
    ``apply_lora`` adapted with the same targets. Every adapter must be there, and nothing else."""
    prefix = "base_model.model." + (f"{key_prefix}." if key_prefix else "")
    own = {name for name, _ in model.named_parameters() if ".lora_" in name}
    mapped = {}
    for key, value in state.items():
        name = key.removeprefix(prefix)
        for part in (".lora_A.", ".lora_B."):
            name = name.replace(part, f"{part}{ADAPTER_NAME}.")
        mapped[name] = value
    missing, unexpected = sorted(own - set(mapped)), sorted(set(mapped) - own)
    if missing or unexpected:
        raise ValueError(f"the adapter does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in mapped.items():
            if params[name].shape != value.shape:
                raise ValueError(f"the adapter's {name} has shape {tuple(value.shape)}, the model's "
                                 f"{tuple(params[name].shape)}")
            params[name].copy_(value)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain base layer back (PEFT's
    ``merge_and_unload`` on an unwrapped model). The result has the base model's structure and state keys."""
    for name in adapted_modules(model):
        module = model.get_submodule(name)
        if hasattr(module, "unload_and_optionally_merge_module"):  # attention (ParamWrapper)
            base = module.unload_and_optionally_merge_module(merge=True, safe_merge=True, adapter_names=None)
        else:
            module.merge(safe_merge=True)
            base = module.get_base_layer()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, base)
    return model
