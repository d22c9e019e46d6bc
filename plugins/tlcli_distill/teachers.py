"""Teachers: any trained run that `tlcli predict` can load, or CLIP's zero-shot classifier over labels.

Both are ``nn.Module``s whose ``forward`` gives logits for a batch in the teacher's own preprocessing
(``transform``: PIL RGB -> tensor), with the class names they score (``labels``) and a ``key`` that names
their outputs in the teacher cache. A run is loaded through the core predictor surface (the plugin that
registered its model kind loads it, as `tlcli predict` does); CLIP comes from core ``tlcli.models.clip``.
The engine keeps a teacher in eval mode with no gradients (``Task.frozen_modules``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tlcli.console.errors import UsageError

# log(p) of a predictor's probabilities stands in for its logits (softmax(log p / T) == softmax(z / T));
# a probability that underflowed to 0 becomes log(tiny) instead of -inf.
TINY = torch.finfo(torch.float32).tiny
SINGLE_TEMPLATE = "a photo of a {}."


class Teacher(nn.Module):
    """``forward(images)`` gives logits; ``forward(images, with_features=True)`` gives ``(logits,
    features)``, the penultimate features (what the class head reads) from the same pass."""

    labels: list[str]
    key: str
    description: str
    short_side: int  # images are kept in memory at least this large on their short side

    def transform(self, image):  # pragma: no cover - set per instance
        raise NotImplementedError

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.inference_mode()
    def feature_width(self) -> int:
        """The width of the penultimate features, from one pass over two blank images."""
        from PIL import Image

        blank = self.transform(Image.new("RGB", (self.short_side, self.short_side)))
        self.eval()
        _, features = self(torch.stack([blank, blank]), with_features=True)
        return int(features.shape[1])


# --- a trained run -------------------------------------------------------------------------------------------

class RunTeacher(Teacher):
    """A run's exported model, loaded by the plugin that made it. Its predictor returns probabilities;
    their logarithm is the teacher's logits (equal to the real logits up to a constant per row, which no
    softmax sees)."""

    def __init__(self, run_dir: Path, device: str):
        super().__init__()
        from tlcli.runs.artifacts import read_model
        from tlcli.plugin import resolve_target
        from tlcli.registry import load_plugins

        files = read_model(run_dir)
        target = load_plugins().predictor_for(files.kind)
        if target is None:
            raise UsageError(f"--teacher {run_dir}: no installed plugin loads models of kind {files.kind!r}; "
                             "see `tlcli plugins`")
        predictor = resolve_target(target)(files.path, device)
        if getattr(predictor, "modality", "image") != "image" or not hasattr(predictor, "transform"):
            raise UsageError(f"--teacher {run_dir}: a {files.kind!r} model does not classify images; pass an "
                             "image classifier run (finetune, probe, coop, vprompt) or clip:MODEL")
        self.predictor = predictor
        # Registered, so the engine's frozen-submodule rule (eval mode, no gradients, device moves) reaches
        # every network the predictor runs.
        for i, module in enumerate(_modules_of(predictor)):
            self.add_module(f"part{i}", module)
        self.labels = list(predictor.labels)
        self.transform = predictor.transform
        self.key = _run_key(files)
        self.description = f"{files.kind} run {run_dir}"
        self.short_side = int(files.preprocessing.get("resize") or 256)
        self._head_params = sum(v.numel() for v in vars(predictor).values() if torch.is_tensor(v))
        self._kind = files.kind

    def num_params(self) -> int:
        return super().num_params() + self._head_params

    def forward(self, images: torch.Tensor, with_features: bool = False):
        if not with_features:
            return self._logits(self.predictor.predict(images), images.device)
        if not hasattr(self.predictor, "predict_with_features"):
            raise UsageError(f"--feature-loss: a {self._kind!r} teacher does not expose its features; drop "
                             "--feature-loss, or use a finetune, probe, coop or vprompt run, or clip:MODEL")
        probs, features = self.predictor.predict_with_features(images)
        return self._logits(probs, images.device), features.float().to(images.device).clone()

    @staticmethod
    def _logits(probs: torch.Tensor, device) -> torch.Tensor:
        # out of inference mode (a plain tensor the loss may keep for backward), on the images' device
        return torch.log(probs.float().clamp_min(TINY)).to(device).clone()


def _modules_of(predictor) -> list[nn.Module]:
    found = []
    for value in vars(predictor).values():
        if isinstance(value, nn.Module):
            found.append(value)
        elif isinstance(getattr(type(value), "model", None), property):  # e.g. a lazily built ClipModel
            module = value.model
            if isinstance(module, nn.Module):
                found.append(module)
    return found


def _run_key(files) -> str:
    """Hash of every file of the model folder, and of the size and time of local files its description
    names (a probe's CLIP weights): another export, or replaced weights, get other cache entries."""
    digest = hashlib.sha256(b"tlcli-distill-run-teacher-1")
    for path in sorted(p for p in files.path.iterdir() if p.is_file()):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    for value in files.meta.values():
        if isinstance(value, str) and len(value) < 4096 and os.path.isfile(value):
            stat = os.stat(value)
            digest.update(f"{os.path.abspath(value)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


# --- CLIP zero-shot --------------------------------------------------------------------------------------------

def resolve_templates(value: str) -> list[str]:
    """``ensemble`` (the CLIP paper's 80 ImageNet templates), ``single``, or a file of ``{}`` lines."""
    if value == "single":
        return [SINGLE_TEMPLATE]
    if value == "ensemble":
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

        return [template("{}") for template in OPENAI_IMAGENET_TEMPLATES]
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"--templates {value!r}: expected ensemble, single, or a file with one {{}} template per line")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines or any("{}" not in line for line in lines):
        raise UsageError(f"--templates {value}: every line needs {{}} where the label goes")
    return lines


class ClipZeroShotTeacher(Teacher):
    """CLIP's image tower and a fixed head of label text embeddings (templates averaged, as open_clip's
    build_zero_shot_classifier does): logits = exp(logit_scale) * cos(image, label) (+ logit_bias). The text
    tower is used once for the head (cached under the teacher's key) and then dropped."""

    def __init__(self, model: str, pretrained: str | None, labels: list[str], templates: str,
                 use_cache: bool = True):
        super().__init__()
        from tlcli.models.clip import load_clip
        from tlcli_distill.teacher_cache import TeacherCache

        clip = load_clip(model, pretrained, "cpu", "fp32")  # fp32 on the CPU; the engine moves it
        clip.model  # noqa: B018  built now, not lazily inside encode_texts' inference mode
        template_list = resolve_templates(templates)
        self.key = hashlib.sha256(json.dumps(["clip-zeroshot-1", clip.key, labels, template_list])
                                  .encode()).hexdigest()[:32]
        cache = TeacherCache(self.key, {"teacher": f"clip:{model}", "clip": clip.spec, "labels": labels,
                                        "templates": template_list}, len(labels), enabled=use_cache)
        head = cache.get_named("head")
        if head is None or head.shape != (len(labels), clip.embed_dim):
            texts = [t.replace("{}", label) for label in labels for t in template_list]
            embedded = clip.encode_texts(texts).reshape(len(labels), len(template_list), -1).mean(dim=1)
            head = F.normalize(embedded, dim=-1).numpy()
            cache.put_named("head", head)
        self.visual = clip.model.visual
        self.register_buffer("head", torch.from_numpy(np.ascontiguousarray(head, dtype=np.float32)))
        self.register_buffer("scale", torch.tensor(clip.logit_scale(), dtype=torch.float32))
        bias = clip.logit_bias()
        self.register_buffer("bias", torch.tensor(0.0 if bias is None else bias, dtype=torch.float32))
        self.transform = clip.preprocess
        self.labels = list(labels)
        self.description = f"CLIP zero-shot {model} ({len(template_list)} templates)"
        size = clip.preprocess_cfg.get("size", 224)
        self.short_side = int(size[0] if isinstance(size, (list, tuple)) else size)

    def num_params(self) -> int:  # what runs per image: the image tower and the label head
        return sum(p.numel() for p in self.visual.parameters()) + self.head.numel()

    def forward(self, images: torch.Tensor, with_features: bool = False):
        dtype = next(self.visual.parameters()).dtype
        embedding = self.visual(images.to(dtype)).float()  # the teacher's features: the image embedding
        logits = self.scale * F.normalize(embedding, dim=-1) @ self.head.T + self.bias
        return (logits, embedding) if with_features else logits


def build_teacher(spec: str, pretrained: str | None, labels: list[str] | None, templates: str, device: str,
                  use_cache: bool) -> Teacher:
    """``clip:MODEL`` (needs ``labels``) or a run folder."""
    if spec.startswith("clip:"):
        if not labels:
            raise UsageError("--teacher clip:MODEL needs class names: pass --labels a,b,c (or labelled DATA)")
        return ClipZeroShotTeacher(spec[len("clip:"):], pretrained, labels, templates, use_cache)
    if pretrained is not None:
        raise UsageError("--teacher-pretrained is for --teacher clip:MODEL; a run teacher brings its own weights")
    path = Path(spec)
    if not path.is_dir():
        raise UsageError(f"--teacher {spec}: no such run folder; pass a trained run (tlcli finetune/probe/coop) "
                         "or clip:MODEL with --labels")
    return RunTeacher(path, device)
