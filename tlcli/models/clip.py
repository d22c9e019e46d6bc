"""Resolve a CLIP model (open_clip) from what the user typed, without ever hanging on the network.

Accepted ``--model`` values (open_clip's own schemes, plus a config file):

- an open_clip name (``ViT-B-32``) with ``--pretrained TAG`` (``laion2b_s34b_b79k``), a weights FILE, or ``none``;
- ``hf-hub:ORG/NAME`` (config and weights from the Hugging Face hub, or its local cache);
- ``local-dir:DIR`` (a folder with ``open_clip_config.json`` and a checkpoint);
- a path to an open_clip model-config JSON (``{"embed_dim", "vision_cfg", "text_cfg"}``) with
  ``--pretrained FILE`` (safetensors or an open_clip checkpoint) or ``--pretrained none`` (random init).

Weights that are not on disk are only fetched when the hub answers within seconds; otherwise the error
names the cache folder and how to pass a local file (open_clip alone retries for ~46 s). Random init is
seeded, so ``--pretrained none`` gives the same model, and the same cached features, every time.

Every loaded model carries a ``key``: a hash of the architecture, the weights (content), the image
preprocessing and the precision. Feature and text-embedding caches are keyed by it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlcli.console.errors import UsageError

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
HUB_CHECK_TIMEOUT_S = 3.0
RANDOM_INIT_SEED = 0
KEY_VERSION = 1


class ClipModel:
    """A CLIP model (open_clip), its tokenizer and eval preprocessing, and the identity caches use.

    The network is built on first use: a run whose image features and label embeddings are all cached
    never pays for building it (seconds for ViT-B-32). ``spec``/``key`` are computed from the inputs alone
    (architecture, weights content, preprocessing settings, precision), so they are known before that.
    """

    def __init__(self, spec: dict, device_name: str, build):
        self.spec, self.device_name = spec, device_name
        self.key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]
        self._build = build
        self._model = self._tokenizer = self._preprocess = None

    @property
    def device(self):
        import torch

        return torch.device(self.device_name)

    @property
    def dtype(self):
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.spec["precision"]]

    @property
    def model(self):
        """The open_clip model: eval mode, frozen, on ``device`` in ``dtype``."""
        if self._model is None:
            self._model = self._build()
        return self._model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self.model  # noqa: B018  (registers a config-file model with open_clip first)
            self._tokenizer = _tokenizer(self.spec["open_clip_name"], self.spec["model"])
        return self._tokenizer

    @property
    def preprocess(self):
        """PIL RGB -> tensor (C, H, W): open_clip's eval transform, from the built model's own settings."""
        if self._preprocess is None:
            from open_clip import get_model_preprocess_cfg
            from open_clip.transform import PreprocessCfg, image_transform_v2

            self._preprocess = image_transform_v2(PreprocessCfg(**get_model_preprocess_cfg(self.model)),
                                                  is_train=False)
        return self._preprocess

    @property
    def split_preprocess(self) -> "SplitPreprocess | None":
        """``preprocess`` cut into per-image PIL steps and a batched tensor tail (see SplitPreprocess);
        None when the transform does not have open_clip's usual shape."""
        if not hasattr(self, "_split"):
            self._split = SplitPreprocess.of(self.preprocess)
        return self._split

    def eval_preprocessing(self) -> dict:
        """``preprocess`` in the terms of a model/ folder (``resize`` of the short side, ``crop``, ``mean``,
        ``std``, ``interpolation``), which tlcli.data.decoded.eval_transform turns back into the same steps:
        what an exported CLIP model carries. UsageError for a transform these terms cannot say (open_clip's
        ``longest`` and ``squash`` resize modes, a non-square input)."""
        from open_clip import get_model_preprocess_cfg

        cfg = get_model_preprocess_cfg(self.model)
        size = cfg.get("size", 224)
        if isinstance(size, (list, tuple)):
            size = size[0] if len(size) == 2 and size[0] == size[1] else None
        mode = cfg.get("resize_mode", "shortest")
        interpolation = cfg.get("interpolation", "bicubic")
        if size is None or mode != "shortest" or interpolation not in ("bicubic", "bilinear", "nearest"):
            raise UsageError(f"--model {self.spec['model']}: its image preprocessing (size {cfg.get('size')}, resize "
                             f"mode {mode}, {interpolation}) cannot be described for an export; only a square input "
                             "resized by its short side is")
        return {"resize": int(size), "crop": int(size), "mean": [float(v) for v in cfg["mean"]],
                "std": [float(v) for v in cfg["std"]], "interpolation": interpolation}

    def fp32_on_cpu(self, pretrained: str | None) -> "ClipModel":
        """This model in float32 on the CPU with open_clip's own modules (self when it already is): what
        an export traces. ``pretrained``: as given when it was loaded (model.json's ``pretrained``)."""
        if self.spec["precision"] == "fp32" and self.spec.get("kernels") == "default" and self.device_name == "cpu":
            return self
        return load_clip(self.spec["model"], pretrained, "cpu", "fp32")

    @property
    def preprocess_cfg(self) -> dict:
        return dict(self.spec["preprocessing"])

    @property
    def embed_dim(self) -> int:
        return int(self.spec["embed_dim"])

    def logit_scale(self) -> float:
        return self._scalars()["logit_scale"]

    def logit_bias(self) -> float | None:
        return self._scalars()["logit_bias"]

    def _scalars(self) -> dict:
        """exp(logit_scale) and logit_bias, remembered on disk under the model's key (which hashes the
        weights): a zero-shot run on cached features and label embeddings then never builds the model."""
        if getattr(self, "_scalar_values", None) is None:
            from tlcli.runs.paths import atomic_write_text, cache_dir

            memo = cache_dir("models") / f"{self.key}-logit.json"
            try:
                values = json.loads(memo.read_text(encoding="utf-8"))
                values = {"logit_scale": float(values["logit_scale"]),
                          "logit_bias": None if values["logit_bias"] is None else float(values["logit_bias"])}
            except (OSError, ValueError, KeyError, TypeError):
                bias = getattr(self.model, "logit_bias", None)
                values = {"logit_scale": float(self.model.logit_scale.detach().float().exp()),
                          "logit_bias": None if bias is None else float(bias.detach().float())}
                atomic_write_text(memo, json.dumps(values))
            self._scalar_values = values
        return self._scalar_values

    def encode_images(self, batch):
        """Image features (not normalised), float32 on the CPU."""
        import torch

        with torch.inference_mode():
            out = self.model.encode_image(batch.to(self.device, self.dtype))
        return out.float().cpu()

    def encode_texts(self, texts: list[str], batch_size: int = 256):
        """Normalised text features (N, D), float32 on the CPU."""
        import torch
        import torch.nn.functional as F

        chunks = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                tokens = self.tokenizer(texts[i : i + batch_size]).to(self.device)
                chunks.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu())
        return torch.cat(chunks)


