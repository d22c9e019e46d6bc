"""Load a fine-tuned run's model/ folder for `tlcli predict` and `tlcli evaluate`, and fold a LoRA run's
adapters into its base for `tlcli merge` (the ``merge_adapters`` hook of this model kind)."""

from __future__ import annotations

from pathlib import Path

import torch

from tlcli.runs.artifacts import read_model
from tlcli.console.errors import UsageError
from tlcli.models.vision import build_vision_model, logits_and_head_input
from tlcli_finetune.data import eval_transform


class ImageClassifierPredictor:
    modality = "image"

    def __init__(self, model, labels: list[str], preprocessing: dict, device: torch.device, head: str | None = None):
        self.model, self.labels, self.device = model.to(device).eval(), labels, device
        self.preprocessing = preprocessing
        self.transform = eval_transform(preprocessing)
        self.head = head  # the classifier's module name: its input is the penultimate features

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.model(batch.to(self.device))
        return torch.softmax(logits.float(), dim=1).cpu()

    def export_module(self):
        """For `tlcli export`: the network predict runs (pixels -> logits) and its preprocessing."""
        from tlcli.export.spec import image_exportable

        return image_exportable(self.model, self.labels, self.preprocessing)

    @torch.inference_mode()
    def predict_with_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, features = logits_and_head_input(self.model, self.head, batch.to(self.device))
        return torch.softmax(logits.float(), dim=1).cpu(), features.float().cpu()


def _built_model(files):
    """The classifier of an image-classifier model folder, weights loaded: the plain export, or a LoRA
    run's base rebuilt as it was trained (same model, weights and seed) with its adapters and head.
    Returns ``(model, head module name)``."""
    from tlcli.adapters.run_folder import load_adapted_model, lora_record

    spec = files.meta.get("model")
    if not isinstance(spec, str) or not files.labels or not files.preprocessing:
        raise UsageError(f"{files.path}: incomplete image-classifier export (model name, labels.json or "
                         "preprocessing.json missing); re-run the fine-tuning")
    crop = files.preprocessing.get("crop")  # a ViT trained at another size is built for that size
    record = lora_record(files)
    if record is None:
        built = build_vision_model(spec, "none", num_classes=len(files.labels),
                                   image_size=crop if isinstance(crop, int) else None)
        try:
            built.model.load_state_dict(files.tensors())
        except RuntimeError as error:
            raise UsageError(f"{files.path}: weights do not match {spec} ({str(error).splitlines()[0]})") from None
        return built.model, built.head_names[0]
    built = _rebuilt_base(files, record, spec, len(files.labels))
    return load_adapted_model(built.model, files), built.head_names[0]


def _rebuilt_base(files, record: dict, spec: str, num_classes: int):
    """A LoRA run's frozen base, built as ``FinetuneTask.build_model`` built it (the engine seeds torch with
    the run's seed first, which fixes a random initialisation)."""
    from tlcli.models.vision import load_backbone_weights, read_weights_file

    base = record.get("base") or {}
    pretrained, weights = base.get("pretrained", "none"), base.get("weights")
    size = base.get("image_size")
    if weights and not Path(weights).exists():
        raise UsageError(f"{files.path}: the base weights of this LoRA run, {weights}, are gone; put them back "
                         "(the adapters need the weights they were trained on)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(base.get("seed", 0)))
        built = build_vision_model(base.get("model", spec), pretrained, num_classes=num_classes,
                                   image_size=size if isinstance(size, int) else None)
    if weights:
        load_backbone_weights(built.model, read_weights_file(Path(weights)), built.head_names)
    return built


def load_predictor(model_dir: Path, device: str = "cpu") -> ImageClassifierPredictor:
    from tlcli.engine.device import resolve_device

    files = read_model(model_dir)
    model, head = _built_model(files)
    return ImageClassifierPredictor(model, files.labels, files.preprocessing, resolve_device(device), head=head)


def merge_adapters(model_dir: Path, out_dir: Path) -> dict:
    """`tlcli merge`: write into ``out_dir`` the plain image-classifier export of a LoRA run: every adapter
    folded into its base weight, the weights under the backbone's own names (what a run without --lora
    exports), labels and preprocessing as they were. Returns what was merged."""
    from tlcli.adapters.run_folder import lora_record, merge_into_base
    from tlcli.runs.artifacts import write_model

    files = read_model(model_dir)
    record = lora_record(files)
    if record is None:
        raise UsageError(f"{model_dir}: no LoRA adapters to merge")
    model, _ = _built_model(files)
    merged = merge_into_base(model)
    keep = {k: v for k, v in files.meta.items() if k not in ("kind", "plugin", "format", "weights", "num_classes",
                                                             "lora")}
    write_model(out_dir, kind=files.kind, plugin=files.meta.get("plugin", "finetune"), tensors=merged.state_dict(),
                labels=files.labels, preprocessing=files.preprocessing,
                **{**keep, "merged_from": {k: record[k] for k in ("rank", "alpha", "targets", "root", "base")}})
    return {"kind": files.kind, "model": files.meta.get("model"), "merged_modules": len(record["targets"])}
