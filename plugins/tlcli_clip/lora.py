"""`tlcli coop --lora RANK`: CLIP-LoRA (Zanella & Ben Ayed, "Low-Rank Few-Shot Adaptation of
Vision-Language Models", CVPR Workshops 2024).

LoRA adapters in the attention of both towers (q, k and v of every block); the classifier is CLIP's own
zero-shot one, the class-name prompts ("a photo of a {}.") through the adapted text tower, scored against
the adapted image embedding at CLIP's fixed logit scale; trained with cross-entropy on the few shots.
Every step runs both towers: the images (decoded once, as `tlcli vprompt` does) and the class prompts.

q, k, v: open_clip's attention is ``nn.MultiheadAttention``, whose q, k and v weights are one fused
``in_proj_weight`` parameter, not Linear layers. The adapters go there through PEFT's ``target_parameters``:
one rank-r LoRA on the fused (3d x d) weight, as LoRA adapts timm's fused ``qkv`` Linear (the paper's code
splits the attention into three Linear layers with a rank-r LoRA each: 1.5 times the parameters at the same
rank). The output projection is left alone: the attention never calls it as a module, and PEFT's
MultiheadAttention layer, which works around that, merges and unmerges the weights on every forward pass,
so the frozen weights drift by rounding. Adapter dropout is not available on a parameter target.

The export (kind ``clip-lora``) is ``model/adapter/`` in PEFT's format keyed on the open_clip model's own
names, so ``PeftModel.from_pretrained(open_clip.create_model(...), RUN/model/adapter)`` rebuilds it.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tlcli.adapters.run_folder import load_adapted_model, lora_record, lora_settings, merge_into_base
from tlcli.console.errors import UsageError
from tlcli.data.bad_files import BadFiles
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.loop import fit
from tlcli.models.clip import ClipModel, load_clip
from tlcli_clip.common import k_shot, model_reference, shots_used, report_short_shots, split_of
from tlcli_clip.text import SINGLE_TEMPLATE, fill
from tlcli_clip.vprompt import PixelsTask, pixel_datasets

MODEL_KIND = "clip-lora"
ROOT = "clip"  # the open_clip model inside ClipLoRA: what the adapter folder is keyed on


def attention_targets(model: nn.Module, prefix: str = "") -> list[str]:
    """CLIP-LoRA's default targets: every multi-head attention of both towers (q, k, v)."""
    from tlcli.adapters.lora import is_attention

    return [name for name, module in model.named_modules() if name.startswith(prefix) and is_attention(module)]


