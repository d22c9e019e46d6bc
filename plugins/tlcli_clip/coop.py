"""`tlcli coop`: CoOp soft prompts (Zhou et al., "Learning to Prompt for Vision-Language Models", 2022).

The prompt of class c is ``[SOT] v_1 ... v_M <class name tokens> . [EOT]``: M learned context vectors take
the place of the template words, in the token-embedding space of CLIP's frozen text transformer. The whole
CLIP model stays frozen; only the context vectors (one set, or one per class with ``--class-specific``) are
trained, by the shared engine. Image features are computed once and cached (the image tower is frozen and,
unlike the original recipe, images are not augmented), so each step runs only the text transformer over
the class prompts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tlcli.data.bad_files import BadFiles
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.loop import fit
from tlcli.engine.params import Block, ParamGroup
from tlcli.engine.task import ClassifierTask
from tlcli.console.errors import UsageError
from tlcli.models.clip import ClipModel, load_clip
from tlcli_clip.common import (k_shot, model_reference, report_short_shots, shots_used, split_of,
                               train_and_val_features)
from tlcli_clip.config import CoopConfig
from tlcli_clip.text import SINGLE_TEMPLATE, label_embeddings, zero_shot_probs

MODEL_KIND = "clip-coop"
PLACEHOLDER = "X"


def _text_tower(model) -> nn.Module:
    """The module holding open_clip's own text transformer (CLIP itself, or CustomTextCLIP.text)."""
    tower = getattr(model, "text", model)
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
    if not all(hasattr(tower, name) for name in needed) or getattr(tower, "cls_emb", None) is not None:
        raise UsageError("CoOp needs a CLIP model with open_clip's own text transformer (not a Hugging Face "
                         "text tower); pick another --model, or use tlcli probe")
    return tower


