"""`tlcli text finetune`: the sentence encoder + a linear head trained by the shared engine, in full or with
LoRA adapters (``--lora RANK``: the engine injects them through ``Task.adapters``; the head trains in full
through ``Task.heads``). The model and its files are tlcli_text.classifier."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
from tlcli.data.labelled import stratified_split, training_classes
from tlcli.data.texts import TextSample, read_labelled_texts
from tlcli.engine.params import ParamGroup
from tlcli.engine.task import Task, classification_sums
from tlcli_text.classifier import (
    MODEL_KIND, EncoderBase, SentenceClassifier, encoder_lora_targets, encoder_tensors, head_tensors,
    load_encoder_base, model_meta, write_classifier,
)
from tlcli_text.config import TextFinetuneConfig
from tlcli_text.task import Examples, collate

COMMAND = "text finetune"
HEAD = "head"


def tokenized(base: EncoderBase, samples: list[TextSample], index: dict[str, int]) -> Examples:
    """Rows ``{"input_ids", "labels"}``: every text tokenized once, up front (truncated to --max-length)."""
    ids = base.tokenizer.ids([s.text for s in samples])
    return Examples([{"input_ids": row, "labels": index[s.label]} for row, s in zip(ids, samples)])


def _no_decay(name: str, param: torch.nn.Parameter) -> bool:
    # timm's rule: biases, norms and other 1-D parameters are not decayed (LoRA's A and B matrices are).
    return param.ndim <= 1 or name.endswith(".bias") or "LayerNorm" in name or ".norm" in name


class TextFinetuneTask(Task):
    """The encoder with a head: cross-entropy on class ids; validated on loss and accuracy.

    ``frozen`` are the encoder's unused parts (BERT's pooler: mean pooling never reads it): never trained,
    adapted or checkpointed, exported as loaded."""

    def __init__(self, cfg: TextFinetuneConfig, base: EncoderBase, classes: list[str], train: Examples,
                 val: Examples | None, run=None):
        self.cfg, self.base, self.classes, self.run = cfg, base, classes, run
        self._train, self._val = train, val
        self.lora_targets: list[str] = []

    def describe(self) -> dict:
        return {"model": self.cfg.model, "classes": self.classes, "max_length": self.base.max_length,
                "lora": self.cfg.lora, "encoder_lr": self.cfg.encoder_lr()}

    def build_model(self) -> SentenceClassifier:
        # A copy: the loaded base serves every seed (and every row of `text compare`) untouched.
        return SentenceClassifier(copy.deepcopy(self.base.model), len(self.classes), self.base.layout.pooling,
                                  self.cfg.seed)

    def frozen_modules(self, model) -> list[str]:
        return ["encoder.pooler"] if getattr(model.encoder, "pooler", None) is not None else []

    def heads(self, model) -> list[str]:
        return [HEAD]

    def adapters(self, model) -> list[str]:
        from tlcli.adapters.lora import default_targets, matching_modules

        keep_out = self.heads(model) + self.frozen_modules(model)
        patterns = self.cfg.lora_targets
        self.lora_targets = (matching_modules(model, patterns, keep_out) if patterns
                             else default_targets(model, keep_out))
        return self.lora_targets

    def param_groups(self, model, blocks, include_frozen: bool) -> list[ParamGroup]:
        """The head at --lr, the encoder's trainable parameters (all of them, or the adapters) at
        --lr x --encoder-lr-factor; no weight decay on biases and norms. Frozen parameters are in no group."""
        cfg = self.cfg
        groups: dict[tuple[str, bool], list] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            part = HEAD if name.startswith(HEAD + ".") else "encoder"
            groups.setdefault((part, _no_decay(name, param)), []).append(param)
        out = []
        for (part, plain), params in sorted(groups.items(), key=lambda item: (item[0][0] != "encoder", item[0][1])):
            lr = cfg.lr if part == HEAD else cfg.encoder_lr()
            decay = 0.0 if plain else cfg.weight_decay
            out.append(ParamGroup(f"{part}/no_decay" if plain else part, params, lr, decay))
        return out

    def train_dataset(self):
        return self._train

    def val_dataset(self):
        return self._val

    def collate(self, items):
        return collate(items, self.base.pad_id)

    def batch_size_of(self, batch) -> int:
        return batch["input_ids"].shape[0]

    def training_step(self, model, batch):
        return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    def validation_step(self, model, batch):
        return classification_sums(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    def export(self, model, run_dir: Path, result) -> None:
        with self.run.model_writer() as folder:
            export_classifier(folder, model, self.base, self.classes, self.cfg, self.lora_targets)


def peft_base_name(name: str) -> str:
    """What adapter_config.json's ``base_model_name_or_path`` says: the hub name of the default model (its
    packaged copy is the same weights), else the folder's absolute path."""
    from tlcli.models.text import _DEFAULT_ALIASES

    if name.lower() in _DEFAULT_ALIASES:
        return "sentence-transformers/all-MiniLM-L6-v2"
    resolved = Path(name).expanduser()
    return str(resolved.resolve()) if resolved.exists() else name


