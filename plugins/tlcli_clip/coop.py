"""`tlcli coop`: CoOp soft prompts (Zhou et al., "Learning to Prompt for Vision-Language Models", 2022).

The prompt of class c is ``[SOT] v_1 ... v_M <class name tokens> . [EOT]``: M learned context vectors take
the place of the template words, in the token-embedding space of CLIP's frozen text transformer. The whole
CLIP model stays frozen; only the context vectors (one set, or one per class with ``--class-specific``) are
trained, by the shared engine. Image features are computed once and cached (the image tower is frozen and,
unlike the original recipe, images are not augmented), so each step runs only the text transformer over
the class prompts.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from tlcli.data.bad_files import BadFiles
from tlcli.engine.params import Block, ParamGroup
from tlcli.engine.task import Task, TrainConfig, classification_sums
from tlcli.errors import Interrupted, UsageError
from tlcli.models.clip import ClipModel, load_clip
from tlcli.output import emit_json, print_table
from tlcli.paths import CONFIG_FILE, METRICS_FILE, MODEL_DIR, atomic_write_text
from tlcli_clip.common import k_shot, labelled_features, say, split_data

MODEL_KIND = "clip-coop"
PLACEHOLDER = "X"


class CoopConfig(TrainConfig):
    data: str
    model: str = "ViT-B-32"
    pretrained: str | None = None
    n_ctx: int = Field(16, ge=1, le=64)
    init: str | None = None
    class_specific: bool = False
    shots: int | None = Field(None, ge=1)
    val_split: float = Field(0.2, gt=0.0, lt=1.0)
    lr: float = Field(2e-3, gt=0)
    feature_precision: str = "auto"
    decode_workers: int | None = Field(None, ge=0)
    use_cache: bool = True
    max_bad: float = Field(0.05, ge=0, le=1)
    epochs: int = Field(50, ge=1)
    workers: int | None = Field(0, ge=0)  # features are in memory: DataLoader workers would only cost


def _text_tower(model) -> nn.Module:
    """The module holding open_clip's own text transformer (CLIP itself, or CustomTextCLIP.text)."""
    tower = getattr(model, "text", model)
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
    if not all(hasattr(tower, name) for name in needed) or getattr(tower, "cls_emb", None) is not None:
        raise UsageError("CoOp needs a CLIP model with open_clip's own text transformer (not a Hugging Face "
                         "text tower); pick another --model, or use tlcli probe")
    return tower


class PromptedTextEncoder(nn.Module):
    """Class text features from learned context vectors; only ``ctx`` is a parameter (and in the state dict)."""

    def __init__(self, clip: ClipModel, labels: list[str], n_ctx: int, class_specific: bool,
                 init: str | None = None, ctx: torch.Tensor | None = None):
        super().__init__()
        tower = _text_tower(clip.model)
        self.tower = tower
        self.logit_scale = clip.model.logit_scale
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

    # The frozen CLIP weights are not this model's to save: checkpoints and exports hold the context only.
    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        out = OrderedDict() if destination is None else destination
        out[prefix + "ctx"] = self.ctx if keep_vars else self.ctx.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if "ctx" not in state_dict:
            raise KeyError("the checkpoint holds no prompt context ('ctx')")
        with torch.no_grad():
            self.ctx.copy_(state_dict["ctx"].to(self.ctx.device, self.ctx.dtype))
        return nn.modules.module._IncompatibleKeys([], [])


class FeatureSet(torch.utils.data.Dataset):
    def __init__(self, features: torch.Tensor, labels: torch.Tensor, train: bool):
        self.features, self.labels, self.train = features, labels, train

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key):
        index = key[0] if self.train else key  # train items come as (index, seed); no augmentation here
        return self.features[index], self.labels[index]


class CoopTask(Task):
    def __init__(self, cfg: CoopConfig, classes: list[str], train, val, meta: dict):
        self.cfg, self.classes, self.train, self.val, self.meta = cfg, classes, train, val, meta

    def describe(self) -> dict:
        return {"command": "coop", "plugin": "clip", "model": self.cfg.model, "classes": self.classes,
                "n_ctx": self.cfg.n_ctx, "class_specific": self.cfg.class_specific}

    def build_model(self):
        clip = load_clip(self.cfg.model, self.cfg.pretrained, "cpu", "fp32")  # the engine moves it
        clip.model.visual = nn.Identity()  # image features are precomputed; keep the tower off the device
        return PromptedTextEncoder(clip, self.classes, self.cfg.n_ctx, self.cfg.class_specific, self.cfg.init)

    def blocks(self, model):
        return [Block("ctx", {"ctx": model.ctx}, [])]

    def param_groups(self, model, blocks, include_frozen: bool):
        return [ParamGroup("ctx", [model.ctx], self.cfg.lr, 0.0)]

    def train_dataset(self):
        return FeatureSet(self.train.features, self.train.labels, train=True)

    def val_dataset(self):
        return None if self.val is None else FeatureSet(self.val.features, self.val.labels, train=False)

    def collate(self, items):
        return torch.stack([f for f, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items])

    def batch_size_of(self, batch) -> int:
        return batch[1].shape[0]

    def training_step(self, model, batch):
        features, labels = batch
        return F.cross_entropy(model(features), labels)

    def validation_step(self, model, batch):
        features, labels = batch
        return classification_sums(model(features), labels)

    def export(self, model, run_dir: Path, result) -> None:
        export_prompt(run_dir, model.ctx.detach().cpu(), self.classes, {**self.meta, "n_ctx": model.n_ctx})


