"""The distillation Task the shared engine runs: a student trained on a frozen teacher's softened outputs."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tlcli.engine.params import Block, discriminative_groups, list_blocks
from tlcli.engine.task import Task, classification_sums
from tlcli_distill.config import DistillConfig
from tlcli_distill.data import Decoded, TrainViews, ValViews, augment_view, collate_train, collate_val
from tlcli_distill.loss import distillation_loss, feature_loss

MODEL_KIND = "image-classifier"  # the fine-tuning export layout: `tlcli predict` loads it like a finetune run
REGRESSOR = "regressor"  # the --feature-loss regressor's block: trained and checkpointed, never exported


class DistillModel(nn.Module):
    """The student, the teacher beside it when augmented views need its outputs on the fly, and with
    --feature-loss the linear regressor from the student's penultimate features to the teacher's. The
    student and the regressor train and are checkpointed (so a resume continues both); only the student is
    exported. ``forward`` is the student's; ``forward(images, with_features=True)`` also returns the
    regressed penultimate features, inside the (DDP-wrapped) forward so the regressor's gradients are
    synchronised like the student's."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, regressor: nn.Module | None = None,
                 head: str | None = None):
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.regressor = regressor
        self.head = head  # the student's classifier module: its input is the penultimate features

    def forward(self, images, with_features: bool = False):
        if not with_features:
            return self.student(images)
        from tlcli.models.vision import logits_and_head_input

        logits, features = logits_and_head_input(self.student, self.head, images)
        return logits, self.regressor(features)


def _unwrapped(model) -> DistillModel:
    while not isinstance(model, DistillModel):  # DDP (.module) and torch.compile (._orig_mod) wrappers
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


class DistillTask(Task):
    def __init__(self, cfg: DistillConfig, classes: list[str], teacher, train: Decoded, val: Decoded | None,
                 train_logits: torch.Tensor | None, val_logits: torch.Tensor | None, preprocessing: dict,
                 build_student, run=None, train_features: torch.Tensor | None = None, feature_width: int = 0):
        self.cfg, self.classes, self.teacher = cfg, classes, teacher
        self._train, self._val = train, val
        self.train_logits, self.val_logits = train_logits, val_logits
        self.train_features = train_features  # the teacher's penultimate features of the clean views
        self.feature_width = feature_width if cfg.feature_loss else 0  # the teacher's feature width
        self.preprocessing, self._build_student, self.run = preprocessing, build_student, run
        self.on_the_fly = cfg.augment != "none"

    def describe(self) -> dict:
        return {"command": "distill", "plugin": "distill", "model": self.cfg.student, "teacher": self.cfg.teacher,
                "classes": self.classes, "temperature": self.cfg.temperature, "alpha": self.cfg.alpha,
                "feature_weight": self.cfg.feature_weight if self.feature_width else None,
                "teacher_outputs": "on the fly (augmented views)" if self.on_the_fly else "cached (clean views)"}

    def build_model(self):
        student = self._build_student()
        teacher = self.teacher if self.on_the_fly else None
        if not self.feature_width:
            return DistillModel(student, teacher)
        from tlcli.console.errors import UsageError
        from tlcli.models.vision import last_linear_name

        head = last_linear_name(student)
        if head is None:
            raise UsageError(f"--feature-loss: the student {self.cfg.student} has no linear classifier whose input "
                             "could be matched; drop --feature-loss or pick another --student")
        # FitNets' regressor: the student's features mapped to the teacher's width (a 1x1 conv on pooled
        # features is this linear map). Built after the student, so the student's initialisation is the
        # same with and without --feature-loss.
        regressor = nn.Linear(student.get_submodule(head).in_features, self.feature_width)
        return DistillModel(student, teacher, regressor, head)

    def frozen_modules(self, model) -> list[str]:
        return ["teacher"] if model.teacher is not None else []

    def blocks(self, model):
        blocks = list_blocks(model.student)
        if model.regressor is not None:
            blocks.append(Block(REGRESSOR, dict(model.regressor.named_parameters()), [model.regressor]))
        return blocks

    def param_groups(self, model, blocks, include_frozen: bool):
        student = [b for b in blocks if b.name != REGRESSOR]
        groups = discriminative_groups(model.student, student, 0, self.cfg.lr, 1.0, self.cfg.weight_decay,
                                       include_frozen=include_frozen)
        if model.regressor is not None:  # names relative to the regressor, for its own no-decay rule (biases)
            groups += discriminative_groups(model.regressor, [b for b in blocks if b.name == REGRESSOR], 0,
                                            self.cfg.lr, 1.0, self.cfg.weight_decay)
        return groups

    def _student_transform(self):
        from tlcli_distill.data import eval_transform

        return eval_transform(self.preprocessing)

    def train_dataset(self):
        return TrainViews(self._train, self._student_transform(), self.teacher.transform,
                          augment_view(self.cfg.augment), self.train_logits, self.train_features)

    def val_dataset(self):
        if self._val is None or not len(self._val):
            return None
        return ValViews(self._val, self._student_transform(), self.val_logits)

    def collate(self, items):
        return collate_train(items) if len(items[0]) == 5 else collate_val(items)

    def batch_size_of(self, batch) -> int:
        return batch[-1].shape[0]

    def training_step(self, model, batch):
        students, teacher_views, teacher_logits, teacher_features, labels = batch
        if teacher_logits is None:  # an augmented view: the frozen teacher runs on it now
            with torch.no_grad():
                if self.feature_width:
                    teacher_logits, teacher_features = _unwrapped(model).teacher(teacher_views, with_features=True)
                else:
                    teacher_logits = _unwrapped(model).teacher(teacher_views)
        if not self.feature_width:
            return distillation_loss(model(students), teacher_logits, labels, self.cfg.temperature, self.cfg.alpha)
        logits, regressed = model(students, with_features=True)
        return (distillation_loss(logits, teacher_logits, labels, self.cfg.temperature, self.cfg.alpha)
                + self.cfg.feature_weight * feature_loss(regressed, teacher_features))

    def validation_step(self, model, batch):
        images, teacher_logits, labels = batch
        logits = model(images)
        sums, n = classification_sums(logits, labels)
        sums["val_teacher_agreement"] = (logits.argmax(1) == teacher_logits.argmax(1)).sum().item()
        return sums, n

    def export(self, model, run_dir: Path, result) -> None:
        from tlcli.runs.artifacts import write_model

        with self.run.model_writer() as tmp:
            write_model(tmp, kind=MODEL_KIND, plugin="distill", tensors=model.student.state_dict(),
                        labels=self.classes, preprocessing=self.preprocessing, model=self.cfg.student,
                        distilled_from=self.cfg.teacher, temperature=self.cfg.temperature, alpha=self.cfg.alpha)
