"""Loading text runs for `tlcli predict` / `tlcli evaluate` (registered in ``plugin.py`` by model kind; this
module is imported only when such a run is loaded, so its imports sit at the top).

Each loader takes ``(model_dir, device)`` and returns a text predictor: ``modality = "text"``, ``labels``, and
``predict_texts(texts) -> (N, len(labels))`` class probabilities (see ``tlcli.plugin.TextPredictor``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tlcli.classify import probe
from tlcli.runs.artifacts import read_model
from tlcli.engine.device import resolve_device
from tlcli.engine.frozen import FrozenParts
from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
from tlcli_text.config import PromptTuneConfig
from tlcli_text.classifier import MODEL_KIND as CLASSIFIER_KIND
from tlcli_text.job import PROBE_KIND, embedder_for
from tlcli_text.task import (
    FROZEN, MODEL_KIND, Examples, PromptTuneTask, collate, encode_for_classify, input_budget, load_base, pad_id,
)


class ProbePredictor:
    """A `tlcli text probe` run: the sentence encoder, then the logistic-regression head."""

    modality = "text"

    def __init__(self, model_dir: Path, device: str = "auto"):
        model = _read(model_dir, PROBE_KIND, "tlcli text probe")
        tensors = model.tensors(framework="np")
        self.labels = model.labels
        if "weight" not in tensors or "bias" not in tensors:
            raise UsageError(f"{display_path(model.path)}: the head has no weight/bias; re-run tlcli text probe")
        self.weight, self.bias = tensors["weight"], tensors["bias"]
        _check_head(model_dir, self.weight.shape, len(self.labels))
        self.embedder = embedder_for(model.meta["model"], device)

    def predict_texts(self, texts: list[str]) -> np.ndarray:
        return probe.probabilities(self.embedder.encode(texts), self.weight, self.bias)

    def export_module(self):
        """For `tlcli export`: the encoder, its pooling and normalisation, and the head as one graph
        ((input_ids, attention_mask) -> logits), with the encoder's tokenizer files."""
        from tlcli.export.spec import text_exportable
        from tlcli.models.embedder import FastTokenizer, native_layout, sentence_graph, tokenizer_files

        layout = native_layout(self.embedder.model)
        if layout is None:
            raise UsageError(f"--model {self.embedder.model}: tlcli exports the BERT-layout sentence-transformers "
                             "folders it runs itself (model.safetensors, tokenizer.json, mean or CLS pooling); "
                             "this model is not one, so this probe cannot be exported")
        module = ProbeGraph(sentence_graph(layout), self.weight, self.bias)
        pad = FastTokenizer(layout.folder / "tokenizer.json", layout.max_seq_length).pad_token_id
        return text_exportable(module, self.labels, tokenizer_files(layout.folder), layout.max_seq_length, pad)


class ProbeGraph(torch.nn.Module):
    """The probe as one module: normalised sentence embeddings through the logistic-regression head."""

    def __init__(self, encoder: torch.nn.Module, weight: np.ndarray, bias: np.ndarray):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("weight", torch.from_numpy(np.asarray(weight, dtype=np.float32)).clone())
        self.register_buffer("bias", torch.from_numpy(np.asarray(bias, dtype=np.float32)).clone())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids, attention_mask) @ self.weight.T + self.bias