def export_prompt(run_dir: Path, ctx: torch.Tensor, classes: list[str], meta: dict) -> Path:
    from safetensors.torch import save_file

    final = Path(run_dir) / MODEL_DIR
    tmp = Path(run_dir) / f".{MODEL_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({"ctx": ctx.float().contiguous()}, str(tmp / "prompt.safetensors"), metadata={"tlcli_model": MODEL_KIND})
    (tmp / "labels.json").write_text(json.dumps(classes, ensure_ascii=False, indent=1), encoding="utf-8")
    (tmp / "model.json").write_text(json.dumps({"kind": MODEL_KIND, "plugin": "clip", "format": 1, **meta}, indent=1),
                                    encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


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
    from safetensors.torch import load_file

    path = Path(path)
    model_dir = path / MODEL_DIR if (path / MODEL_DIR).is_dir() else path
    meta_file = model_dir / "model.json"
    if not meta_file.is_file():
        raise UsageError(f"--prompt {path}: no model/model.json; pass the folder of a finished tlcli coop run")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("kind") != MODEL_KIND:
        raise UsageError(f"--prompt {path}: a {meta.get('kind')!r} model, not CoOp prompts (kind {MODEL_KIND})")
    labels = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
    return PromptRun(meta, labels, load_file(str(model_dir / "prompt.safetensors"))["ctx"])


def run_coop(cfg: CoopConfig, run_dir: Path, resume: bool, json_output: bool, quiet: bool,
             emit: bool = True) -> dict:
    from tlcli.engine.callbacks import standard_callbacks
    from tlcli.engine.loop import fit
    from tlcli_clip.probe import model_reference
    from tlcli_clip.text import SINGLE_TEMPLATE, label_embeddings, zero_shot_probs

    started = time.time()
    bad = BadFiles()
    split = split_data(cfg.data, cfg.val_split, cfg.seed, bad)
    train_samples = k_shot(split.train, cfg.shots, cfg.seed)
    clip = load_clip(cfg.model, cfg.pretrained, cfg.device, cfg.feature_precision)
    say(quiet, f"coop: {len(train_samples)} train / {len(split.val)} val images, {len(split.classes)} classes")
    options = {"batch_size": 32, "workers": cfg.decode_workers, "use_cache": cfg.use_cache}
    stats: dict = {}
    train = labelled_features(clip, train_samples, split.classes, bad, options, quiet, stats)
    val = labelled_features(clip, split.val, split.classes, bad, options, quiet, stats)
    bad.check(len(train_samples) + len(split.val), cfg.max_bad)
    if len(train.labels) < 2:
        raise UsageError(f"{cfg.data}: fewer than two readable training images")
    zero_shot = None
    if len(val.labels):
        head = label_embeddings(clip, split.classes, [SINGLE_TEMPLATE], cfg.use_cache)
        zero_shot = float((zero_shot_probs(clip, val.x, head).argmax(axis=1) == val.y).mean())
    model_ref, pretrained_ref = model_reference(cfg.model, cfg.pretrained)
    meta = {"model": model_ref, "pretrained": pretrained_ref, "precision": clip.spec["precision"],
            "n_ctx": cfg.n_ctx, "class_specific": cfg.class_specific, "init": cfg.init}
    del clip

    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write_text(run_dir / CONFIG_FILE, json.dumps(cfg.model_dump(), indent=1))
    task = CoopTask(cfg, split.classes, train, val if len(val.labels) else None, meta)
    callbacks = standard_callbacks(run_dir, "coop", "clip", quiet,
                                   [f"skipped {e['path']}: {e['reason']}" for e in bad.summary()])
    result = fit(task, cfg, run_dir, callbacks=callbacks, resume=resume)
    summary = {
        "run_dir": str(run_dir), "status": result.status, "val_accuracy": result.best,
        "zeroshot_val_accuracy": zero_shot, "final_metrics": result.final_metrics, "steps": result.steps,
        "epochs": result.epochs_done, "trainable_params": result.trainable_params,
        "total_params": result.total_params, "cached": stats["cached"], "computed": stats["computed"],
        "classes": split.classes, "train_images": len(train.labels), "val_images": len(val.labels),
        "wall_s": round(time.time() - started, 3), "device": result.device, "precision": result.precision,
        "bad_files": bad.summary(),
    }
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(summary, indent=1))
    if emit and json_output:
        emit_json(summary)
    elif emit:
        best = "-" if result.best is None else f"{result.best:.4f}"
        zs = "-" if zero_shot is None else f"{zero_shot:.4f}"
        print_table(f"coop {result.status}", ["run", "best val acc", "zero-shot val acc", "trainable", "wall"],
                    [[str(run_dir), best, zs, f"{result.trainable_params:,}", f"{summary['wall_s']:.1f}s"]])
    if result.status == "interrupted":
        raise Interrupted(f"interrupted; checkpoint saved. Continue with: tlcli coop --resume {run_dir}")
    return summary