class SplitPreprocess:
    """open_clip's eval transform in two parts, equal to it bit for bit: ``per_image`` runs its PIL steps
    (resize, crop, convert to RGB) and returns the pixels as a uint8 (H, W, 3) array, on the decode
    threads; its to-tensor and normalise steps then run once per batch, in NumPy on the CPU (``batch``) or
    on the GPU after a uint8 copy (``stack`` then ``normalise``).

    Why: torch ops on the decode side wake torch's intra-op threads, which spin and fight the decoders
    and the model for the cores. On 2 cores per-image to-tensor and normalise took 3.4-4.5 ms an image
    that way against 0.85 ms on one thread; on a 16-core GPU host a torch normalise per batch held the
    8 decode threads to 643 images/s against 1967 without it.
    """

    def __init__(self, pil_steps: list, mean, std):
        import numpy as np

        self.pil_steps = pil_steps
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        self._on_device: dict = {}

    @classmethod
    def of(cls, transform) -> "SplitPreprocess | None":
        from open_clip.transform import MaybeConvertMode, MaybeToTensor
        from torchvision.transforms import Compose, Normalize, ToTensor

        steps = list(transform.transforms) if isinstance(transform, Compose) else []
        if len(steps) < 3:
            return None
        convert, to_tensor, normalize = steps[-3:]
        if not (isinstance(convert, MaybeConvertMode) and convert.mode == "RGB"
                and type(to_tensor) in (MaybeToTensor, ToTensor) and type(normalize) is Normalize
                and not normalize.inplace):
            return None
        return cls(steps[:-2], normalize.mean, normalize.std)

    def per_image(self, image):
        import numpy as np

        for step in self.pil_steps:
            image = step(image)
        return np.asarray(image)

    def batch(self, arrays: list):
        """(N, 3, H, W) float32 CPU tensor from ``per_image`` results: torchvision's to_tensor (``/ 255``)
        then normalize (``- mean``, ``/ std``), the same float32 operations in the same order, in NumPy
        (one thread, no torch thread pool woken)."""
        import numpy as np
        import torch

        pixels = np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2), dtype=np.float32)
        pixels /= np.float32(255)
        pixels -= self.mean
        pixels /= self.std
        return torch.from_numpy(pixels)

    def stack(self, arrays: list):
        """The ``per_image`` results as one uint8 (N, H, W, 3) tensor: a quarter of the bytes to copy to a
        GPU, which then runs ``normalise``."""
        import numpy as np
        import torch

        return torch.from_numpy(np.stack(arrays))

    def normalise(self, pixels, device):
        """``stack``'s uint8 pixels as ``batch`` would give them, computed on ``device``."""
        import numpy as np
        import torch

        if device not in self._on_device:
            # 255 as a tensor on the device: CUDA divides by a Python number as a multiplication by its
            # reciprocal, which is off by one bit from to_tensor's true division now and then.
            self._on_device[device] = tuple(torch.from_numpy(a).to(device) for a in
                                            (self.mean, self.std, np.full((1, 1, 1, 1), 255, np.float32)))
        mean, std, scale = self._on_device[device]
        pixels = pixels.to(device).permute(0, 3, 1, 2).to(torch.float32)
        return pixels.div_(scale).sub_(mean).div_(std).contiguous()


