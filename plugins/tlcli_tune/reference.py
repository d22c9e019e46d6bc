"""The reference model's log-probabilities of each pair's completions: computed once, cached by content.

A row is ``[log π_ref(chosen | prompt), log π_ref(rejected | prompt)]`` (float32, summed over the
completion's tokens), kept in the core feature cache (tlcli/features/images.py, a file a row) under a key
that hashes the reference model's files (config and weights, an adapter's base included) and the
precision; a row's digest hashes the pair's token ids (prompt, chosen, rejected, after the chat template
and --max-seq-len). Another reference, another template or other text read other entries; nothing is
invalidated in place. It is computed in fp32, without dropout, in one pass before training (as TRL's
``precompute_ref_log_probs``); a second run or a --resume over the same pairs reads it back.

Under torchrun rank r computes rows r, r + world, ... of the missing ones and a sum across ranks gives
every rank all of them (as distill's teacher outputs).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from tlcli.features.images import FeatureCache
from tlcli.runs.run import is_main_process

WIDTH = 2


@dataclass
class _ReferenceAsEncoder:
    """What FeatureCache needs to know of an encoder."""

    key: str
    spec: dict
    embed_dim: int = WIDTH


def pair_digest(prompt: list[int], chosen: list[int], rejected: list[int]) -> str:
    return hashlib.sha256(json.dumps([prompt, chosen, rejected], separators=(",", ":")).encode()).hexdigest()


class ReferenceCache(FeatureCache):
    def __init__(self, model_key: str, precision: str, spec: dict, enabled: bool = True):
        super().__init__(_ReferenceAsEncoder(f"dpo-reference-{model_key}-{precision}", spec), enabled)
        self.writes = is_main_process()

    def put(self, digest, row) -> None:
        if self.writes:
            super().put(digest, row)


@torch.inference_mode()
def pair_logps(model, pairs: list[tuple], indices: list[int], collate, device, batch_size: int,
               base: bool, precision: str = "fp32") -> torch.Tensor:
    """(len(indices), 2) float32 summed completion log-probs of ``pairs[indices]`` under ``model`` (a
    TunedLM) in eval mode, under the engine's autocast for ``precision``; ``base``: with its LoRA adapters
    switched off."""
    from tlcli.adapters.lora import adapters_disabled
    from tlcli.engine.device import autocast
    from tlcli_tune.model import row_sums

    out = torch.zeros((len(indices), WIDTH), dtype=torch.float32)
    was_training = model.training
    model.eval()
    with adapters_disabled(model) if base else nullcontext(), autocast(device, precision):
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = collate([(*pairs[i], torch.zeros(WIDTH)) for i in chunk])
            labels = batch["labels"].to(device)
            logps = model(input_ids=batch["input_ids"].to(device), labels=labels,
                          attention_mask=batch["attention_mask"].to(device))
            sums, _ = row_sums(logps.float(), labels)
            half = len(chunk)
            out[start : start + half] = torch.stack([sums[:half], sums[half:]], dim=1).cpu()
    model.train(was_training)
    return out


def reference_logps(model, pairs: list[tuple], cache: ReferenceCache, collate, device, batch_size: int,
                    base: bool, stats: dict, precision: str = "fp32") -> torch.Tensor:
    """(N, 2) reference log-probs of ``pairs`` ((prompt, chosen, rejected) ids), from the cache where
    present; the rest computed (shared out across torchrun ranks) and cached."""
    from tlcli.engine import distributed

    if not pairs:
        return torch.zeros((0, WIDTH))
    digests = [pair_digest(*pair) for pair in pairs]
    rows: dict[int, np.ndarray] = {}
    for i, digest in enumerate(digests):
        row = cache.get(digest)
        if row is not None:
            rows[i] = row
    info = distributed.setup(device.type)
    absent = torch.tensor([float(i not in rows) for i in range(len(pairs))])
    missing = torch.nonzero(distributed.sum_across_ranks(absent, info, device)).flatten().tolist()
    if missing:
        mine = missing[info.rank :: info.world]
        table = torch.zeros((len(missing), WIDTH))
        table[info.rank :: info.world] = pair_logps(model, pairs, mine, collate, device, batch_size, base, precision)
        table = distributed.sum_across_ranks(table, info, device)
        for place, i in enumerate(missing):
            rows[i] = table[place].numpy().astype(np.float32)
            cache.put(digests[i], rows[i])
        cache.flush()
    stats["cached"] = stats.get("cached", 0) + len(pairs) - len(missing)
    stats["computed"] = stats.get("computed", 0) + len(missing)
    return torch.from_numpy(np.stack([rows[i] for i in range(len(pairs))]).astype(np.float32))
