"""The engine Tasks of `tlcli sft` and `tlcli dpo`: batches of token ids, the losses, the metrics, the export."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from tlcli.engine.task import Task
from tlcli_tune.chat import IGNORE
from tlcli_tune.model import TunedLM, export, pad_batch, row_sums


class _Rows(torch.utils.data.Dataset):
    """Prepared rows; the engine asks for ``(index, seed)`` in training and ``index`` in validation (no
    augmentation here: the seed is unused)."""

    def __init__(self, rows: list):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        return self.rows[key[0] if isinstance(key, tuple) else key]


class _TuneTask(Task):
    """What sft and dpo share: the model (built once, from the loaded LM), LoRA bookkeeping, the export."""

    command = ""

    def __init__(self, cfg, loaded, run):
        self.cfg, self.loaded, self.run = cfg, loaded, run
        self.model = None

    def describe(self) -> dict:
        return {"command": self.command, "plugin": "tune", "model": self.cfg.model,
                "lora": self.cfg.lora, "max_seq_len": self.max_seq_len}

    @property
    def max_seq_len(self) -> int:
        return self._max_seq_len

    def build_model(self):
        self.model = TunedLM(self.loaded.model)
        return self.model

    def adapters(self, model) -> list[str]:
        return [name for name in super().adapters(model) if name.startswith("lm.")]

    def batch_size_of(self, batch) -> int:
        return batch["input_ids"].shape[0]

    def export(self, model, run_dir: Path, result) -> None:
        cfg = self.cfg
        adapter = cfg.lora is not None and cfg.export in ("auto", "adapter")
        lora = {"rank": cfg.lora, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout} if cfg.lora else None
        self.layout = export(self.run, model, self.loaded.tokenizer, adapter=adapter, base_source=self.loaded.source,
                             lora=lora, meta=self.export_meta())

    def export_meta(self) -> dict:
        return {"method": self.command, "chat_template": self.template_source, "max_seq_len": self.max_seq_len}


# --- SFT ---------------------------------------------------------------------------------------------

def pack(rows: list[tuple[list[int], list[int]]], width: int) -> list[tuple[list[int], list[int], list[int]]]:
    """Best-fit-decreasing packing of ``(ids, labels)`` rows into rows of at most ``width`` tokens:
    ``(ids, labels, position_ids)``, positions restarting at 0 for each example (transformers then keeps
    each example's attention to itself) and the first token of each example never a label (it would be
    predicted from the example before it)."""
    order = sorted(range(len(rows)), key=lambda i: (-len(rows[i][0]), i))
    bins: list[list[int]] = []
    space: list[int] = []
    for i in order:
        size = len(rows[i][0])
        best = min((b for b in range(len(bins)) if space[b] >= size), key=lambda b: (space[b], b), default=None)
        if best is None:
            bins.append([i])
            space.append(width - size)
        else:
            bins[best].append(i)
            space[best] -= size
    packed = []
    for members in bins:
        ids, labels, positions = [], [], []
        for i in members:
            row_ids, row_labels = rows[i]
            ids += row_ids
            labels += [IGNORE] + list(row_labels[1:])
            positions += list(range(len(row_ids)))
        packed.append((ids, labels, positions))
    return packed


class SFTTask(_TuneTask):
    command = "sft"

    def __init__(self, cfg, loaded, run, train_rows, val_rows, max_seq_len: int, template_source: str):
        super().__init__(cfg, loaded, run)
        self._max_seq_len = max_seq_len
        self.template_source = template_source
        self.pad_id = loaded.tokenizer.pad_token_id
        self.train_rows = pack(train_rows, max_seq_len) if cfg.packing else train_rows
        self.val_rows = val_rows  # validation is never packed: a loss per example, as it is used
        self.tokens_seen = self.rows_seen = 0  # what this process trained on (tokens per second)

    def describe(self) -> dict:
        return {**super().describe(), "packing": self.cfg.packing, "train_rows": len(self.train_rows)}

    def train_dataset(self):
        return _Rows(self.train_rows)

    def val_dataset(self):
        return _Rows(self.val_rows) if self.val_rows else None

    def collate(self, items):
        batch = pad_batch([(item[0], item[1]) for item in items], self.pad_id)
        batch["tokens"] = torch.tensor(sum(len(item[0]) for item in items))  # real (not padding) tokens
        if len(items[0]) == 3:  # packed: positions restart per example, and no padding mask (see pack)
            positions = torch.zeros_like(batch["input_ids"])
            for i, item in enumerate(items):
                positions[i, : len(item[2])] = torch.tensor(item[2])
                tail = positions.shape[1] - len(item[2])
                positions[i, len(item[2]):] = torch.arange(tail)  # padding: a sequence of its own, after the rest
            batch["position_ids"] = positions
            del batch["attention_mask"]
        return batch

    @staticmethod
    def _logps(model, batch):
        return model(input_ids=batch["input_ids"], labels=batch["labels"],
                     attention_mask=batch.get("attention_mask"), position_ids=batch.get("position_ids"))

    def training_step(self, model, batch):
        if torch.is_grad_enabled():  # not the engine's no-grad re-check of a step (--skip-nonfinite)
            self.tokens_seen += int(batch["tokens"])
            self.rows_seen += int(batch["input_ids"].shape[0])
        return -self._logps(model, batch).mean()

    def validation_step(self, model, batch):
        logps = self._logps(model, batch)
        return {"val_loss": float(-logps.sum())}, {"val_loss": int(logps.numel())}

    def derived_metrics(self, metrics: dict) -> dict:
        loss = metrics.get("val_loss")
        return {"val_perplexity": math.exp(min(loss, 700.0))} if loss is not None and math.isfinite(loss) else {}

    def train_tokens(self) -> int:
        return sum(len(row[0]) for row in self.train_rows)

    def tokens_per_row(self) -> float:
        """Real tokens per training row seen, padding excluded (times rows per second: tokens per second)."""
        if self.rows_seen:
            return self.tokens_seen / self.rows_seen
        return self.train_tokens() / max(1, len(self.train_rows))


# --- DPO ---------------------------------------------------------------------------------------------

_STEP_KEYS = ("reward_accuracy", "reward_margin", "reward_chosen", "reward_rejected", "logps_chosen",
              "logps_rejected")


def collate_pairs(items, pad_id: int) -> dict[str, torch.Tensor]:
    """``(prompt, chosen, rejected, reference)`` items in TRL's layout: the chosen sequences, then the
    rejected ones, right-padded; labels on the completions only; ``reference`` (B, 2)."""
    rows = [(p + c, [IGNORE] * len(p) + c) for p, c, _, _ in items]
    rows += [(p + r, [IGNORE] * len(p) + r) for p, _, r, _ in items]
    batch = pad_batch(rows, pad_id)
    batch["reference"] = torch.stack([torch.as_tensor(item[3]) for item in items]).to(torch.float32)
    return batch


class DPOTask(_TuneTask):
    command = "dpo"

    def __init__(self, cfg, loaded, run, train_pairs, val_pairs, max_seq_len: int, template_source: str,
                 reference):
        super().__init__(cfg, loaded, run)
        self._max_seq_len = max_seq_len
        self.template_source = template_source
        self.pad_id = loaded.tokenizer.pad_token_id
        self.train_pairs, self.val_pairs = train_pairs, val_pairs
        self.reference = reference  # computes (N, 2) reference log-probs once (job.py), or None for simpo
        self.train_ref = self.val_ref = None
        self._sums = dict.fromkeys(_STEP_KEYS, 0.0)
        self._count = 0

    def describe(self) -> dict:
        return {**super().describe(), "loss": self.cfg.loss, "beta": self.cfg.beta, "ref": self.cfg.ref}

    def build_model(self):
        """The policy without dropout (TRL's ``disable_dropout``, on by default): the implicit reward compares
        it with a reference computed without dropout, and dropout would add noise to every log-ratio. LoRA's own
        --lora-dropout stays as asked."""
        model = super().build_model()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        return model

    def _references(self):
        """Both sets' reference log-probs, computed (or read from the cache) once, from the weights the run
        starts with: the engine asks for the datasets before a resume loads the trained ones."""
        if self.reference is not None and self.train_ref is None:
            self.train_ref, self.val_ref = self.reference(self.model, self.train_pairs, self.val_pairs)

    def _rows(self, pairs, ref):
        zeros = torch.zeros(len(pairs), 2)
        ref = ref if ref is not None else zeros
        return _Rows([(*pair, ref[i]) for i, pair in enumerate(pairs)])

    def train_dataset(self):
        self._references()
        return self._rows(self.train_pairs, self.train_ref)

    def val_dataset(self):
        self._references()
        return self._rows(self.val_pairs, self.val_ref) if self.val_pairs else None

    def collate(self, items):
        return collate_pairs(items, self.pad_id)

    def batch_size_of(self, batch) -> int:
        return batch["reference"].shape[0]

    def _forward(self, model, batch):
        """(per-pair output, the batch's loss, chosen and rejected summed log-probs, detached)."""
        from tlcli_tune.losses import chosen_nll, preference_loss

        labels = batch["labels"]
        logps = model(input_ids=batch["input_ids"], labels=labels, attention_mask=batch["attention_mask"])
        sums, tokens = row_sums(logps, labels)
        half = batch["reference"].shape[0]
        ref = batch["reference"].to(sums.dtype)
        out = preference_loss(self.cfg.loss, self.cfg.beta, sums[:half], sums[half:], tokens[:half], tokens[half:],
                              ref[:, 0], ref[:, 1], gamma=self.cfg.simpo_gamma)
        loss = out.losses.mean()
        if self.cfg.sft_weight:
            loss = loss + self.cfg.sft_weight * chosen_nll(sums[:half], tokens[:half])
        return out, loss, sums[:half].detach(), sums[half:].detach()

    @staticmethod
    def _pair_sums(out, chosen, rejected) -> dict[str, float]:
        margin = out.chosen_rewards - out.rejected_rewards
        return {"reward_accuracy": float((margin > 0).float().sum()), "reward_margin": float(margin.sum()),
                "reward_chosen": float(out.chosen_rewards.sum()), "reward_rejected": float(out.rejected_rewards.sum()),
                "logps_chosen": float(chosen.sum()), "logps_rejected": float(rejected.sum())}

    def training_step(self, model, batch):
        out, loss, chosen, rejected = self._forward(model, batch)
        if torch.is_grad_enabled():  # not the engine's no-grad re-check of a step (--skip-nonfinite)
            for key, value in self._pair_sums(out, chosen, rejected).items():
                self._sums[key] += value
            self._count += int(chosen.shape[0])
        return loss

    def log_metrics(self) -> dict[str, float]:
        if not self._count:
            return {}
        metrics = {key: value / self._count for key, value in self._sums.items()}
        self._sums, self._count = dict.fromkeys(_STEP_KEYS, 0.0), 0
        return metrics

    def validation_step(self, model, batch):
        out, loss, chosen, rejected = self._forward(model, batch)
        sums = {f"val_{key}": value for key, value in self._pair_sums(out, chosen, rejected).items()}
        sums["val_loss"] = float(loss) * int(chosen.shape[0])  # summed per pair: the engine divides by the count
        return sums, int(chosen.shape[0])