class PromptedTextEncoder(nn.Module):
    """Class text features from learned context vectors. Only ``ctx`` trains: ``tower`` (CLIP's text side)
    is declared frozen by the task (``Task.frozen_modules``), so the engine keeps it in eval mode and out of
    checkpoints."""

    def __init__(self, clip: ClipModel, labels: list[str], n_ctx: int, class_specific: bool,
                 init: str | None = None, ctx: torch.Tensor | None = None):
        super().__init__()
        tower = _text_tower(clip.model)
        self.tower = tower
        # A copy, not CLIP's parameter: nothing here trains it, and it is no part of the state to save.
        self.register_buffer("logit_scale", clip.model.logit_scale.detach().float().clone(), persistent=False)
        self.labels, self.class_specific = list(labels), class_specific
        if init:
            init_tokens = clip.tokenizer([init])[0]
            count = int((init_tokens > 0).sum()) - 2  # without SOT and EOT
            if count < 1:
                raise UsageError(f"--init {init!r}: the phrase has no tokens")
            n_ctx = count
        self.n_ctx = n_ctx
        prompts = [" ".join([PLACEHOLDER] * n_ctx) + " " + label + "." for label in labels]
        tokens = clip.tokenizer(prompts)
        if int(tokens.argmax(dim=-1).max()) >= tokens.shape[1] - 1:
            raise UsageError(f"a label is too long for the text encoder with {n_ctx} context tokens; shorten it")
        self.register_buffer("tokens", tokens, persistent=False)
        with torch.no_grad():
            embedded = tower.token_embedding(tokens.to(tower.token_embedding.weight.device)).float()
        self.register_buffer("prefix", embedded[:, :1].clone(), persistent=False)
        self.register_buffer("suffix", embedded[:, 1 + n_ctx :].clone(), persistent=False)
        width = embedded.shape[-1]
        shape = (len(labels), n_ctx, width) if class_specific else (n_ctx, width)
        if ctx is not None:
            if tuple(ctx.shape) != shape:
                raise UsageError(f"the learned prompts have shape {tuple(ctx.shape)}, expected {shape}; "
                                 f"a class-specific prompt needs the run's own labels")
            initial = ctx.float().clone()
        elif init:
            with torch.no_grad():
                phrase = tower.token_embedding(init_tokens[1 : 1 + n_ctx].to(tower.token_embedding.weight.device))
            initial = phrase.float().clone()
            if class_specific:
                initial = initial.unsqueeze(0).repeat(len(labels), 1, 1)
        else:
            generator = torch.Generator().manual_seed(0)
            initial = torch.randn(shape, generator=generator) * 0.02  # CoOp's initialisation
        self.ctx = nn.Parameter(initial.to(embedded.device))

    def text_features(self) -> torch.Tensor:
        """(num_labels, D) normalised."""
        tower = self.tower
        ctx = self.ctx if self.class_specific else self.ctx.unsqueeze(0).expand(len(self.labels), -1, -1)
        x = torch.cat([self.prefix, ctx, self.suffix], dim=1)
        cast = tower.transformer.get_cast_dtype() if hasattr(tower.transformer, "get_cast_dtype") else x.dtype
        x = x.to(cast) + tower.positional_embedding.to(cast)
        x = tower.transformer(x, attn_mask=tower.attn_mask)
        x = tower.ln_final(x)
        from open_clip.transformer import text_global_pool

        pool = getattr(tower, "text_pool_type", getattr(tower, "pool_type", "argmax"))
        eos = getattr(tower, "text_eos_id", getattr(tower, "eos_id", None))
        x = text_global_pool(x, self.tokens, pool, eos_token_id=eos)
        if isinstance(x, tuple):
            x = x[0]
        projection = tower.text_projection
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
        return F.normalize(x.float(), dim=-1)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_labels) of image features (not necessarily normalised)."""
        text = self.text_features()
        return self.logit_scale.exp().float() * F.normalize(image_features.float(), dim=-1) @ text.T


class FeatureSet(torch.utils.data.Dataset):
    def __init__(self, features: torch.Tensor, labels: torch.Tensor, train: bool):
        self.features, self.labels, self.train = features, labels, train

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key):
        index = key[0] if self.train else key  # train items come as (index, seed); no augmentation here
        return self.features[index], self.labels[index]


class CoopTask(ClassifierTask):
    def __init__(self, cfg: CoopConfig, classes: list[str], train, val, meta: dict, run):
        self.cfg, self.classes, self.train, self.val, self.meta, self.run = cfg, classes, train, val, meta, run

    def describe(self) -> dict:
        return {"command": "coop", "plugin": "clip", "model": self.cfg.model, "classes": self.classes,
                "n_ctx": self.cfg.n_ctx, "class_specific": self.cfg.class_specific}

    def build_model(self):
        clip = load_clip(self.cfg.model, self.cfg.pretrained, "cpu", "fp32")  # the engine moves it
        clip.model.visual = nn.Identity()  # image features are precomputed; keep the tower off the device
        return PromptedTextEncoder(clip, self.classes, self.cfg.n_ctx, self.cfg.class_specific, self.cfg.init)

    def frozen_modules(self, model) -> list[str]:
        return ["tower"]

    def blocks(self, model):
        return [Block("ctx", {"ctx": model.ctx}, [])]

    def param_groups(self, model, blocks, include_frozen: bool):
        return [ParamGroup("ctx", [model.ctx], self.cfg.lr, self.cfg.weight_decay)]

    def train_dataset(self):
        return FeatureSet(self.train.features, self.train.labels, train=True)

    def val_dataset(self):
        return None if self.val is None else FeatureSet(self.val.features, self.val.labels, train=False)

    def collate(self, items):
        return torch.stack([f for f, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items])

    def export(self, model, run_dir: Path, result) -> None:
        """``model/``: the context vectors (KBs) and the labels; CLIP itself is named, not copied."""
        from tlcli.runs.artifacts import write_model

        with self.run.model_writer() as folder:
            write_model(folder, kind=MODEL_KIND, plugin="clip", weights_file="prompt.safetensors",
                        tensors={"ctx": model.ctx.detach().float()}, labels=self.classes,
                        **{**self.meta, "n_ctx": model.n_ctx})


@dataclass
class PromptRun:
    """A CoOp run's learned prompts, usable with any labels (generic context) or its own (class-specific)."""

    meta: dict
    labels: list[str]
    ctx: torch.Tensor

    def head(self, clip: ClipModel, labels: list[str]) -> torch.Tensor:
        if self.meta["class_specific"] and list(labels) != list(self.labels):
            raise UsageError(f"these prompts are class-specific: use the run's own labels ({', '.join(self.labels)})")
        encoder = PromptedTextEncoder(clip, labels, int(self.meta["n_ctx"]), bool(self.meta["class_specific"]),
                                      ctx=self.ctx)
        encoder.to(clip.device)
        encoder.ctx.data = encoder.ctx.data.to(clip.dtype)
        with torch.inference_mode():
            return encoder.text_features().float().cpu()

    def probs(self, clip: ClipModel, features, head: torch.Tensor):
        """NumPy probabilities of NumPy ``features`` against ``head`` (from ``self.head``)."""
        from tlcli_clip.text import zero_shot_probs

        return zero_shot_probs(clip, features, head.numpy())