class ClipLoRA(nn.Module):
    """CLIP with its zero-shot classifier: ``forward(images)`` gives ``scale * cos(image, class prompt) +
    bias`` over the class prompts (``tokens``), both towers run. Only LoRA adapters train."""

    def __init__(self, clip: nn.Module, tokens: torch.Tensor, scale: float, bias: float):
        super().__init__()
        self.clip = clip
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("scale", torch.tensor(float(scale)), persistent=False)
        self.register_buffer("bias", torch.tensor(float(bias)), persistent=False)
        self.fixed_text: torch.Tensor | None = None  # set by freeze_text(): prediction skips the text tower

    def text_features(self) -> torch.Tensor:
        if self.fixed_text is not None:
            return self.fixed_text
        return F.normalize(self.clip.encode_text(self.tokens).float(), dim=-1)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_and_embedding(images)[0]

    def logits_and_embedding(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.image_features(images)
        logits = self.scale * F.normalize(embedding, dim=-1) @ self.text_features().T + self.bias
        return logits, embedding

    @torch.no_grad()
    def freeze_text(self) -> None:
        """Compute the class prompts' features once (the text tower no longer changes)."""
        self.fixed_text = None
        self.fixed_text = self.text_features().detach()


def build_clip_lora(clip: ClipModel, classes: list[str], template: str = SINGLE_TEMPLATE) -> ClipLoRA:
    tokens = clip.tokenizer([fill(template, c) for c in classes])
    return ClipLoRA(clip.model, tokens, clip.logit_scale(), clip.logit_bias() or 0.0)


class ClipLoRATask(PixelsTask):
    def describe(self) -> dict:
        return {"command": "coop", "plugin": "clip", "model": self.cfg.model, "classes": self.classes,
                "method": "clip-lora", "lora": lora_settings(self.cfg)}

    def adapters(self, model) -> list[str]:
        """--lora-targets as given (names as the whole model has them: clip.visual.transformer...), else
        the attention of both towers."""
        from tlcli.adapters.lora import resolve_targets

        if self.cfg.lora_targets:
            return resolve_targets(model, self.cfg.lora_targets)
        return attention_targets(model, ROOT + ".")


def run_clip_lora(cfg, run, report) -> dict:
    """The job of `tlcli coop --lora RANK`: decoded pixels, CLIP with adapters in both towers, the engine."""
    from tlcli.adapters.run_folder import write_adapted_model

    started = time.time()
    bad = BadFiles()
    split = split_of(cfg, bad)
    train_samples = k_shot(split.train, cfg.shots, cfg.seed)
    used = shots_used(train_samples, cfg.shots)
    classes = split.classes
    # fp32 on the CPU (the engine moves it and runs it in --precision); open_clip's own modules, not the
    # packed inference kernels, so the attention is there to adapt
    clip = load_clip(cfg.model, cfg.pretrained, "cpu", "fp32")
    clip.model  # noqa: B018  built now, outside any inference mode
    report.info(f"coop --lora {cfg.lora} (CLIP-LoRA): {len(train_samples)} train / {len(split.val)} val images, "
                f"{len(classes)} classes")
    report_short_shots(used, report)
    train, val, to_batch = pixel_datasets(clip, train_samples, split.val, classes, bad, cfg)
    model_ref, pretrained_ref = model_reference(cfg.model, cfg.pretrained)
    zero_shot = _zero_shot_accuracy(build_clip_lora(clip, classes), val, to_batch, cfg.batch_size or 32) \
        if val is not None and len(val) else None

    def export(model: ClipLoRA) -> None:
        with run.model_writer() as folder:
            write_adapted_model(folder, model, kind=MODEL_KIND, plugin="clip", settings=lora_settings(cfg),
                                base={"model": model_ref, "pretrained": pretrained_ref}, root=ROOT, labels=classes,
                                model=model_ref, pretrained=pretrained_ref, template=SINGLE_TEMPLATE,
                                precision="fp32")

    def build() -> ClipLoRA:
        return build_clip_lora(clip, classes)  # the engine injects the adapters into clip.model

    task = ClipLoRATask(cfg, classes, build, train, val, to_batch, export)
    callbacks = standard_callbacks(run, "coop", "clip", report.progress_quiet,
                                   [f"skipped {e['path']}: {e['reason']}" for e in bad.summary()])
    # --workers decoded the images above; the decoded pixels are in memory (no loader processes).
    result = fit(task, cfg.model_copy(update={"workers": 0}), run, callbacks=callbacks, resume=run.resumed)
    summary = {
        **result.summary(), "method": "clip-lora", "lora": lora_settings(cfg), "zeroshot_val_accuracy": zero_shot,
        "trainable_params": result.trainable_params, "total_params": result.total_params, "shots": used,
        "classes": classes, "train_images": len(train), "val_images": len(val) if val is not None else 0,
        "wall_s": round(time.time() - started, 3), "bad_files": bad.summary(),
    }
    best = "-" if result.best is None else f"{result.best:.4f}"
    zs = "-" if zero_shot is None else f"{zero_shot:.4f}"
    report.table(f"coop --lora {cfg.lora} (CLIP-LoRA) {result.status}",
                 ["run", "best val acc", "zero-shot val acc", "trainable / total", "wall"],
                 [[str(run.path), best, zs, f"{result.trainable_params:,} / {result.total_params:,}",
                   f"{summary['wall_s']:.1f}s"]])
    return summary


@torch.inference_mode()
def _zero_shot_accuracy(model: ClipLoRA, val, to_batch, batch_size: int) -> float:
    """CLIP's zero-shot accuracy on the held-out images with the same prompts (before any adapter)."""
    model.eval()
    model.freeze_text()
    correct = 0
    for start in range(0, len(val), batch_size):
        items = [val[i] for i in range(start, min(len(val), start + batch_size))]
        logits = model(to_batch([x for x, _ in items]))
        correct += int((logits.argmax(dim=1) == torch.tensor([y for _, y in items])).sum())
    return correct / len(val)


# --- using a trained run: predict, evaluate, merge --------------------------------------------------------------

class ClipLoRAPredictor:
    """``tlcli predict``/``evaluate``: CLIP's eval preprocessing, the adapted image tower, the class prompts'
    features from the adapted text tower (computed once)."""

    modality = "image"

    def __init__(self, clip: ClipModel, model: ClipLoRA, labels: list[str], device):
        self.clip, self.labels, self.device = clip, labels, device
        self.model = model.to(device).eval()
        self.model.freeze_text()
        self.transform = clip.preprocess

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.device)).float().softmax(dim=-1).cpu()

    @torch.inference_mode()
    def predict_with_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, embedding = self.model.logits_and_embedding(batch.to(self.device))
        return logits.float().softmax(dim=-1).cpu(), embedding.float().cpu()