# --- resolution ------------------------------------------------------------------------------------------


@dataclass
class _Resolved:
    name: str  # what open_clip.create_model gets
    checkpoint: str | None  # a local file, or None (random init / the scheme's own)
    weights_id: str
    force_preprocess: dict
    quick_gelu: bool = False
    config_id: str = ""
    preprocessing: dict | None = None  # the final settings, None when unknown before loading
    embed_dim: int | None = None
    registered_config: dict | None = None  # a config file's content, registered with open_clip to build
    files: list[str] = field(default_factory=list)  # local files the resolution read (for the memo)

    def expect(self, model_cfg: dict | None, source: dict | None = None) -> "_Resolved":
        if model_cfg:
            self.preprocessing = _expected_preprocessing(model_cfg, source or {}, self.force_preprocess)
            self.embed_dim = int(model_cfg["embed_dim"])
        return self


def load_clip(model: str = DEFAULT_MODEL, pretrained: str | None = None, device: str = "auto",
              precision: str = "auto") -> ClipModel:
    """The model ``model``/``pretrained`` names, on ``device`` in ``precision`` (auto: bf16 where the
    hardware runs it natively, else fp32). ``UsageError`` naming what would work for anything unusable.
    Weights and config are checked now; the network itself is built on first use. On a CPU-only machine
    with the model's resolution remembered, this imports neither torch nor open_clip."""
    from tlcli.device import resolve as resolve_placement

    resolved = _remembered_resolution(model, pretrained)  # first: missing weights fail before any CPU measurement
    placement = resolve_placement("encode_images", device, precision)
    device_name, device_type, prec = placement.device, placement.device_type, placement.precision
    kernels = "onednn-packed" if device_type == "cpu" and prec == "bf16" and _packing_available() else "default"

    def build():
        import torch

        if resolved.registered_config is not None:
            _register_config(resolved.name, resolved.registered_config)
        created = _create(resolved, model)
        created.eval().requires_grad_(False)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[prec]
        created = created.to(torch.device(device_name), dtype)
        if kernels == "onednn-packed":
            _pack_image_tower(created)
        return created

    preprocessing, embed_dim = resolved.preprocessing, resolved.embed_dim
    if preprocessing is None:  # an uncached hub model: its settings are known once it is loaded
        built = build()
        import open_clip

        preprocessing = _plain(open_clip.get_model_preprocess_cfg(built))
        embed_dim = int(built.visual.output_dim)
        build = lambda: built  # noqa: E731
    spec = {
        "version": KEY_VERSION, "model": model, "open_clip_name": resolved.name,
        "arch": resolved.config_id or resolved.name, "weights": resolved.weights_id,
        "quick_gelu": resolved.quick_gelu, "preprocessing": preprocessing, "precision": prec, "embed_dim": embed_dim,
        "kernels": kernels,
    }
    return ClipModel(spec, device_name, build)


