"""Resolve an image backbone by name: torchvision names, ``timm:NAME``, open_clip image towers ``clip:NAME``.

Like open_clip's factory: a name resolves to an architecture, a pretrained tag to a download or a cached
file, and every failure says what would have worked. Structure alone (``pretrained="none"``) never needs
the network.
"""

from __future__ import annotations

import difflib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from tlcli.console.errors import UsageError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
DOWNLOAD_TIMEOUT_S = 10


@dataclass
class VisionModel:
    model: nn.Module
    spec: str
    family: str  # torchvision | timm | clip
    preprocessing: dict = field(default_factory=dict)  # resize, crop, mean, std, interpolation
    head_names: list[str] = field(default_factory=list)  # parameter-name prefixes of the classifier head


def _default_preprocessing() -> dict:
    return {"resize": 256, "crop": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "interpolation": "bilinear"}


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else f"e.g. {', '.join(known[:8])}"


def build_vision_model(spec: str, pretrained: str = "none", num_classes: int | None = None,
                       image_size: int | None = None) -> VisionModel:
    """The backbone named by ``spec``, with ``pretrained`` weights ('none', 'default' or a tag), and a new
    classifier head for ``num_classes`` when given.

    ``image_size``: the square input it will see. A model built for one size (a ViT's position embeddings)
    is built for this one, its pretrained position embeddings interpolated (as timm and open_clip do);
    a model that still cannot take that size is refused in one line."""
    if spec.startswith("hf-hub:"):  # timm's and open_clip's naming of a Hugging Face Hub model
        built = _timm(spec, spec, pretrained, num_classes, image_size)
    elif spec.startswith("timm:"):
        built = _timm(spec, spec[5:], pretrained, num_classes, image_size)
    elif spec.startswith("clip:"):
        built = _clip(spec, spec[5:], pretrained, num_classes, image_size)
    else:
        built = _torchvision(spec, pretrained, num_classes, image_size)
    if image_size is not None and image_size != built.preprocessing.get("crop"):
        _check_input_size(built.model, spec, image_size, built.preprocessing.get("crop"))
    return built


def _check_input_size(model: nn.Module, spec: str, image_size: int, native) -> None:
    """One forward pass of a blank image of ``image_size``: a model that cannot take it (fixed windows,
    a patch size that does not divide it) is refused here, in one line, rather than mid-training."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, image_size, image_size))
    except (RuntimeError, ValueError, AssertionError, IndexError, TypeError) as error:
        first = " ".join(str(error).split())[:200]
        raise UsageError(f"--image-size {image_size}: {spec} cannot take {image_size}px images ({first}); "
                         f"use its native size{f' {native}' if native else ''} or a multiple of its patch "
                         "size") from None
    finally:
        model.train(was_training)


# --- torchvision ---------------------------------------------------------------------------------------------

def _torchvision(name: str, pretrained: str, num_classes: int | None, image_size: int | None = None) -> VisionModel:
    import torchvision

    known = sorted(torchvision.models.list_models(module=torchvision.models))
    if name not in known:
        raise UsageError(f"unknown model {name!r}: {_suggest(name, known)} (or timm:NAME, clip:NAME)")
    vit = name.startswith("vit_")  # built for one input size: position embeddings per patch
    sized = {"image_size": image_size} if vit and image_size is not None else {}
    if sized:
        patch = int(name.split("_")[2])
        if image_size % patch:
            raise UsageError(f"--image-size {image_size}: {name} takes a multiple of its patch size {patch} "
                             f"(e.g. {max(patch, image_size // patch * patch)} or 224)")
    model = torchvision.models.get_model(name, weights=None, **sized)
    preprocessing = _default_preprocessing()
    if pretrained != "none":
        weights = _torchvision_weights(name, pretrained)
        state = _download_state_dict(weights.url)
        if sized and state["encoder.pos_embedding"].shape != model.encoder.pos_embedding.shape:
            from torchvision.models.vision_transformer import interpolate_embeddings

            state = interpolate_embeddings(image_size, model.patch_size, state)
        model.load_state_dict(state)
        transforms = weights.transforms()
        preprocessing = {
            "resize": int(transforms.resize_size[0]), "crop": int(transforms.crop_size[0]),
            "mean": list(transforms.mean), "std": list(transforms.std),
            "interpolation": transforms.interpolation.value,
        }
    head = []
    if num_classes is not None:
        head = [replace_last_linear(model, num_classes)]
    return VisionModel(model, name, "torchvision", preprocessing, head)


def _torchvision_weights(name: str, tag: str):
    import torchvision

    known = sorted(torchvision.models.list_models(module=torchvision.models))
    if name not in known:
        raise UsageError(f"unknown model {name!r}: {_suggest(name, known)} (or timm:NAME, clip:NAME)")
    enum = torchvision.models.get_model_weights(name)
    if tag == "default":
        return enum.DEFAULT
    tags = [w.name for w in enum]
    if tag not in tags:
        raise UsageError(f"--pretrained {tag!r} is not a weight tag of {name}; use default, none, or one of "
                         f"{', '.join(tags)}")
    return enum[tag]


def _download_state_dict(url: str) -> dict:
    """Load weights from torch's hub cache, downloading them once; offline, fail within seconds."""
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    target = cache / os.path.basename(urlparse(url).path)
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            torch.hub.download_url_to_file(url, str(target), progress=False)
        except Exception as error:  # no network, proxy, DNS...: say where the file should be
            raise UsageError(
                f"could not download pretrained weights ({type(error).__name__}); looked in {cache}. "
                f"Put {target.name} there, pass --weights PATH (safetensors or a state dict), or use "
                f"--pretrained none"
            ) from None
        finally:
            socket.setdefaulttimeout(previous)
    return torch.load(target, map_location="cpu", weights_only=True)