def _loaded(model_dir: Path):
    """(files, the open_clip model loaded, the adapted ClipLoRA in fp32 on the CPU)."""
    from tlcli.runs.artifacts import read_model

    files = read_model(Path(model_dir))
    if files.kind != MODEL_KIND or lora_record(files) is None:
        raise UsageError(f"{model_dir}: a {files.kind!r} model, not a CLIP-LoRA run (kind {MODEL_KIND})")
    meta = files.meta
    if not isinstance(meta.get("model"), str) or not files.labels:
        raise UsageError(f"{files.path}: an incomplete CLIP-LoRA export (no model or labels); re-run coop --lora")
    # fp32 and open_clip's own modules (packed bf16 kernels would replace the adapted attention)
    clip = load_clip(meta["model"], meta.get("pretrained"), "cpu", "fp32")
    model = build_clip_lora(clip, files.labels, meta.get("template") or SINGLE_TEMPLATE)
    return files, clip, load_adapted_model(model, files)


def load_lora_predictor(model_dir: Path, device: str = "cpu") -> ClipLoRAPredictor:
    from tlcli.engine.device import resolve_device

    files, clip, model = _loaded(model_dir)
    return ClipLoRAPredictor(clip, model, files.labels, resolve_device(device))


def merge_adapters(model_dir: Path, out_dir: Path) -> dict:
    """`tlcli merge`: the plain layout of a CLIP-LoRA run is a CLIP linear head over a CLIP model (kind
    ``clip-probe``): ``clip.safetensors`` holds the open_clip weights with the adapters folded in (both
    towers: `tlcli zeroshot --pretrained MERGED/model/clip.safetensors` classifies any labels with it), the
    head is the class prompts' features from the merged text tower times the logit scale."""
    from safetensors.torch import save_file

    from tlcli.runs.artifacts import write_model

    files, clip, model = _loaded(model_dir)
    record = lora_record(files)
    merged = merge_into_base(model)
    merged.freeze_text()
    head = merged.fixed_text.float()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in merged.clip.state_dict().items()},
              str(out_dir / MERGED_CLIP), metadata={"format": "pt"})
    write_model(out_dir, kind="clip-probe", plugin="clip",
                tensors={"weight": merged.scale.float() * head,
                         "bias": torch.full((len(files.labels),), float(merged.bias))},
                labels=files.labels, model=files.meta["model"], pretrained=MERGED_CLIP, precision="fp32",
                merged_from={k: record[k] for k in ("rank", "alpha", "targets", "root", "base")})
    return {"kind": "clip-probe", "model": files.meta["model"], "merged_modules": len(record["targets"])}


MERGED_CLIP = "clip.safetensors"