def _packing_available() -> bool:
    """tlcli.models.packed.packing_available for bf16 on this CPU, remembered on disk per torch version
    and CPU flags so that a fully cached run need not import torch to compute its cache key."""
    from importlib.metadata import version

    from tlcli.hardware import cpu_has_bf16
    from tlcli.runs.paths import atomic_write_text, cache_dir

    ident = f"packing {version('torch')} bf16={cpu_has_bf16()}"
    memo = cache_dir("models") / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".json")
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
        if data.get("ident") == ident:
            return bool(data["available"])
    except (OSError, ValueError, KeyError):
        pass
    import torch

    from tlcli.models.packed import packing_available

    available = packing_available(torch.device("cpu"), torch.bfloat16)
    atomic_write_text(memo, json.dumps({"ident": ident, "available": available}))
    return available


def _pack_image_tower(model) -> None:
    """bf16 on the CPU: pack the ViT image tower's linear layers for oneDNN and run its last block for the
    class token only (tlcli.models.packed): about 30% faster. Other towers (ResNets, timm) keep open_clip's
    modules. The tower is inference-only here: CoOp trains prompts on cached image features."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    from tlcli.models.packed import ClassTokenOnlyBlock, PackedSelfAttention, pack_for_inference

    visual = model.visual
    if not isinstance(visual, VisionTransformer):
        return
    grid = visual.grid_size
    tokens = grid[0] * grid[1] + 1
    pack_for_inference(visual.transformer, rows=32 * tokens)
    last = visual.transformer.resblocks[-1]
    if visual.attn_pool is None and visual.pool_type == "tok" and not visual.output_tokens \
            and visual.transformer.batch_first and type(last) is ResidualAttentionBlock \
            and isinstance(last.attn, PackedSelfAttention) and not hasattr(last, "ln_1_kv"):
        visual.transformer.resblocks[-1] = ClassTokenOnlyBlock(last)


def _plain(cfg: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def _expected_preprocessing(model_cfg: dict, source: dict, force: dict) -> dict:
    """open_clip's final preprocessing settings (factory.create_model), without building the model:
    defaults, then the weights' own settings, then the tower's image size, then forced values."""
    from dataclasses import asdict

    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    cfg = merge_preprocess_dict(asdict(PreprocessCfg()), source or {})
    size = (model_cfg.get("vision_cfg") or {}).get("image_size")
    if size is not None:
        cfg["size"] = [size, size] if isinstance(size, int) else list(size)
    cfg = merge_preprocess_dict(cfg, force or {})
    return _plain(cfg)


def _stamp(path: str) -> str | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return _identity(info)


def _identity(info: os.stat_result) -> str:
    """What says a file is unchanged without reading it: size and mtime (which ``cp -p``, ``rsync -a`` and
    ``tar x`` carry over to a different file) plus inode and ctime (which they cannot set)."""
    return f"{info.st_size}|{info.st_mtime_ns}|{info.st_ino}|{info.st_ctime_ns}"


def _remembered_resolution(model: str, pretrained: str | None) -> _Resolved:
    """``resolve_model``, remembered on disk while the local files it read are unchanged.

    Importing open_clip costs seconds (it imports torchvision and more); a run whose features are all
    cached should not pay that just to learn the cache key again.
    """
    from dataclasses import asdict
    from importlib.metadata import version

    from tlcli.runs.paths import atomic_write_text, cache_dir

    files = [model, model.removeprefix("local-dir:")] + ([pretrained] if pretrained else [])
    stamps = {os.path.abspath(f): _stamp(f) for f in files}
    ident = json.dumps([KEY_VERSION, model, pretrained, os.getcwd(), version("open_clip_torch"), stamps])
    memo = cache_dir("models") / (hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".json")
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
        if data.get("ident") == ident and all(_stamp(f) == stamp for f, stamp in data["file_stamps"].items()):
            return _Resolved(**data["resolved"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    resolved = resolve_model(model, pretrained)
    if resolved.preprocessing is not None and not resolved.name.startswith("hf-hub:"):
        used = [p for p in [resolved.checkpoint, *resolved.files] if p]
        if resolved.name.startswith("local-dir:"):
            folder = resolved.name.removeprefix("local-dir:")
            used += [os.path.join(folder, n) for n in sorted(os.listdir(folder))]
        atomic_write_text(memo, json.dumps({"ident": ident, "resolved": asdict(resolved),
                                            "file_stamps": {os.path.abspath(p): _stamp(p) for p in used}}))
    return resolved


def resolve_model(model: str, pretrained: str | None) -> _Resolved:
    """Where the architecture and the weights come from; checks the disk before anything touches the
    network."""
    import open_clip

    if model.startswith("local-dir:"):
        folder = Path(model[len("local-dir:"):])
        config = folder / "open_clip_config.json"
        if not config.is_file():
            raise UsageError(f"--model {model}: {folder} has no open_clip_config.json; a local-dir: folder needs "
                             f"it and a checkpoint (open_clip_model.safetensors)")
        checkpoints = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pth"))
        weights = "none:" + _file_digest(config) if not checkpoints else _file_digest(checkpoints[0])
        return _Resolved(f"local-dir:{folder}", None, weights, {}, config_id=_file_digest(config)).expect(
            *_local_config(config))
    if model.startswith("hf-hub:"):
        return _resolve_hf_hub(model)
    if model.lower().endswith(".json") or (os.sep in model or "/" in model) and Path(model).is_file():
        return _resolve_config_file(Path(model), pretrained)
    known = open_clip.list_models()
    if model not in known:
        import difflib

        close = difflib.get_close_matches(model, known, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"e.g. {', '.join(known[:6])}"
        raise UsageError(f"--model {model!r} is not an open_clip model: {hint} (or hf-hub:ORG/NAME, "
                         f"local-dir:DIR, or a model-config .json file)")
    if pretrained is None or pretrained == "default":
        tags = open_clip.list_pretrained_tags_by_model(model)
        pretrained = DEFAULT_PRETRAINED if DEFAULT_PRETRAINED in tags else (tags[0] if tags else "none")
    if pretrained == "none":
        return _Resolved(model, None, f"random-init:{RANDOM_INIT_SEED}", {}).expect(open_clip.get_model_config(model))
    if Path(pretrained).is_file():
        return _Resolved(model, str(pretrained), _file_digest(Path(pretrained)), {}).expect(
            open_clip.get_model_config(model))
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise UsageError(f"--pretrained {pretrained!r} is neither a weight tag of {model} nor a file; tags: "
                         f"{', '.join(tags) or '(none)'}; or pass a local weights FILE, or none")
    force = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode", "size") if cfg.get(k) is not None}
    path = _cached_tag_weights(cfg)
    if path is None:
        path = _download_tag_weights(model, pretrained, cfg)
    # Loaded from the file with the tag's settings forced, so those are the model's final ones.
    return _Resolved(model, path, f"{model}/{pretrained}:{_file_digest(Path(path))}", force,
                     quick_gelu=bool(cfg.get("quick_gelu", False))).expect(open_clip.get_model_config(model))


def _local_config(path: Path) -> tuple[dict | None, dict]:
    """(model_cfg, preprocess_cfg) of an open_clip_config.json; (None, {}) when unreadable (open_clip says why)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return data.get("model_cfg"), data.get("preprocess_cfg") or {}
    except (OSError, ValueError, AttributeError):
        return None, {}