def export_classifier(folder: Path, model: SentenceClassifier, base: EncoderBase, classes: list[str], cfg,
                      lora_targets: list[str]) -> None:
    """``model/``: the head, labels, model.json, and the encoder (full) or the adapters (--lora) in PEFT's
    format; see tlcli_text.classifier."""
    if not cfg.lora:
        write_classifier(folder, meta=model_meta(base, None), labels=classes, head=head_tensors(model),
                         encoder=encoder_tensors(model), layout=base.layout)
        return
    from tlcli.adapters.lora import save_adapter

    targets = encoder_lora_targets(model, lora_targets)
    alpha = cfg.lora_alpha if cfg.lora_alpha is not None else 2 * cfg.lora
    lora = {"rank": cfg.lora, "alpha": alpha, "dropout": cfg.lora_dropout, "targets": targets}

    def write_adapter(adapter_dir: Path) -> None:
        save_adapter(model, adapter_dir, cfg.lora, alpha, cfg.lora_dropout, targets,
                     base_model=peft_base_name(base.name), part="encoder")

    write_classifier(folder, meta=model_meta(base, lora), labels=classes, head=head_tensors(model),
                     adapter_writer=write_adapter)


# --- the job -----------------------------------------------------------------------------------------------

def split_samples(cfg) -> tuple[list[TextSample], list[TextSample], list[str]]:
    """(train, validation, classes): --val, else a stratified --val-split of DATA (none with 0)."""
    samples = read_labelled_texts(Path(cfg.data))
    if cfg.val:
        train, val = samples, read_labelled_texts(Path(cfg.val))
    elif cfg.val_split > 0:
        train, val = stratified_split(samples, cfg.val_split, cfg.seed)
    else:
        train, val = samples, []
    classes = training_classes(train, val, cfg.data, items="rows")
    if len(train) < 2:
        raise UsageError(f"{display_path(cfg.data)}: fewer than two training rows")
    return train, val, classes


def finetune(cfg: TextFinetuneConfig, run, report) -> dict:
    """`tlcli text finetune`: one training in ``run``, or with ``--seeds`` one per seed in ``run/seed-N``."""
    if cfg.seeds:
        from tlcli.cli.seeds import run_seeds

        summary = run_seeds(cfg, run, report, command=COMMAND, plugin="text", train_one=train_one)
        return {**summary, "model": cfg.model, "lora": cfg.lora}
    summary = train_one(cfg, run, report)
    best = summary["best"]["value"]
    report.table(f"text finetune {summary['status']}: {display_path(run.path)}",
                 ["best val acc", "steps", "wall", "trainable / total", "texts/s"],
                 [["-" if best is None else f"{best:.4f}", summary["steps"], f"{summary['wall_s']:.1f}s",
                   f"{summary['trainable_params']:,} / {summary['total_params']:,}",
                   f"{summary['train_samples_per_s']:.1f}"]])
    return summary


_BASES: dict[tuple[str, int], EncoderBase] = {}


def encoder_base(name: str, max_length: int) -> EncoderBase:
    """The loaded base, once per process (a --seeds set trains each seed on a copy of it)."""
    key = (name, max_length)
    if key not in _BASES:
        _BASES.clear()
        _BASES[key] = load_encoder_base(name, max_length)
    return _BASES[key]


def train_one(cfg: TextFinetuneConfig, run, report, outer_runs: tuple = ()) -> dict:
    """Read and tokenize the data, train with the engine in ``run`` (continuing its checkpoint when
    ``run.resumed``), export ``model/``; the summary. Bad data or model fail before the run's first event."""
    from tlcli.engine.callbacks import standard_callbacks
    from tlcli.engine.loop import fit

    train, val, classes = split_samples(cfg)
    report.info(f"loading {cfg.model}")
    base = encoder_base(cfg.model, cfg.max_length)
    index = {c: i for i, c in enumerate(classes)}
    task = TextFinetuneTask(cfg, base, classes, tokenized(base, train, index),
                            tokenized(base, val, index) if val else None, run=run)
    callbacks = standard_callbacks(run, COMMAND, "text", report.progress_quiet)
    result = fit(task, cfg, run, callbacks=callbacks, resume=run.resumed, outer_runs=outer_runs)
    return {**result.summary(), "model": cfg.model, "kind": MODEL_KIND, "lora": cfg.lora,
            "lora_targets": len(task.lora_targets) if cfg.lora else None,
            "trainable_params": result.trainable_params, "total_params": result.total_params, "classes": classes,
            "train_texts": len(train), "val_texts": len(val), "encoder_lr": cfg.encoder_lr()}
