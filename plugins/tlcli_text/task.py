"""The soft-prompt Task the shared engine runs, base-model loading, and the model/ export."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tlcli.engine.params import Block, ParamGroup
from tlcli.engine.task import Task, classification_sums
from tlcli.console.errors import UsageError
from tlcli_text.soft_prompt import IGNORE_INDEX, PromptedCausalLM, PromptedEncoderClassifier, initial_prompt

MODEL_KIND = "soft-prompt"
FROZEN = ["base"]  # the encoder or causal LM: never trained, never checkpointed or exported


# --- base models ------------------------------------------------------------------------------------

@dataclass
class Base:
    model: torch.nn.Module  # the frozen encoder or causal LM (a private copy)
    tokenizer: object
    max_positions: int


def load_base(mode: str, name: str) -> Base:
    """The frozen model a soft prompt is trained for; a missing model is a UsageError (exit 2)."""
    if mode == "classify":
        from tlcli.models.text import load_transformer_parts

        encoder, tokenizer, _ = load_transformer_parts(name)
        limit = int(getattr(encoder.config, "max_position_embeddings", 512) or 512)
        # A copy: the cached sentence-transformer keeps serving embeddings untouched.
        return Base(copy.deepcopy(encoder).float(), tokenizer, limit)
    return _load_causal_lm(name)


def _load_causal_lm(name: str) -> Base:
    from tlcli.models.text import _quiet_transformers

    _quiet_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name).expanduser()
    if name.startswith((".", "/", "~")) and not path.is_dir():
        raise UsageError(f"--model {name}: no such folder; pass a local causal LM folder (config.json + weights)")
    source = str(path) if path.is_dir() else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except Exception as error:  # offline, missing files, not a causal LM: one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UsageError(f"--model {name}: cannot load a causal LM (a local folder works offline): {first[:200]}") from None
    limit = int(getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 1024))
    return Base(model, tokenizer, limit)


def eos_id(tokenizer) -> int | None:
    """End-of-target token: the tokenizer's EOS, else its SEP (BERT-style vocabularies)."""
    for name in ("eos_token_id", "sep_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


def pad_id(tokenizer) -> int:
    value = getattr(tokenizer, "pad_token_id", None)
    return int(value if value is not None else (eos_id(tokenizer) or 0))


# --- tokenized data ------------------------------------------------------------------------------------

def input_budget(cfg_max_length: int, base: Base, num_virtual: int) -> int:
    budget = min(cfg_max_length, base.max_positions - num_virtual)
    if budget < 4:
        raise UsageError(f"--virtual-tokens {num_virtual}: leaves no room for text in a model of "
                         f"{base.max_positions} positions")
    return budget


def encode_for_classify(tokenizer, texts: list[str], budget: int) -> list[list[int]]:
    return [tokenizer(t, truncation=True, max_length=budget)["input_ids"] for t in texts]


def encode_for_generate(tokenizer, pairs: list[tuple[str, str]], budget: int) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per pair: input tokens then target tokens + EOS; labels only on the target.
    Too long: the input is cut from the left (its end is nearest the target), then the target."""
    eos = eos_id(tokenizer)
    out = []
    for source, target in pairs:
        src = tokenizer(source, add_special_tokens=False)["input_ids"]
        tgt = tokenizer(" " + target, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
        tgt = tgt[:budget - 1]
        src = src[max(0, len(src) - (budget - len(tgt))):]
        out.append((src + tgt, [IGNORE_INDEX] * len(src) + tgt))
    return out


def prompt_input_ids(tokenizer, text: str, budget: int) -> list[int]:
    """Generation-time input: the same tokens training saw before the target."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[max(0, len(ids) - budget):]


class Examples:
    """Tokenized rows. The engine indexes training data with (index, seed) and validation data with index;
    nothing here is random, so both just look the row up."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        return self.rows[index]


def collate(items: list[dict], pad: int) -> dict:
    """Right-padded batch: input_ids, attention_mask, and labels (class ids, or token labels with -100)."""
    width = max(len(item["input_ids"]) for item in items)
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : len(item["input_ids"])] = torch.tensor(item["input_ids"])
        mask[row, : len(item["input_ids"])] = 1
    if isinstance(items[0]["labels"], int):
        labels = torch.tensor([item["labels"] for item in items], dtype=torch.long)
    else:
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        for row, item in enumerate(items):
            labels[row, : len(item["labels"])] = torch.tensor(item["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# --- the Task --------------------------------------------------------------------------------------------

class PromptTuneTask(Task):
    def __init__(self, cfg, base: Base, train: Examples, val: Examples | None, classes: list[str] | None,
                 run=None):
        self.cfg, self.base, self.classes, self.run = cfg, base, classes, run
        self._train, self._val = train, val
        self._pad = pad_id(base.tokenizer)

    def describe(self) -> dict:
        return {"model": self.cfg.model, "mode": self.cfg.mode, "virtual_tokens": self.cfg.virtual_tokens,
                "init_text": self.cfg.init_text, "classes": self.classes}

    def build_model(self):
        embeddings = self.base.model.get_input_embeddings()
        prompt = initial_prompt(embeddings, self.base.tokenizer, self.cfg.virtual_tokens, self.cfg.init_text,
                                self.cfg.seed)
        if self.cfg.mode == "classify":
            return PromptedEncoderClassifier(self.base.model, prompt, len(self.classes))
        return PromptedCausalLM(self.base.model, prompt)

    def frozen_modules(self, model) -> list[str]:
        return FROZEN

    def blocks(self, model):
        blocks = [Block("base", {f"base.{n}": p for n, p in model.base.named_parameters()}, [model.base]),
                  Block("prompt", {"prompt.embedding": model.prompt.embedding}, [])]
        if self.cfg.mode == "classify":
            blocks.append(Block("head", {f"head.{n}": p for n, p in model.head.named_parameters()}, [model.head]))
        return blocks

    def param_groups(self, model, blocks, include_frozen: bool):
        groups = [ParamGroup("prompt", [model.prompt.embedding], self.cfg.lr, 0.0)]
        if self.cfg.mode == "classify":
            groups += [ParamGroup("head", [model.head.weight], self.cfg.head_lr, self.cfg.weight_decay),
                       ParamGroup("head/no_decay", [model.head.bias], self.cfg.head_lr, 0.0)]
        return groups

    def train_dataset(self):
        return self._train

    def val_dataset(self):
        return self._val

    def collate(self, items):
        return collate(items, self._pad)

    def batch_size_of(self, batch) -> int:
        return batch["input_ids"].shape[0]

    def training_step(self, model, batch):
        if self.cfg.mode == "classify":
            return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        return model.loss(batch["input_ids"], batch["attention_mask"], batch["labels"])

    def validation_step(self, model, batch):
        if self.cfg.mode == "classify":
            return classification_sums(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        losses, counted, correct = model.token_losses(batch["input_ids"], batch["attention_mask"], batch["labels"])
        per_example = counted.sum(dim=1).clamp(min=1)
        return {"val_loss": (losses.sum(dim=1) / per_example).sum().item(),
                "val_token_accuracy": (correct.sum(dim=1) / per_example).sum().item()}, per_example.shape[0]

    def export(self, model, run_dir: Path, result) -> None:
        with self.run.model_writer() as folder:
            export_soft_prompt(folder, model, self.cfg, self.classes)


def export_soft_prompt(folder: Path, model, cfg, classes: list[str] | None) -> None:
    """``model/``: model.safetensors (prompt [+ head], never the frozen base), model.json, preprocessing.json
    [, labels.json], through the shared artifact writer."""
    from tlcli.runs.artifacts import write_model

    tensors = {k: v for k, v in model.state_dict().items() if not k.startswith(tuple(f"{n}." for n in FROZEN))}
    preprocessing = {"max_length": cfg.max_length, "tokenizer": "the base model's",
                     "pooling": "mean over real tokens" if cfg.mode == "classify" else None}
    write_model(folder, kind=MODEL_KIND, plugin="text", tensors=tensors, labels=classes,
                preprocessing=preprocessing, mode=cfg.mode, model=cfg.model, virtual_tokens=cfg.virtual_tokens,
                init_text=cfg.init_text)