def _resolve_config_file(path: Path, pretrained: str | None) -> _Resolved:
    if not path.is_file():
        raise UsageError(f"--model {path}: no such model-config file")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"--model {path}: not a readable JSON model config ({error})") from None
    config = config.get("model_cfg", config) if isinstance(config, dict) else config
    if not isinstance(config, dict) or not all(k in config for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise UsageError(f"--model {path}: an open_clip model config needs embed_dim, vision_cfg and text_cfg")
    if pretrained in (None, "default"):
        raise UsageError(f"--model {path} is a config file: pass --pretrained FILE (safetensors or an open_clip "
                         f"checkpoint) or --pretrained none (random init)")
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    # Registered under a name of its own, so a config never shadows a built-in one of the same file name.
    name = f"tlcli-config-{digest}"
    if pretrained == "none":
        resolved = _Resolved(name, None, f"random-init:{RANDOM_INIT_SEED}", {}, config_id=digest).expect(config)
    else:
        file = Path(pretrained)
        if not file.is_file():
            raise UsageError(f"--pretrained {pretrained}: no such file; with a config file pass a weights FILE or none")
        resolved = _Resolved(name, str(file), _file_digest(file), {}, config_id=digest).expect(config)
    resolved.registered_config = config
    return resolved


_registered: set[str] = set()


def _register_config(name: str, config: dict) -> None:
    from open_clip import factory

    if name not in _registered:
        factory._MODEL_CONFIGS[name] = config  # open_clip's registry, as add_model_config fills it
        _registered.add(name)


def _hf_cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)


