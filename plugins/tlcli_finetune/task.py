"""The fine-tuning Task the shared engine runs: a pretrained backbone, a new head, frozen lower blocks."""

from __future__ import annotations

from pathlib import Path

import torch

from tlcli.adapters.run_folder import lora_settings
from tlcli.engine.params import block_name, discriminative_groups, freeze_until, list_blocks
from tlcli.engine.task import ClassifierTask
from tlcli.console.errors import UsageError
from tlcli.models.vision import build_vision_model, load_backbone_weights, read_weights_file
from tlcli_finetune.config import FinetuneConfig
from tlcli_finetune.data import DecodedImages, EvalImages, TrainImages, eval_transform, train_transform

MODEL_KIND = "image-classifier"


def preprocessing_for(cfg: FinetuneConfig, base: dict) -> dict:
    pre = dict(base)
    if cfg.image_size:  # keep the library's resize/crop ratio
        pre["resize"] = max(cfg.image_size, round(cfg.image_size * base["resize"] / base["crop"]))
        pre["crop"] = cfg.image_size
    return pre


class FinetuneTask(ClassifierTask):
    def __init__(self, cfg: FinetuneConfig, classes: list[str], train: DecodedImages, val: DecodedImages | None,
                 preprocessing: dict, run=None):
        self.cfg, self.classes, self.preprocessing, self.run = cfg, classes, preprocessing, run
        self._train, self._val = train, val
        self.weights_report: dict | None = None

    def describe(self) -> dict:
        return {"model": self.cfg.model, "classes": self.classes, "freeze_until": self.cfg.freeze_until,
                **({"lora": lora_settings(self.cfg)} if self.cfg.lora else {})}

    def build_model(self):
        built = build_vision_model(self.cfg.model, "none" if self.cfg.weights else self.cfg.pretrained,
                                   num_classes=len(self.classes), image_size=self.preprocessing["crop"])
        self._head_names, self._family = list(built.head_names), built.family
        if self.cfg.weights:
            self.weights_report = load_backbone_weights(built.model, read_weights_file(Path(self.cfg.weights)),
                                                        built.head_names)
        blocks = list_blocks(built.model)
        try:
            freeze_until(blocks, block_name(blocks, self.cfg.freeze_until))
        except ValueError:
            raise UsageError(f"--freeze-until {self.cfg.freeze_until!r} is not a block of {self.cfg.model}; "
                             f"valid names: {', '.join(b.name for b in blocks)}") from None
        self._blocks = blocks
        return built.model

    def blocks(self, model):
        # With --lora the engine added adapters after build_model: list the blocks again, so each block's
        # adapters are in its parameter group (--lr-decay) and its frozen base weights are not.
        return list_blocks(model) if self.cfg.lora else self._blocks

    def heads(self, model) -> list[str]:
        """The new classifier head trains in full beside the adapters."""
        return self._head_names

    def adapter_root(self) -> str:
        """The submodule the adapter folder is keyed on: open_clip's image tower for clip: models (so PEFT
        loads it onto ``open_clip.create_model(...).visual``), else the whole model."""
        return "visual" if self._family == "clip" else ""

    def base_description(self) -> dict:
        """What rebuilds the frozen base of a LoRA run: the model, its weights, and the seed that drew a
        random initialisation (the engine seeds before build_model)."""
        return base_description(self.cfg, self.preprocessing["crop"])

    def param_groups(self, model, blocks, include_frozen: bool):
        first = next((i for i, b in enumerate(blocks) if b.trainable), len(blocks))
        return discriminative_groups(model, blocks, first, self.cfg.lr, self.cfg.lr_decay, self.cfg.weight_decay,
                                     include_frozen=include_frozen)

    def train_dataset(self):
        return TrainImages(self._train, train_transform(self.preprocessing, self.cfg.augment))

    def val_dataset(self):
        return None if self._val is None else EvalImages(self._val, eval_transform(self.preprocessing))

    def collate(self, items):
        images = torch.stack([item[0] for item in items])
        labels = torch.tensor([item[1] for item in items], dtype=torch.long)
        return images, labels

    def export(self, model, run_dir: Path, result) -> None:
        """``model/``: the weights under the backbone's own names, labels, preprocessing."""
        from tlcli.runs.artifacts import write_model

        with self.run.model_writer() as folder:
            write_classifier(folder, model, self.cfg, self.classes, self.preprocessing, "finetune",
                             self.adapter_root())


def base_description(cfg: FinetuneConfig, image_size: int) -> dict:
    import os

    weights = os.path.abspath(cfg.weights) if cfg.weights else None
    return {"model": cfg.model, "pretrained": "none" if cfg.weights else cfg.pretrained, "weights": weights,
            "seed": cfg.seed, "image_size": image_size}


def write_classifier(folder: Path, model, cfg: FinetuneConfig, classes: list[str], preprocessing: dict,
                     plugin: str, root: str = "") -> None:
    """An image classifier's ``model/``: the weights under the backbone's own names, or with ``--lora`` the
    adapter folder (PEFT's format) and the head (see tlcli.adapters.run_folder)."""
    from tlcli.adapters.lora import has_lora
    from tlcli.runs.artifacts import write_model

    if has_lora(model):
        from tlcli.adapters.run_folder import write_adapted_model

        write_adapted_model(folder, model, kind=MODEL_KIND, plugin=plugin, settings=lora_settings(cfg),
                            base=base_description(cfg, preprocessing["crop"]), root=root, labels=classes,
                            preprocessing=preprocessing, model=cfg.model)
        return
    write_model(folder, kind=MODEL_KIND, plugin=plugin, tensors=model.state_dict(), labels=classes,
                preprocessing=preprocessing, model=cfg.model)
