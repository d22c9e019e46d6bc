"""The trainable text classifier of `tlcli text finetune`: a sentence encoder (Hugging Face ``BertModel`` from a
sentence-transformers folder), pooled and L2-normalised as the folder's pooling config says, then a linear
head; and the files it is saved as.

A run's ``model/`` (kind ``text-classifier``) holds ``model.safetensors`` (the head: ``head.weight``,
``head.bias``), ``labels.json``, ``model.json`` and either

- ``encoder/`` (full fine-tuning, or a merged LoRA run): a sentence-transformers folder that is also a plain
  Hugging Face model folder (config.json, model.safetensors, tokenizer files; ``transformers.AutoModel``,
  ``SentenceTransformer`` and tlcli's own encoder all load it), or
- ``adapter/`` (``--lora``): PEFT's ``adapter_config.json`` + ``adapter_model.safetensors`` for the base
  encoder that ``model.json`` names, so ``PeftModel.from_pretrained(AutoModel.from_pretrained(BASE),
  RUN/model/adapter)`` is the trained encoder.

Inference (tlcli_text.predictors) runs tlcli's own packed encoder (tlcli.models.embedder) on the encoder's
weights, the adapters folded in (:func:`merged_encoder_tensors`); nothing here imports transformers.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
from tlcli.models.embedder import FastTokenizer, FolderLayout, native_layout
from tlcli.models.text import DEFAULT_TEXT_MODEL, resolve_text_model

MODEL_KIND = "text-classifier"
ENCODER_DIR = "encoder"
ADAPTER_DIR = "adapter"
HEAD_KEYS = ("head.weight", "head.bias")
ENCODER_PREFIX = "encoder."  # where the BertModel sits in SentenceClassifier (and in its state keys)
# The files of a sentence-transformers folder besides the weights: copied into an exported encoder/ so it is
# the same kind of folder as the base (a README, ONNX or TF exports of the base are not).
_FOLDER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                 "modules.json", "config_sentence_transformers.json", "added_tokens.json")


@dataclass
class EncoderBase:
    """A sentence encoder to fine-tune: the folder's layout (pooling, normalisation), its tokenizer, and
    the Hugging Face model (built once; each training takes a copy)."""

    name: str
    layout: FolderLayout
    tokenizer: FastTokenizer
    model: nn.Module
    max_length: int

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id


def base_layout(name: str) -> FolderLayout:
    """The sentence-transformers folder of ``name``, when it is one tlcli fine-tunes: a BERT encoder with
    mean or CLS pooling, model.safetensors and tokenizer.json (all-MiniLM-L6-v2, bge, e5...)."""
    layout = native_layout(name)
    if layout is None:
        folder = Path(resolve_text_model(name)).expanduser()
        where = "no such folder" if not folder.is_dir() else "not a BERT sentence-transformers folder (modules.json " \
            "Transformer+Pooling, mean or CLS pooling, model.safetensors, tokenizer.json)"
        raise UsageError(f"--model {name}: {where}; text finetune trains such encoders, e.g. the default "
                         f"{DEFAULT_TEXT_MODEL}")
    return layout


def load_encoder_base(name: str, max_length: int) -> EncoderBase:
    """The Hugging Face ``BertModel`` of a sentence-transformers folder, in fp32, and its tokenizer."""
    from tlcli.models.text import _quiet_transformers

    layout = base_layout(name)
    _quiet_transformers()
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(layout.folder), dtype=torch.float32)
    except Exception as error:  # a broken config or weights: one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UsageError(f"--model {name}: cannot load its encoder with transformers: {first[:200]}") from None
    length = min(max_length, layout.max_seq_length)
    return EncoderBase(name, layout, FastTokenizer(layout.folder / "tokenizer.json", length), model, length)


class SentenceClassifier(nn.Module):
    """``encoder`` (a Hugging Face BERT-family model) -> mean (or CLS) pooling over real tokens -> L2
    normalisation -> ``head``. The normalised features are what tlcli's text encoder gives everywhere (probe,
    zero-shot, search), so the head reads the same kind of vector."""

    def __init__(self, encoder: nn.Module, num_classes: int, pooling: str = "mean", seed: int = 0):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        width = int(encoder.config.hidden_size)
        self.head = nn.Linear(width, num_classes)
        # Seeded here, not from the global stream: the same --seed gives the same head whatever ran before.
        generator = torch.Generator().manual_seed(seed)
        bound = 1.0 / width ** 0.5  # nn.Linear's default range
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.bias.uniform_(-bound, bound, generator=generator)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            real = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled.float(), p=2, dim=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(input_ids, attention_mask).to(self.head.weight.dtype))


def encoder_lora_targets(model: SentenceClassifier, names: list[str]) -> list[str]:
    """The adapted module names relative to the encoder (what PEFT sees when it wraps the base model)."""
    return [name[len(ENCODER_PREFIX):] for name in names if name.startswith(ENCODER_PREFIX)]


# --- writing ----------------------------------------------------------------------------------------------

def write_encoder_folder(folder: Path, layout: FolderLayout, tensors: dict[str, torch.Tensor], max_length: int) -> None:
    """A sentence-transformers folder (thus a Hugging Face folder) with ``tensors`` as its weights: the base
    folder's config, tokenizer and pooling files, and ``max_seq_length`` as the run was trained with."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for name in _FOLDER_FILES:
        if (layout.folder / name).is_file():
            shutil.copyfile(layout.folder / name, folder / name)
    try:
        modules = json.loads((layout.folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        modules = []
    for module in modules:
        sub = module.get("path", "") if isinstance(module, dict) else ""
        if sub and (layout.folder / sub).is_dir():
            shutil.copytree(layout.folder / sub, folder / sub, dirs_exist_ok=True)
    try:
        st_config = json.loads((layout.folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        st_config = {}
    st_config = {**(st_config if isinstance(st_config, dict) else {}), "max_seq_length": int(max_length)}
    (folder / "sentence_bert_config.json").write_text(json.dumps(st_config, indent=2) + "\n", encoding="utf-8")
    save_file({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})


def encoder_tensors(model: SentenceClassifier) -> dict[str, torch.Tensor]:
    """The encoder's weights under Hugging Face's key names (as ``BertModel.save_pretrained`` writes them)."""
    return {k[len(ENCODER_PREFIX):]: v for k, v in model.state_dict().items() if k.startswith(ENCODER_PREFIX)}


def head_tensors(model: SentenceClassifier) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    return {k: state[k] for k in HEAD_KEYS}


def model_meta(base: EncoderBase, lora: dict | None) -> dict:
    """model.json's fields of a text classifier (besides kind, plugin, labels)."""
    return {"model": base.name, "encoder": ADAPTER_DIR if lora else ENCODER_DIR, "pooling": base.layout.pooling,
            "normalize": True, "max_length": base.max_length, "lora": lora}


def write_classifier(folder: Path, *, meta: dict, labels: list[str], head: dict, encoder: dict | None = None,
                     layout: FolderLayout | None = None, adapter_writer=None) -> None:
    """``model/`` of a text classifier (inside ``Run.model_writer``, so it appears in one rename): the head,
    labels, model.json, and ``encoder/`` (its weights) or ``adapter/`` (written by ``adapter_writer(folder)``)."""
    from tlcli.runs.artifacts import write_model

    if encoder is not None:
        write_encoder_folder(folder / ENCODER_DIR, layout, encoder, meta["max_length"])
    if adapter_writer is not None:
        adapter_writer(folder / ADAPTER_DIR)
    preprocessing = {"tokenizer": f"{meta['encoder']}/tokenizer.json" if encoder is not None else "the base model's",
                     "max_length": meta["max_length"], "pooling": meta["pooling"], "normalize": True}
    write_model(folder, kind=MODEL_KIND, plugin="text", tensors=head, labels=labels, preprocessing=preprocessing,
                **meta)


# --- reading ----------------------------------------------------------------------------------------------

def read_adapter(adapter_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """PEFT's adapter_config.json and adapter tensors, checked enough to merge them."""
    from tlcli.runs.artifacts import load_tensors

    config_path = adapter_dir / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"{display_path(config_path)}: missing or not JSON; re-run the training") from None
    lora = isinstance(config, dict) and config.get("peft_type", "LORA") == "LORA"
    if not lora or not isinstance(config.get("r"), int):
        raise UsageError(f"{display_path(config_path)}: not a LoRA adapter config (peft_type LORA, r); re-run")
    return config, load_tensors(adapter_dir / "adapter_model.safetensors")


def merged_encoder_tensors(base: dict[str, torch.Tensor], config: dict,
                           adapter: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The base encoder's weights with each LoRA adapter folded in, ``W + s * B @ A`` (s = alpha / r, or
    alpha / sqrt(r) with rsLoRA): what PEFT's ``merge_and_unload`` gives, computed on the tensors alone.
    ``base`` has Hugging Face key names (``encoder.layer.0.attention.self.query.weight``); a ``bert.``
    prefix is kept when the base file has one."""
    rank = config["r"]
    alpha = config.get("lora_alpha", rank)
    scale = alpha / rank ** 0.5 if config.get("use_rslora") else alpha / rank
    if config.get("fan_in_fan_out"):
        raise UsageError("adapter_config.json: fan_in_fan_out adapters (GPT-2 Conv1D) are not BERT's; re-run")
    prefix = "bert." if any(k.startswith("bert.") for k in base) and not any(
        k.startswith("embeddings.") for k in base) else ""
    merged = {k: v.float().clone() for k, v in base.items()}
    adapted = 0
    for key, a in adapter.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[len("base_model.model."):-len(".lora_A.weight")] if key.startswith("base_model.model.") \
            else key[:-len(".lora_A.weight")]
        b = adapter.get(key.replace(".lora_A.weight", ".lora_B.weight"))
        weight_key = prefix + module + ".weight"
        if b is None or weight_key not in merged:
            raise UsageError(f"adapter tensor {key}: no matching lora_B or base weight {weight_key}; is the adapter "
                             "for another model?")
        merged[weight_key] += scale * (b.float() @ a.float())
        adapted += 1
    if not adapted:
        raise UsageError("adapter_model.safetensors holds no LoRA weights; re-run the training")
    return merged