def _from_hf_cache(repo: str, filename: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo, filename)
    except Exception:
        return None
    return found if isinstance(found, str) and os.path.isfile(found) else None


def hub_reachable(host: str = "huggingface.co") -> bool:
    """Whether the hub answers within HUB_CHECK_TIMEOUT_S (DNS included); False under HF_HUB_OFFLINE."""
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("TLCLI_OFFLINE"):
        return False
    import socket

    result: list[bool] = []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=HUB_CHECK_TIMEOUT_S).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(HUB_CHECK_TIMEOUT_S + 0.5)
    return bool(result and result[0])


def _cached_tag_weights(cfg: dict) -> str | None:
    hub = cfg.get("hf_hub") or ""
    if hub:
        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in list(names):
            if name.endswith((".bin", ".pth")):
                names.insert(0, name[:-4] + ".safetensors")
        for name in names:
            found = _from_hf_cache(repo, name)
            if found:
                return found
    url = cfg.get("url") or ""
    if url:
        target = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if target.is_file():
            return str(target)
    return None


def _download_tag_weights(model: str, tag: str, cfg: dict) -> str:
    from open_clip.pretrained import download_pretrained

    where = _hf_cache_dir() if cfg.get("hf_hub") else os.path.expanduser("~/.cache/clip")
    advice = (f"Put the weights there (run once online), or pass --pretrained FILE (a safetensors or open_clip "
              f"checkpoint of {model}), or --pretrained none for random init")
    if not hub_reachable():
        raise UsageError(f"weights {model}/{tag} are not cached and the hub cannot be reached (offline); looked in "
                         f"{where}. {advice}")
    try:
        return download_pretrained(cfg)
    except Exception as error:
        raise UsageError(f"could not download weights {model}/{tag} ({type(error).__name__}); cache: {where}. "
                         f"{advice}") from None


