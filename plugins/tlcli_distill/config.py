"""The options of `tlcli distill`: the one declaration of its flags (see tlcli/fields.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from tlcli.fields import ClassNames, ImageData, TrainOptions, option

# The hint term's weight: mean-squared penultimate features (post-ReLU pooled activations, a CLIP image
# embedding) are of order 0.1-1, the same order as the T^2-scaled KL term, so 1 gives both a say.
FEATURE_WEIGHT = 1.0
TEACHER = "Teacher"


class DistillConfig(ImageData, TrainOptions):
    data: str | None = option(None, "Labelled images: class folders, a CSV manifest (path,label) or a table "
                              "(.parquet, .arrow, a save_to_disk folder[:SPLIT], hf:NAME[:SPLIT]).",
                              argument=True, metavar="DATA")
    unlabelled: str | None = option(None, "Images without labels (a folder or a table), taught by the teacher "
                                    "alone.")
    teacher: str = option(..., "A trained run folder, or clip:MODEL (zero-shot over --labels).", panel=TEACHER,
                          missing="pass a trained run folder, or clip:MODEL with --labels")
    teacher_pretrained: str | None = option(None, "Weights of a clip: teacher: a tag, a FILE, or none.",
                                            panel=TEACHER)
    labels: ClassNames = option(None, "Class names of a clip: teacher, comma-separated (default: DATA's "
                                      "classes).", short="-l", panel=TEACHER)
    templates: str = option("ensemble", "Prompt templates of a clip: teacher: ensemble | single | FILE.",
                            panel=TEACHER)
    student: str = option("mobilenet_v3_small", "torchvision name (resnet18, mobilenet_v3_small, ...), "
                          "timm:NAME or clip:NAME.")
    pretrained: str = option("default", "The student's starting weights: default | none | a weight tag.")
    weights: str | None = option(None, "The student's local starting weights (safetensors, state dict, or a "
                                 "run's model/).")
    temperature: float = option(4.0, "Softening temperature T of both models' outputs.", gt=0, le=100.0)
    alpha: float = option(0.7, "Weight of the teacher's soft targets (1 - alpha on the labels).", ge=0.0,
                          le=1.0)
    feature_loss: bool = option(False, "Also match the teacher's penultimate features (FitNets hint): a "
                                "learned linear map of the student's, MSE, added with --feature-weight.")
    feature_weight: float | None = option(None, f"Weight of the --feature-loss term (default {FEATURE_WEIGHT}).",
                                          ge=0.0)
    augment: Literal["none", "light", "strong"] = option(
        "none", "none (teacher outputs cached) | light | strong (the teacher runs on each view).")
    cache: bool = option(True, "Read and write the teacher-output cache.")

    @model_validator(mode="after")
    def _consistent(self):
        if not self.data and not self.unlabelled:
            raise ValueError("no images: pass labelled DATA, --unlabelled DIR, or both")
        if self.teacher.startswith("clip:") and self.labels is None and not self.data:
            raise ValueError("--teacher clip:MODEL needs class names: pass --labels a,b,c (or labelled DATA)")
        if self.feature_weight is not None and not self.feature_loss:
            raise ValueError("--feature-weight weighs the feature loss: add --feature-loss, or drop --feature-weight")
        if self.feature_loss and self.feature_weight is None:
            self.feature_weight = FEATURE_WEIGHT
        return self
