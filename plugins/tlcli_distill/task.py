"""The distillation Task the shared engine runs: a student trained on a frozen teacher's softened outputs."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tlcli.engine.params import discriminative_groups, list_blocks
from tlcli.engine.task import Task, classification_sums
from tlcli_distill.config import DistillConfig
from tlcli_distill.data import Decoded, TrainViews, ValViews, augment_view, collate_train, collate_val
from tlcli_distill.loss import distillation_loss

MODEL_KIND = "image-classifier"  # the fine-tuning export layout: `tlcli predict` loads it like a finetune run


class DistillModel(nn.Module):
    """The student, and the teacher beside it when augmented views need its outputs on the fly. Only the
    student trains, is checkpointed and is exported; ``forward`` is the student's."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None):
        super().__init__()
        self.student = student
        self.teacher = teacher

    def forward(self, images):
        return self.student(images)


def _unwrapped(model) -> DistillModel:
    while not isinstance(model, DistillModel):  # DDP (.module) and torch.compile (._orig_mod) wrappers
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


class DistillTask(Task):
    def __init__(self, cfg: DistillConfig, classes: list[str], teacher, train: Decoded, val: Decoded | None,
                 train_logits: torch.Tensor | None, val_logits: torch.Tensor | None, preprocessing: dict,
                 build_student, run=None):
        self.cfg, self.classes, self.teacher = cfg, classes, teacher
        self._train, self._val = train, val
        self.train_logits, self.val_logits = train_logits, val_logits
        self.preprocessing, self._build_student, self.run = preprocessing, build_student, run
        self.on_the_fly = cfg.augment != "none"

    def describe(self) -> dict:
        return {"command": "distill", "plugin": "distill", "model": self.cfg.student, "teacher": self.cfg.teacher,
                "classes": self.classes, "temperature": self.cfg.temperature, "alpha": self.cfg.alpha,
                "teacher_outputs": "on the fly (augmented views)" if self.on_the_fly else "cached (clean views)"}

    def build_model(self):
        return DistillModel(self._build_student(), self.teacher if self.on_the_fly else None)

    def frozen_modules(self, model) -> list[str]:
        return ["teacher"] if model.teacher is not None else []

    def blocks(self, model):
        return list_blocks(model.student)

    def param_groups(self, model, blocks, include_frozen: bool):
        return discriminative_groups(model.student, blocks, 0, self.cfg.lr, 1.0, self.cfg.weight_decay,
                                     include_frozen=include_frozen)

    def _student_transform(self):
        from tlcli_distill.data import eval_transform

        return eval_transform(self.preprocessing)

    def train_dataset(self):
        return TrainViews(self._train, self._student_transform(), self.teacher.transform,
                          augment_view(self.cfg.augment), self.train_logits)

    def val_dataset(self):
        if self._val is None or not len(self._val):
            return None
        return ValViews(self._val, self._student_transform(), self.val_logits)

    def collate(self, items):
        return collate_train(items) if len(items[0]) == 4 else collate_val(items)

    def batch_size_of(self, batch) -> int:
        return batch[-1].shape[0]

    def training_step(self, model, batch):
        students, teacher_views, teacher_logits, labels = batch
        if teacher_logits is None:
            with torch.no_grad():
                teacher_logits = _unwrapped(model).teacher(teacher_views)
        return distillation_loss(model(students), teacher_logits, labels, self.cfg.temperature, self.cfg.alpha)

    def validation_step(self, model, batch):
        images, teacher_logits, labels = batch
        logits = model(images)
        sums, n = classification_sums(logits, labels)
        sums["val_teacher_agreement"] = (logits.argmax(1) == teacher_logits.argmax(1)).sum().item()
        return sums, n

    def export(self, model, run_dir: Path, result) -> None:
        from tlcli.artifacts import write_model

        with self.run.model_writer() as tmp:
            write_model(tmp, kind=MODEL_KIND, plugin="distill", tensors=model.student.state_dict(),
                        labels=self.classes, preprocessing=self.preprocessing, model=self.cfg.student,
                        distilled_from=self.cfg.teacher, temperature=self.cfg.temperature, alpha=self.cfg.alpha)