def _resolve_hf_hub(model: str) -> _Resolved:
    repo = model[len("hf-hub:"):]
    config = _from_hf_cache(repo, "open_clip_config.json")
    if config is not None:
        folder = Path(config).parent
        checkpoints = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pth")]
        if checkpoints:
            # Everything is cached: load it as a local folder, so nothing asks the hub for ETags.
            return _Resolved(f"local-dir:{folder}", None, f"{repo}:{_file_digest(sorted(checkpoints)[0])}", {},
                             config_id=_file_digest(Path(config))).expect(*_local_config(Path(config)))
    if not hub_reachable():
        raise UsageError(f"--model {model}: not in the Hugging Face cache ({_hf_cache_dir()}) and the hub cannot "
                         f"be reached (offline). Run once online, or download the repo and pass local-dir:DIR, "
                         f"or an open_clip name with --pretrained FILE")
    return _Resolved(model, None, f"{repo}:hub", {}, config_id=repo)


def _create(resolved: _Resolved, model: str):
    import torch
    import open_clip

    kwargs: dict[str, Any] = {}
    if resolved.force_preprocess:
        kwargs["force_preprocess_cfg"] = resolved.force_preprocess
    if resolved.quick_gelu:
        kwargs["force_quick_gelu"] = True
    import logging

    # open_clip logs on the root logger ("initialized randomly" for --pretrained none, which is the point);
    # tlcli reports what matters itself.
    logging.disable(logging.WARNING)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)  # --pretrained none: the same random model every time
            return open_clip.create_model(resolved.name, pretrained=resolved.checkpoint, **kwargs)
    except Exception as error:
        from tlcli.models.vision import describe_load_error

        raise UsageError(f"could not build --model {model} ({describe_load_error(error)}); check that the "
                         f"weights file belongs to this architecture") from None
    finally:
        logging.disable(logging.NOTSET)


def _tokenizer(name: str, model: str):
    import open_clip

    config = open_clip.get_model_config(name) or {}
    hf_name = (config.get("text_cfg") or {}).get("hf_tokenizer_name")
    if hf_name and _from_hf_cache(hf_name, "tokenizer_config.json") is None and \
            _from_hf_cache(hf_name, "tokenizer.json") is None and not hub_reachable():
        raise UsageError(f"--model {model} uses the Hugging Face tokenizer {hf_name}, which must come from the hub "
                         f"and is not in the cache ({_hf_cache_dir()}); run once online to cache it")
    try:
        return open_clip.get_tokenizer(name)
    except Exception as error:
        raise UsageError(f"could not load the tokenizer of --model {model} ({type(error).__name__}: {error})") from None


# --- content digests -------------------------------------------------------------------------------------


def _file_digest(path: Path) -> str:
    """sha256 of a file's content, hashed once and remembered per (path, size, mtime, inode, ctime): a different
    file copied over it with its old size and mtime (cp -p, rsync -a, tar x) is hashed again."""
    from tlcli.runs.paths import atomic_write_text, cache_dir

    path = Path(path)
    try:
        info = path.stat()
    except OSError as error:
        raise UsageError(f"{path}: cannot read it ({error.strerror or error})") from None
    stamp = f"{os.path.realpath(path)}|{_identity(info)}"
    memo = cache_dir("digests") / (hashlib.sha256(stamp.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".json")
    try:
        return json.loads(memo.read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    atomic_write_text(memo, json.dumps({"stamp": stamp, "sha256": value}))
    return value
