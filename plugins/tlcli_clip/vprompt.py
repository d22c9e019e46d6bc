"""`tlcli vprompt`: visual prompting (Bahng et al., "Exploring Visual Prompts for Adapting Large-Scale
Models", 2022).

A padding prompt, ``--pad`` pixels wide around the image, is added to every preprocessed image; CLIP's
image tower is frozen (the engine's frozen-submodule rule: eval mode, no gradients, out of checkpoints) and
the class text embeddings are computed once and fixed. Only the prompt's pixels train: for ViT-B-32 at
224 px and ``--pad 30``, 69,840 numbers. The export holds the prompt and the fixed class embeddings (a few
hundred KB); ``tlcli predict``, ``tlcli evaluate`` and ``tlcli zeroshot --vprompt RUN`` use it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tlcli.runs.artifacts import write_model
from tlcli.data.bad_files import BadFiles
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.loop import fit
from tlcli.engine.params import Block, ParamGroup
from tlcli.engine.task import ClassifierTask
from tlcli.console.errors import UsageError
from tlcli.models.clip import ClipModel, load_clip
from tlcli.console.output import display_path
from tlcli_clip.common import k_shot, model_reference, split_of, sub_run
from tlcli_clip.config import VPromptConfig, ZeroshotConfig
from tlcli_clip.text import label_embeddings, resolve_templates

MODEL_KIND = "clip-vprompt"
PROMPT_KEYS = ("pad_up", "pad_down", "pad_left", "pad_right")


class PadPrompter(nn.Module):
    """Bahng et al.'s padding prompt: four learned strips around a zero centre, added to the image."""

    def __init__(self, image_size: int, pad: int, tensors: dict | None = None):
        super().__init__()
        if 2 * pad >= image_size:
            raise UsageError(f"--pad {pad}: the prompt would cover the whole {image_size}px image; use at most "
                             f"{(image_size - 1) // 2}")
        self.image_size, self.pad = image_size, pad
        inner = image_size - 2 * pad
        generator = torch.Generator().manual_seed(0)
        shapes = {"pad_up": (1, 3, pad, image_size), "pad_down": (1, 3, pad, image_size),
                  "pad_left": (1, 3, inner, pad), "pad_right": (1, 3, inner, pad)}
        for name, shape in shapes.items():
            value = torch.randn(shape, generator=generator) if tensors is None else tensors[name].float()
            if tuple(value.shape) != shape:
                raise UsageError(f"the prompt's {name} has shape {tuple(value.shape)}, expected {shape}")
            setattr(self, name, nn.Parameter(value.clone()))

    def prompt(self) -> torch.Tensor:
        inner = self.image_size - 2 * self.pad
        centre = torch.zeros(1, 3, inner, inner, device=self.pad_up.device, dtype=self.pad_up.dtype)
        middle = torch.cat([self.pad_left, centre, self.pad_right], dim=3)
        return torch.cat([self.pad_up, middle, self.pad_down], dim=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images + self.prompt().to(images.dtype)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class PromptedClip(nn.Module):
    """Prompted images through the frozen image tower, scored against fixed class embeddings."""

    def __init__(self, visual: nn.Module, prompter: PadPrompter, head: torch.Tensor, scale: float, bias: float):
        super().__init__()
        self.visual, self.prompter = visual, prompter
        self.register_buffer("head", head.float().contiguous())
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("bias", torch.tensor(float(bias)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_and_embedding(images)[0]

    def logits_and_embedding(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and the prompted images' embedding (not normalised) they come from."""
        dtype = next(self.visual.parameters()).dtype
        features = self.visual(self.prompter(images.float()).to(dtype)).float()
        return self.scale * F.normalize(features, dim=-1) @ self.head.T + self.bias, features


def image_size_of(clip: ClipModel) -> int:
    size = clip.preprocess_cfg.get("size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


# --- data ------------------------------------------------------------------------------------------------------

class Pixels(torch.utils.data.Dataset):
    """Images preprocessed once (uint8 after the PIL steps, or float tensors when the transform cannot be
    split); normalised per batch. No augmentation: the paper's recipe trains on the eval view."""

    def __init__(self, items: list, labels: list[int], train: bool):
        self.items, self.labels, self.train = items, labels, train

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key):
        index = key[0] if self.train else key
        return self.items[index], self.labels[index]


def decode_pixels(clip: ClipModel, paths: list[Path], bad: BadFiles, workers: int | None):
    """(kept indices, per-image items, collate(items) -> float batch)."""
    from tlcli.data.images import load_images

    split = clip.split_preprocess
    transform = split.per_image if split is not None else clip.preprocess
    kept, items = [], []
    for index, result in load_images(paths, transform=transform, workers=workers):
        if isinstance(result, Exception):
            bad.add(result)
            continue
        kept.append(index)
        items.append(result)
    to_batch = split.batch if split is not None else torch.stack
    return kept, items, to_batch


def pixel_datasets(clip: ClipModel, train_samples: list, val_samples: list, classes: list[str], bad: BadFiles, cfg):
    """The training and validation images decoded once and labelled by their index in ``classes``:
    (train, val or None, collate). Unreadable files count against --max-bad; fewer than two readable
    training images is a usage error."""
    index = {c: i for i, c in enumerate(classes)}
    kept, items, to_batch = decode_pixels(clip, [s.path for s in train_samples], bad, cfg.workers)
    train = Pixels(items, [index[train_samples[i].label] for i in kept], train=True)
    val = None
    if val_samples:
        kept_val, val_items, _ = decode_pixels(clip, [s.path for s in val_samples], bad, cfg.workers)
        val = Pixels(val_items, [index[val_samples[i].label] for i in kept_val], train=False)
    bad.check(len(train_samples) + len(val_samples), cfg.max_bad)
    if len(train) < 2:
        raise UsageError(f"{cfg.data}: fewer than two readable training images")
    return train, val, to_batch


# --- the task ----------------------------------------------------------------------------------------------------

class PixelsTask(ClassifierTask):
    """A CLIP task trained on decoded pixels (vprompt, CLIP-LoRA): the model builder, the datasets, the batching
    and the export are given; subclasses say what trains."""

    def __init__(self, cfg, classes: list[str], build, train: Pixels, val: Pixels | None, to_batch, export):
        self.cfg, self.classes, self._build = cfg, classes, build
        self.train, self.val, self.to_batch, self._export = train, val, to_batch, export

    def build_model(self):
        return self._build()

    def train_dataset(self):
        return self.train

    def val_dataset(self):
        return self.val

    def collate(self, items):
        return self.to_batch([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.long)

    def export(self, model, run_dir: Path, result) -> None:
        self._export(model)


class VPromptTask(PixelsTask):
    def describe(self) -> dict:
        return {"command": "vprompt", "plugin": "clip", "model": self.cfg.model, "classes": self.classes,
                "pad": self.cfg.pad}

    def frozen_modules(self, model) -> list[str]:
        return ["visual"]

    def blocks(self, model):
        return [Block("prompt", dict(model.prompter.named_parameters(prefix="prompter")), [])]

    def param_groups(self, model, blocks, include_frozen: bool):
        return [ParamGroup("prompt", list(model.prompter.parameters()), self.cfg.lr, self.cfg.weight_decay)]


def build_prompted(clip: ClipModel, head: torch.Tensor, pad: int, tensors: dict | None = None) -> PromptedClip:
    prompter = PadPrompter(image_size_of(clip), pad, tensors)
    return PromptedClip(clip.model.visual, prompter, head, clip.logit_scale(), clip.logit_bias() or 0.0)


def run_vprompt(cfg: VPromptConfig, run, report) -> dict:
    """The job of `tlcli vprompt`: decoded pixels, the fixed class head, the prompt trained by the engine."""
    started = time.time()
    bad = BadFiles()
    split = split_of(cfg, bad)
    train_samples = k_shot(split.train, cfg.shots, cfg.seed)
    classes = split.classes
    # fp32 on the CPU: the engine moves the model and runs it in --precision
    clip = load_clip(cfg.model, cfg.pretrained, "cpu", "fp32")
    clip.model  # noqa: B018  built now, not lazily inside encode_texts' inference mode (whose tensors cannot train)
    templates = resolve_templates(cfg.templates)
    head = torch.from_numpy(label_embeddings(clip, classes, templates, cfg.cache))
    report.info(f"vprompt: {len(train_samples)} train / {len(split.val)} val images, {len(classes)} classes, "
                f"pad {cfg.pad}px of {image_size_of(clip)}px")
    train, val, to_batch = pixel_datasets(clip, train_samples, split.val, classes, bad, cfg)
    model_ref, pretrained_ref = model_reference(cfg.model, cfg.pretrained)

    def export(model: PromptedClip) -> None:
        tensors = {name: getattr(model.prompter, name) for name in PROMPT_KEYS}
        with run.model_writer() as tmp:
            write_model(tmp, kind=MODEL_KIND, plugin="clip", tensors={**tensors, "head": model.head},
                        weights_file="prompt.safetensors", labels=classes, model=model_ref,
                        pretrained=pretrained_ref, precision=clip.spec["precision"], pad=cfg.pad,
                        image_size=image_size_of(clip), templates=cfg.templates)

    task = VPromptTask(cfg, classes, lambda: build_prompted(clip, head, cfg.pad), train, val, to_batch, export)
    callbacks = standard_callbacks(run, "vprompt", "clip", report.progress_quiet,
                                   [f"skipped {e['path']}: {e['reason']}" for e in bad.summary()])
    # --workers decoded the images above; the decoded pixels are in memory (no loader processes).
    result = fit(task, cfg.model_copy(update={"workers": 0}), run, callbacks=callbacks, resume=run.resumed)
    summary = {
        **result.summary(), "trainable_params": result.trainable_params, "total_params": result.total_params,
        "pad": cfg.pad, "classes": classes, "train_images": len(train),
        "val_images": len(val) if val is not None else 0, "wall_s": round(time.time() - started, 3),
        "bad_files": bad.summary(),
    }
    best = "-" if result.best is None else f"{result.best:.4f}"
    report.table(f"vprompt {result.status}", ["run", "best val acc", "trainable / total", "wall"],
                 [[str(run.path), best, f"{result.trainable_params:,} / {result.total_params:,}",
                   f"{summary['wall_s']:.1f}s"]])
    return summary


def compare_row(cfg, shots: int, run_dir: Path) -> dict:
    """`tlcli compare --vprompt`: a prompt learned on ``shots`` images per class of the compare split (the
    same seeded split and draw as CoOp's row), scored at its last epoch on the held-out images."""
    vcfg = VPromptConfig(data=cfg.data, val=cfg.val, model=cfg.model, pretrained=cfg.pretrained, shots=shots,
                         val_split=cfg.val_split, epochs=cfg.vprompt_epochs, pad=cfg.vprompt_pad, seed=cfg.seed,
                         device=cfg.device, precision=cfg.precision, templates=cfg.templates, workers=cfg.workers,
                         cache=cfg.cache, max_bad=cfg.max_bad, batch_size=cfg.batch_size or 32)
    summary = sub_run("vprompt", vcfg, run_vprompt, run_dir)
    return {"accuracy": summary["metrics"].get("val_accuracy", float("nan")),
            "trainable_params": summary["trainable_params"], "run_dir": summary["run_dir"]}


# --- using a learned prompt ------------------------------------------------------------------------------------

class VPromptPredictor:
    """``tlcli predict``/``evaluate``: CLIP's eval preprocessing, the prompt added, the fixed class head."""

    def __init__(self, clip: ClipModel, model: PromptedClip, labels: list[str], pretrained: str | None = None):
        self.clip, self.labels = clip, labels
        self.model = model.to(clip.device).eval()
        self.transform = clip.preprocess
        self.pretrained = pretrained  # model.json's, to rebuild the tower in fp32 for an export

    def export_module(self):
        """For `tlcli export`: prompt, frozen tower and fixed class head as one graph (pixels -> logits), fp32."""
        from tlcli.export.spec import image_exportable

        clip = self.clip.fp32_on_cpu(self.pretrained)
        model = self.model
        if clip is not self.clip:
            prompter = self.model.prompter
            tensors = {name: getattr(prompter, name).detach().float().cpu() for name in PROMPT_KEYS}
            model = PromptedClip(clip.model.visual, PadPrompter(prompter.image_size, prompter.pad, tensors),
                                 self.model.head.cpu(), float(self.model.scale), float(self.model.bias))
        return image_exportable(model, self.labels, clip.eval_preprocessing())

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.clip.device)).float().softmax(dim=-1).cpu()

    @torch.inference_mode()
    def predict_with_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, embedding = self.model.logits_and_embedding(batch.to(self.clip.device))
        return logits.float().softmax(dim=-1).cpu(), embedding.cpu()


def load_vprompt(model_dir: Path, device: str = "cpu", labels: list[str] | None = None) -> VPromptPredictor:
    """A vprompt run's predictor; with ``labels`` other than the run's, the head is built for them (the
    prompt itself does not depend on the labels)."""
    from tlcli.runs.artifacts import read_model

    files = read_model(model_dir)
    if files.kind != MODEL_KIND:
        raise UsageError(f"{model_dir}: a {files.kind!r} model, not a visual prompt (kind {MODEL_KIND})")
    meta, tensors = files.meta, files.tensors()
    try:
        clip = load_clip(meta["model"], meta.get("pretrained"), device, meta.get("precision", "auto"))
    except UsageError as error:
        if "--precision" not in str(error):
            raise
        clip = load_clip(meta["model"], meta.get("pretrained"), device, "auto")  # an fp16 run on a CPU
    head = tensors["head"]
    if labels is not None and list(labels) != list(files.labels):
        from tlcli_clip.text import label_embeddings, resolve_templates

        head = torch.from_numpy(label_embeddings(clip, labels, resolve_templates(meta.get("templates", "ensemble"))))
    model = build_prompted(clip, head, int(meta["pad"]), tensors)
    model.requires_grad_(False)
    return VPromptPredictor(clip, model, list(labels or files.labels), meta.get("pretrained"))


def load_vprompt_predictor(model_dir: Path, device: str = "cpu") -> VPromptPredictor:
    return load_vprompt(Path(model_dir), device)


def run_vprompt_zeroshot(cfg: ZeroshotConfig, report) -> dict:
    """`tlcli zeroshot --vprompt RUN`: every image through the learned prompt (image features of prompted
    images are not the feature cache's, so nothing is cached here)."""
    from tlcli.data.images import load_images
    from tlcli.classify.evaluation import classification_report, classifier_records
    from tlcli.data.tables import columns_of
    from tlcli_clip.zeroshot import UNKNOWN, read_inputs, show_metrics, show_records

    started = time.time()
    bad = BadFiles()
    paths, truth_names = read_inputs(cfg.paths, cfg.evaluate, bad, columns_of(cfg))
    predictor = load_vprompt(Path(cfg.vprompt), cfg.device, cfg.label_names())
    labels = predictor.labels
    if truth_names is not None:
        missing = sorted(set(truth_names) - set(labels))
        if missing:
            raise UsageError(f"--eval: label folders not among the labels: {', '.join(missing[:5])}; add them to --labels")
    report.info(f"zero-shot with the visual prompt of {cfg.vprompt}: {len(paths)} images, {len(labels)} labels")
    batch_size = cfg.batch_size or 32
    rows, kept, chunks, pending = [], [], [], []

    def flush():
        probs = predictor.predict(torch.stack([t for _, t in pending])).numpy()
        for (i, _), fields in zip(pending, classifier_records(probs, labels, cfg.top_k)):
            record = {"path": display_path(paths[i]), **fields}
            if cfg.threshold is not None and record["score"] < cfg.threshold:
                record["label"] = UNKNOWN
            if truth_names is not None:
                record["truth"] = truth_names[i]
            rows.append(record)
            report.record(record)
        kept.extend(i for i, _ in pending)
        chunks.append(probs)
        pending.clear()

    features_started = time.time()
    for index, result in load_images(paths, transform=predictor.transform, workers=cfg.workers):
        if isinstance(result, Exception):
            bad.add(result)
            continue
        pending.append((index, result))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    bad.check(len(paths), cfg.max_bad)
    show_records(report, rows)
    summary = {"status": "finished", "images": len(rows), "vprompt": cfg.vprompt,
               "infer_samples_per_s": round(len(rows) / max(1e-9, time.time() - features_started), 2),
               "wall_s": round(time.time() - started, 3), "bad_files": bad.summary()}
    if truth_names is not None and chunks:
        index = {name: i for i, name in enumerate(labels)}
        truth = np.array([index[truth_names[i]] for i in kept], dtype=np.int64)
        summary["metrics"] = classification_report(np.concatenate(chunks), truth, labels)
        show_metrics(report, summary["metrics"], labels, "zero-shot accuracy (visual prompt)")
    return summary