def replace_last_linear(model: nn.Module, num_classes: int) -> str:
    """Swap the model's last nn.Linear (its classifier) for a new one with ``num_classes`` outputs.
    Returns the head's module name."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise UsageError("this model has no linear classifier head to replace")
    parent_name, _, child = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, nn.Linear(old.in_features, num_classes))
    return last


def last_linear_name(model: nn.Module) -> str | None:
    """The module name of the model's last nn.Linear: its classifier head, as ``replace_last_linear`` and
    ``build_backbone`` see it."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    return last


def logits_and_head_input(model: nn.Module, head: str, images: torch.Tensor):
    """``(model(images), features)``: the logits and what the classifier head (module name ``head``) read,
    flattened to (N, D), i.e. the penultimate features that feature (hint) distillation matches. One
    forward pass; a hook on the head sees its input, so no model has to expose a features method."""
    seen: list[torch.Tensor] = []
    handle = model.get_submodule(head).register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0]))
    try:
        logits = model(images)
    finally:
        handle.remove()
    if len(seen) != 1:
        raise RuntimeError(f"the head {head!r} ran {len(seen)} times in one forward pass; expected once")
    return logits, seen[0].flatten(1)


# --- timm --------------------------------------------------------------------------------------------------

def _timm(spec: str, name: str, pretrained: str, num_classes: int | None, image_size: int | None = None) -> VisionModel:
    import timm

    if name.startswith("hf-hub:timm/"):
        # timm's own models on the Hub: the same architecture as timm:NAME, built offline when no weights
        # are asked for; with weights, timm reads the Hub repository of that name (cached, or downloaded).
        name = name.removeprefix("hf-hub:timm/")
        if pretrained == "none":
            name = name.split(".")[0]
    known = timm.list_models()
    if not name.startswith("hf-hub:") and name not in known and name.split(".")[0] not in known:
        raise UsageError(f"unknown timm model {name!r}: {_suggest(name, known)}")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if pretrained not in ("none", "default") and not name.startswith("hf-hub:"):
        name = f"{name.split('.')[0]}.{pretrained}"
    try:
        try:  # a ViT takes img_size: position embeddings for this size, pretrained ones resampled on load
            sized = {} if image_size is None else {"img_size": image_size}
            model = timm.create_model(name, pretrained=pretrained != "none", **kwargs, **sized)
        except TypeError as error:
            if not sized or "img_size" not in str(error):
                raise
            model = timm.create_model(name, pretrained=pretrained != "none", **kwargs)  # takes any size
    except Exception as error:
        if pretrained == "none" and not name.startswith("hf-hub:"):
            raise
        from huggingface_hub.constants import HF_HUB_CACHE

        raise UsageError(
            f"pretrained timm weights for {name} are not in the cache {HF_HUB_CACHE} and could not be "
            f"downloaded ({type(error).__name__}); pass --weights PATH or --pretrained none"
        ) from None
    config = timm.data.resolve_data_config({}, model=model)
    crop = int(config["input_size"][-1])
    preprocessing = {
        "resize": int(round(crop / config.get("crop_pct", 0.875))), "crop": crop,
        "mean": list(config["mean"]), "std": list(config["std"]),
        "interpolation": config.get("interpolation", "bicubic"),
    }
    head = []
    if num_classes is not None:
        classifier = model.get_classifier()
        head = [n for n, m in model.named_modules() if m is classifier]
    return VisionModel(model, spec, "timm", preprocessing, head)