class SoftPromptModel:
    """A `tlcli prompt-tune` run, loaded: the frozen base with the trained prompt (and head)."""

    def __init__(self, model_dir: Path, device: str = "auto"):
        model = _read(model_dir, MODEL_KIND, "tlcli prompt-tune")
        meta, pre = model.meta, model.preprocessing
        self.mode = meta.get("mode", "classify")
        self.labels = model.labels if self.mode == "classify" else []
        try:
            self.cfg = PromptTuneConfig(data="-", mode=self.mode, model=meta["model"],
                                        virtual_tokens=meta["virtual_tokens"], max_length=pre.get("max_length", 128))
        except (KeyError, ValueError):  # pydantic's ValidationError is a ValueError
            raise UsageError(f"{display_path(model.path)}/model.json: not a readable prompt-tune export "
                             "(mode, virtual_tokens, max_length); re-run tlcli prompt-tune") from None
        self.base = load_base(self.cfg.mode, self.cfg.model)
        module = PromptTuneTask(self.cfg, self.base, Examples([]), None, self.labels or None).build_model()
        try:
            FrozenParts(module, FROZEN).load_trainable_state(module, model.tensors())
        except RuntimeError as error:
            raise UsageError(f"{display_path(model_dir)}: the prompt does not fit {meta['model']} "
                             f"({str(error).splitlines()[0]}); was the run trained on another model?") from None
        self.module = module.to(resolve_device(device)).eval()


class SoftPromptPredictor:
    """A classify-mode soft prompt as a text classifier."""

    modality = "text"

    def __init__(self, loaded: SoftPromptModel, batch_size: int = 32):
        self.loaded, self.labels, self.batch_size = loaded, loaded.labels, batch_size

    def export_module(self):
        """For `tlcli export`: frozen encoder, soft prompt and head as one graph ((input_ids,
        attention_mask) -> logits), with the base model's tokenizer files and the same token budget."""
        from tlcli.export.spec import text_exportable
        from tlcli.models.text import saved_tokenizer_files

        base = self.loaded.base
        budget = input_budget(self.loaded.cfg.max_length, base, self.loaded.cfg.virtual_tokens)
        return text_exportable(self.loaded.module, self.labels, saved_tokenizer_files(base.tokenizer), budget,
                               pad_id(base.tokenizer))

    def predict_texts(self, texts: list[str]) -> np.ndarray:
        base, module = self.loaded.base, self.loaded.module
        budget = input_budget(self.loaded.cfg.max_length, base, self.loaded.cfg.virtual_tokens)
        ids = encode_for_classify(base.tokenizer, texts, budget)
        device = module.prompt.embedding.device
        chunks = [np.zeros((0, len(self.labels)), dtype=np.float32)]
        with torch.inference_mode():
            for start in range(0, len(ids), self.batch_size):
                batch = collate([{"input_ids": i, "labels": 0} for i in ids[start:start + self.batch_size]],
                                pad_id(base.tokenizer))
                logits = module(batch["input_ids"].to(device), batch["attention_mask"].to(device))
                chunks.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(chunks)