def load_prompt_run(path: Path) -> PromptRun:
    """A finished CoOp run's prompts (a run folder or its ``model/``), checked."""
    from tlcli.runs.artifacts import read_model

    files = read_model(Path(path))
    if files.kind != MODEL_KIND:
        raise UsageError(f"--prompt {path}: a {files.kind!r} model, not CoOp prompts (kind {MODEL_KIND})")
    ctx = files.tensors().get("ctx")
    if ctx is None or not isinstance(files.meta.get("n_ctx"), int) or not files.labels:
        raise UsageError(f"--prompt {path}: an incomplete CoOp export (no ctx, n_ctx or labels); re-run coop")
    return PromptRun(files.meta, files.labels, ctx)


def run_coop(cfg: CoopConfig, run, report) -> dict:
    """The job of `tlcli coop`: features, the zero-shot baseline, training by the engine, the summary."""
    if cfg.lora is not None:  # CLIP-LoRA: adapters in both towers, no learned context
        from tlcli_clip.lora import run_clip_lora

        return run_clip_lora(cfg, run, report)
    started = time.time()
    bad = BadFiles()
    split = split_of(cfg, bad)
    train_samples = k_shot(split.train, cfg.shots, cfg.seed)
    used = shots_used(train_samples, cfg.shots)
    clip = load_clip(cfg.model, cfg.pretrained, cfg.device, cfg.precision)
    report.info(f"coop: {len(train_samples)} train / {len(split.val)} val images, {len(split.classes)} classes")
    report_short_shots(used, report)
    stats: dict = {}
    train, val = train_and_val_features(clip, train_samples, split.val, split.classes, bad, cfg,
                                        report.progress_quiet, stats)
    zero_shot = None
    if len(val.labels):
        head = label_embeddings(clip, split.classes, [SINGLE_TEMPLATE], cfg.cache)
        zero_shot = float((zero_shot_probs(clip, val.x, head).argmax(axis=1) == val.y).mean())
    model_ref, pretrained_ref = model_reference(cfg.model, cfg.pretrained)
    meta = {"model": model_ref, "pretrained": pretrained_ref, "precision": clip.spec["precision"],
            "n_ctx": cfg.n_ctx, "class_specific": cfg.class_specific, "init": cfg.init}
    del clip

    task = CoopTask(cfg, split.classes, train, val if len(val.labels) else None, meta, run)
    callbacks = standard_callbacks(run, "coop", "clip", report.progress_quiet,
                                   [f"skipped {e['path']}: {e['reason']}" for e in bad.summary()])
    # --workers decoded the images above; the training batches are features in memory (no loader processes).
    result = fit(task, cfg.model_copy(update={"workers": 0}), run, callbacks=callbacks, resume=run.resumed)
    summary = {
        **result.summary(), "zeroshot_val_accuracy": zero_shot,
        "trainable_params": result.trainable_params, "total_params": result.total_params,
        "cached": stats["cached"], "computed": stats["computed"], "shots": used, "classes": split.classes,
        "train_images": len(train.labels), "val_images": len(val.labels),
        "wall_s": round(time.time() - started, 3), "bad_files": bad.summary(),
    }
    best = "-" if result.best is None else f"{result.best:.4f}"
    zs = "-" if zero_shot is None else f"{zero_shot:.4f}"
    report.table(f"coop {result.status}", ["run", "best val acc", "zero-shot val acc", "trainable", "wall"],
                 [[str(run.path), best, zs, f"{result.trainable_params:,}", f"{summary['wall_s']:.1f}s"]])
    if result.status == "stopped":
        report.info(f"stopped; the best prompts so far are in {run.model_dir}")
    return summary