# --- open_clip image towers --------------------------------------------------------------------------------

class ClipImageClassifier(nn.Module):
    """An open_clip image tower with a linear head on its embedding."""

    def __init__(self, visual: nn.Module, num_classes: int):
        super().__init__()
        self.visual = visual
        self.head = nn.Linear(visual.output_dim, num_classes)

    def forward(self, images):
        return self.head(self.visual(images))


def _clip(spec: str, name: str, pretrained: str, num_classes: int | None, image_size: int | None = None) -> VisionModel:
    import open_clip

    known = open_clip.list_models()
    if name not in known:
        raise UsageError(f"unknown open_clip model {name!r}: {_suggest(name, known)}")
    tag = None if pretrained == "none" else pretrained
    if tag == "default":
        tags = open_clip.list_pretrained_tags_by_model(name)
        if not tags:
            raise UsageError(f"open_clip has no pretrained weights for {name}; use --pretrained none")
        tag = tags[0]
    try:
        if tag is None:  # open_clip warns on the root logger about random init, which is what we asked for
            import logging

            logging.disable(logging.WARNING)
        # force_image_size: position embeddings for this size (open_clip resizes pretrained ones on load)
        model = open_clip.create_model(name, pretrained=tag, force_image_size=image_size)
    except Exception as error:
        if tag is None:
            raise
        raise UsageError(f"could not load open_clip weights {name}/{tag} ({type(error).__name__}: {error}); "
                         f"pass --weights PATH or --pretrained none") from None
    finally:
        import logging

        logging.disable(logging.NOTSET)
    visual = model.visual
    cfg = getattr(visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", getattr(visual, "image_size", 224))
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    preprocessing = {
        "resize": size, "crop": size,
        "mean": list(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        "std": list(cfg.get("std", open_clip.OPENAI_DATASET_STD)),
        "interpolation": cfg.get("interpolation", "bicubic"),
    }
    if num_classes is None:
        return VisionModel(visual, spec, "clip", preprocessing, [])
    return VisionModel(ClipImageClassifier(visual, num_classes), spec, "clip", preprocessing, ["head"])


# --- backbones without a head (self-supervised pretraining, feature extraction) ------------------------------

def build_backbone(spec: str, pretrained: str = "none", image_size: int | None = None) -> tuple[VisionModel, int]:
    """The model named by ``spec`` with its classifier removed, so it outputs pooled features, and their
    width. Its ``state_dict()`` keys are the model's own names minus the head's, which is what
    ``load_backbone_weights`` (``finetune --weights``) expects."""
    if spec.startswith("clip:"):  # the tower under ClipImageClassifier's names (visual.*), as finetune builds it
        built = build_vision_model(spec, pretrained, num_classes=1, image_size=image_size)
        built.model.head = nn.Identity()
        return built, int(built.model.visual.output_dim)
    built = build_vision_model(spec, pretrained, num_classes=None, image_size=image_size)
    model = built.model
    if built.family == "timm":
        classifier = model.get_classifier()
        head = [n for n, m in model.named_modules() if m is classifier and n]
        model.reset_classifier(0)
        return VisionModel(model, spec, "timm", built.preprocessing, head), int(model.num_features)
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise UsageError(f"{spec} has no linear classifier head to remove; pick another --model")
    parent_name, _, child = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    width = getattr(parent, child).in_features
    setattr(parent, child, nn.Identity())
    return VisionModel(model, spec, built.family, built.preprocessing, [last]), int(width)


# --- local weights -----------------------------------------------------------------------------------------

def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, a tlcli model folder, or a torch file read with weights_only=True."""
    path = Path(path)
    if path.is_dir():  # a run folder (its model/) or a model folder
        from tlcli.adapters.run_folder import refuse_adapter_run

        folder = path / "model" if (path / "model").is_dir() else path
        refuse_adapter_run(folder, "--weights")  # its weights file holds the head alone
        path = folder / "model.safetensors"
    if not path.is_file():
        raise UsageError(f"--weights {path}: no such file; pass a .safetensors/.pt file, a tlcli run folder or "
                         "its model/ folder")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UsageError(f"--weights {path}: cannot read it as safetensors or a state dict "
                         f"({describe_load_error(error)})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UsageError(f"--weights {path}: expected a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def describe_load_error(error: BaseException) -> str:
    """One line for a weights file that could not be loaded. torch's refusal of pickled objects advises
    re-running with ``weights_only=False``, which would run code from the file: that advice is replaced by
    the safe one (convert the file to safetensors from a source you trust)."""
    text = " ".join(str(error).split())
    if "weights_only" in text or "Unpickl" in type(error).__name__ or "Unpickl" in text:
        return ("the file holds pickled Python objects, not only tensors, and tlcli never runs code from a "
                "weights file; save the state dict as .safetensors from a source you trust")
    return f"{type(error).__name__}: {text[:300]}"


def load_backbone_weights(model: nn.Module, state: dict[str, torch.Tensor], head_names: list[str]) -> dict:
    """Load every tensor except the classifier head's (a new head is trained). Returns what happened;
    raises UsageError when the file does not fit the architecture."""
    own = model.state_dict()
    is_head = lambda key: any(key == h or key.startswith(h + ".") for h in head_names)  # noqa: E731
    usable = {k: v for k, v in state.items() if not is_head(k)}
    mismatched = [k for k, v in usable.items() if k in own and own[k].shape != v.shape]
    unexpected = [k for k in usable if k not in own]
    missing = [k for k in own if not is_head(k) and k not in usable]
    if mismatched or len(unexpected) + len(missing) > 0:
        detail = (mismatched or missing or unexpected)[:3]
        raise UsageError(
            f"--weights do not fit this model ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(mismatched)} of another shape, e.g. {', '.join(detail)}); pass the same --model the weights "
            f"were trained with"
        )
    model.load_state_dict(usable, strict=False)
    return {"loaded": len(usable), "skipped_head": sorted(k for k in state if is_head(k))}


def preprocessing_of(spec: str, pretrained: str = "none") -> dict:
    """The preprocessing a model expects, without downloading weights."""
    if not spec.startswith(("timm:", "clip:", "hf-hub:")):
        if pretrained == "none":
            _torchvision(spec, "none", None)  # validates the name
            return _default_preprocessing()
        transforms = _torchvision_weights(spec, pretrained).transforms()
        return {"resize": int(transforms.resize_size[0]), "crop": int(transforms.crop_size[0]),
                "mean": list(transforms.mean), "std": list(transforms.std),
                "interpolation": transforms.interpolation.value}
    return build_vision_model(spec, "none").preprocessing