class TextClassifierPredictor:
    """A `tlcli text finetune` run: its encoder (the exported one, or the base with the LoRA adapters folded
    in) on tlcli's own packed forward, then the head's softmax."""

    modality = "text"

    def __init__(self, model_dir: Path, device: str = "auto"):
        from tlcli.models.embedder import TextEmbedder
        from tlcli_text.classifier import ENCODER_DIR, HEAD_KEYS

        model = _read(model_dir, CLASSIFIER_KIND, "tlcli text finetune")
        self.labels = model.labels
        head = model.tensors()
        if any(key not in head for key in HEAD_KEYS):
            raise UsageError(f"{display_path(model.path)}: the head has no head.weight/head.bias; re-run tlcli text "
                             "finetune")
        self.weight, self.bias = head["head.weight"].float(), head["head.bias"].float()
        _check_head(model_dir, tuple(self.weight.shape), len(self.labels))
        max_length = model.meta.get("max_length")
        if model.meta.get("encoder") == ENCODER_DIR:
            folder, tensors = model.path / ENCODER_DIR, None
            if not (folder / "model.safetensors").is_file():
                raise UsageError(f"{display_path(folder)}: no model.safetensors; the export is incomplete, re-run")
        else:
            folder, tensors = adapted_encoder(model)
        # fp32: a run's predictions do not depend on the machine that makes them (as the probe's).
        self.embedder = TextEmbedder(str(folder), device=device, precision="fp32",
                                     tensors=tensors, max_length=max_length)
        if self.embedder.layout is None:
            raise UsageError(f"{display_path(folder)}: not a BERT sentence-transformers folder; re-run tlcli text "
                             "finetune")

    def features(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(texts)

    def predict_texts(self, texts: list[str]) -> np.ndarray:
        features = torch.from_numpy(self.features(texts))
        logits = features @ self.weight.T + self.bias
        return torch.softmax(logits, dim=1).numpy()


def adapted_encoder(model) -> tuple[Path, dict]:
    """(the base sentence-transformers folder, its weights with the run's LoRA adapters folded in)."""
    from tlcli.runs.artifacts import load_tensors
    from tlcli_text.classifier import ADAPTER_DIR, base_layout, merged_encoder_tensors, read_adapter

    if "model" not in model.meta:
        raise UsageError(f"{display_path(model.path)}/model.json: no \"model\" field; re-run tlcli text finetune")
    layout = base_layout(model.meta["model"])
    config, adapter = read_adapter(model.path / ADAPTER_DIR)
    return layout.folder, merged_encoder_tensors(load_tensors(layout.folder / "model.safetensors"), config, adapter)


def merge_adapters(model_dir: Path, out_model_dir: Path) -> None:
    """`tlcli merge` for a text classifier: ``out_model_dir`` gets the full-run layout (``encoder/``, a plain
    Hugging Face and sentence-transformers folder with the adapters folded into its weights, + the head,
    labels and model.json), which `tlcli predict` reads like any full fine-tuning run."""
    from tlcli_text.classifier import ENCODER_DIR, base_layout, write_classifier

    model = _read(Path(model_dir), CLASSIFIER_KIND, "tlcli text finetune")
    if model.meta.get("encoder") == ENCODER_DIR or not model.meta.get("lora"):
        raise UsageError(f"{display_path(model_dir)}: a full fine-tuning run has no adapters to merge; its "
                         "encoder/ is already a plain model folder")
    folder, tensors = adapted_encoder(model)
    meta = {k: v for k, v in model.meta.items() if k not in ("kind", "plugin", "format", "weights", "num_classes")}
    meta.update(encoder=ENCODER_DIR, lora=None, merged_from={"lora": model.meta.get("lora")})
    write_classifier(Path(out_model_dir), meta=meta, labels=model.labels, head=model.tensors(), encoder=tensors,
                     layout=base_layout(model.meta["model"]))
    read_model(Path(out_model_dir))  # what was written reads back


def load_text_classifier(model_dir: Path, device: str = "auto") -> TextClassifierPredictor:
    return TextClassifierPredictor(model_dir, device)


def load_probe(model_dir: Path, device: str = "auto") -> ProbePredictor:
    return ProbePredictor(model_dir, device)


def load_soft_prompt(model_dir: Path, device: str = "auto") -> SoftPromptPredictor:
    loaded = SoftPromptModel(model_dir, device)
    if loaded.mode != "classify":
        raise UsageError(f"{display_path(model_dir)}: a --mode generate soft prompt writes text, it does not "
                         "classify; use: tlcli prompt-tune predict RUN TEXTS")
    return SoftPromptPredictor(loaded)


def _read(model_dir: Path, kind: str, command: str):
    model = read_model(model_dir)
    if model.kind != kind:
        raise UsageError(f"{display_path(model_dir)}: holds a {model.kind!r} model, not a {command} run")
    if "model" not in model.meta:
        raise UsageError(f"{display_path(model.path)}/model.json: no \"model\" field; re-run {command}")
    return model


def _check_head(model_dir: Path, shape: tuple, num_labels: int) -> None:
    if len(shape) != 2 or shape[0] != num_labels:
        raise UsageError(f"{display_path(model_dir)}: the head has {shape[0] if shape else 0} rows but labels.json "
                         f"names {num_labels} classes; re-export the run")
