"""The causal LM being tuned: loading, the log-probabilities of the tokens that learn, and the export.

:class:`TunedLM` wraps the transformers model so that one ``forward`` (the one DDP wraps) returns the
log-probability of every label token. Only those positions go through the output layer: a reply of 20
tokens after a prompt of 200 costs 20 rows of the vocabulary-sized matrix product, not 220 (the product
and its softmax dominate a small model's step, and its memory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tlcli.console.errors import UsageError
from tlcli_tune.chat import IGNORE

MODEL_KIND = "causal-lm"
# Configs whose output layer is followed by a scale or a soft cap: their logits come from the model's own
# forward (all positions), never from the output layer alone.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


@dataclass
class Loaded:
    model: nn.Module  # the transformers causal LM, fp32, on the CPU
    tokenizer: object
    source: str  # what was loaded: a hub id, or the absolute path of the model folder (for an adapter's base)
    context: int | None  # positions the model has


def model_reference(text: str) -> tuple[str, bool]:
    """``hf:X`` or ``X`` (a folder, a run folder, a hub id) as (X, trust_remote_code). Options after ``?``
    are those of ``--llm hf:...``; only ``trust_remote_code`` means anything for training."""
    from tlcli.llm.spec import COMMAND_LINE, HFSpec, parse_spec

    spec = parse_spec(text if text.startswith("hf:") else f"hf:{text}", source=COMMAND_LINE)
    if not isinstance(spec, HFSpec):  # pragma: no cover - the hf: prefix is added above
        raise UsageError(f"--model {text}: expected hf:MODEL, a model folder or a run folder")
    return spec.model, spec.trust_remote_code


def load_model(text: str, what: str = "--model") -> Loaded:
    """A causal LM and its tokenizer for training (fp32); one line for every way it can fail."""
    from tlcli.llm.hf import load_causal_lm, model_folder
    from tlcli.models.text import _quiet_transformers

    _quiet_transformers()
    reference, trust = model_reference(text)
    try:
        folder = model_folder(reference)
        tokenizer, model = load_causal_lm(reference, torch.float32, trust)
    except UsageError as error:
        raise UsageError(f"{what}: {error}") from None
    except Exception as error:  # offline, missing files, not a causal LM: one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UsageError(f"{what} {text}: cannot load a causal LM (a local folder or a run folder works offline): "
                         f"{first[:200]}") from None
    config = model.config
    context = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    source = str(folder.resolve()) if folder is not None else reference
    return Loaded(model, tokenizer, source, int(context) if context else None)


def files_key(source: str) -> str:
    """A digest of a model's weights and config by content (for the reference log-prob cache): the bytes of
    a local folder's config and safetensors files (an adapter's and its base's alike), or the id and the
    commit of a cached hub model."""
    import hashlib

    from tlcli.llm.hf import adapter_base, model_folder

    digest = hashlib.sha256()
    seen = 0
    while True:
        folder = model_folder(source) if os.path.exists(os.path.expanduser(source)) else None
        if folder is None:
            digest.update(f"hub:{source}".encode())
            break
        for path in sorted(folder.iterdir()):
            if path.suffix in (".safetensors", ".json") and path.name not in ("model.json",) and path.is_file():
                digest.update(path.name.encode())
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 22), b""):
                        digest.update(chunk)
        if not (folder / "adapter_config.json").is_file() or seen > 8:
            break
        source, seen = adapter_base(folder), seen + 1
    return digest.hexdigest()[:24]


class TunedLM(nn.Module):
    """The causal LM with ``forward(input_ids, attention_mask, position_ids, labels)`` returning the
    log-probabilities of the label tokens: a flat float32 vector, in row-major order of the label positions
    (``labels[:, 1:] != IGNORE``). Token ``t`` is predicted from the positions before it, as usual."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        config = lm.config
        # The output layer is reached through lm (never registered here a second time: one state-dict key)
        self.fast = (lm.get_output_embeddings() is not None and lm.base_model is not lm
                     and not any(getattr(config, name, None) for name in _LOGIT_TRANSFORMS))

    def forward(self, input_ids, labels, attention_mask=None, position_ids=None):
        targets = labels[:, 1:]
        keep = targets != IGNORE
        if self.fast:
            hidden = self.lm.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                        position_ids=position_ids, use_cache=False).last_hidden_state
            logits = self.lm.get_output_embeddings()(hidden[:, :-1][keep])
        else:
            logits = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             use_cache=False).logits[:, :-1][keep]
        logits = logits.float()
        chosen = targets[keep]
        return logits.gather(1, chosen[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)


def unwrapped(model) -> TunedLM:
    while not isinstance(model, TunedLM):  # DDP (.module) and torch.compile (._orig_mod) wrappers
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


def row_sums(values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sums of flat per-token values (as :class:`TunedLM` returns them), and per-row token counts."""
    keep = labels[:, 1:] != IGNORE
    rows = keep.nonzero()[:, 0]
    sums = torch.zeros(labels.shape[0], dtype=values.dtype, device=values.device).index_add(0, rows, values)
    return sums, keep.sum(dim=1)


def pad_batch(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``labels`` and ``attention_mask`` of ``(ids, labels)`` rows."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, labs) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[i, : len(labs)] = torch.tensor(labs, dtype=torch.long)
        mask[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def export(run, model: nn.Module, tokenizer, *, adapter: bool, base_source: str, lora: dict | None,
           meta: dict) -> str:
    """Write the run's ``model/``: a full transformers folder (``save_pretrained``, LoRA adapters merged in)
    or, with ``adapter``, a PEFT adapter folder whose ``base_model_name_or_path`` is ``base_source``; the
    tokenizer (with the chat template it was trained with) and ``model.json`` beside, in either case. Both
    load with ``--llm hf:RUN`` (tlcli), and with transformers or PEFT directly. Returns "full" or "adapter"."""
    from tlcli.adapters.lora import adapted_modules, has_lora, merge_lora, save_adapter
    from tlcli.runs.artifacts import write_model

    lm = model.lm
    with run.model_writer() as tmp:
        tmp = Path(tmp)
        if adapter and has_lora(lm):  # the engine injected the adapters into the wrapper: save its lm part
            save_adapter(model, tmp, lora["rank"], lora["alpha"], lora["dropout"], adapted_modules(lm),
                         base_model=base_source, task_type="CAUSAL_LM", part="lm")
            layout = "adapter"
        else:
            if has_lora(lm):
                merge_lora(lm)
            _check_finite(lm)
            lm.save_pretrained(tmp, safe_serialization=True)
            layout = "full"
        tokenizer.save_pretrained(tmp)
        write_model(tmp, kind=MODEL_KIND, plugin="tune", layout=layout, base_model=base_source, **meta)
    return layout


def _check_finite(lm: nn.Module) -> None:
    for name, tensor in lm.state_dict().items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            from tlcli.console.errors import JobFailed

            raise JobFailed(f"the trained weights are not finite (NaN or inf in {name}); no model exported. Lower "
                            "--lr or pass --clip-grad, and start again")
