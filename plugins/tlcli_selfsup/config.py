"""The options of `tlcli pretrain` and `tlcli pseudolabel`: the one declaration of their flags (see
tlcli/fields.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from tlcli.fields import ImageColumns, ImageData, MaxBadShare, TrainOptions, option

PRETEXT_TASKS = ("rotation", "jigsaw", "simclr", "mae")
PRETEXT = "Pretext task"
ROUNDS = "Pseudo-labelling"


class PretrainConfig(ImageColumns, TrainOptions):
    data: list[str] = option(..., "Unlabelled image files, folders (walked recursively) or tables (.parquet, "
                             ".arrow, a save_to_disk folder, hf:NAME; labels ignored).", argument=True,
                             metavar="UNLABELLED...", min_length=1,
                             missing="pass image files or folders (or --resume RUN_DIR)")
    task: Literal["rotation", "jigsaw", "simclr", "mae"] = option("rotation", "rotation | jigsaw | simclr | mae",
                                                                  panel=PRETEXT)
    val: str | None = option(None, "A labelled set: its kNN accuracy is measured each epoch (the run's best "
                             "metric, and what --early-stop watches).", panel=PRETEXT)
    model: str = option("resnet18", "torchvision name, timm:NAME or clip:NAME.", short="-m", panel=PRETEXT)
    pretrained: str = option("none", "none | default | a weight tag (start point).", panel=PRETEXT)
    temperature: float = option(0.2, "NT-Xent temperature (simclr).", gt=0, panel=PRETEXT)
    permutations: int = option(30, "Jigsaw permutation set size.", ge=2, le=1000, panel=PRETEXT)
    mask_ratio: float = option(0.5, "Share of patches hidden (mae).", gt=0, le=0.95, panel=PRETEXT)
    knn_k: int = option(20, "Neighbours in the kNN vote on --val.", ge=1, panel=PRETEXT)
    image_size: int | None = ImageData.model_fields["image_size"]
    max_bad: MaxBadShare = ImageData.model_fields["max_bad"]
    batch_size: int = option(64, "Items per micro-batch.", short="-b", ge=1)
    monitor: str = option("knn_accuracy", flag=False)


class PseudolabelConfig(ImageData, TrainOptions):
    data: str = option(..., "The labelled images: class folders or a CSV manifest (path,label).", argument=True,
                       metavar="DATA", missing="pass the labelled images, --unlabelled POOL and --from RUN "
                       "(or --resume RUN_DIR)")
    unlabelled: str = option(..., "Images without labels, or a table (a labelled folder or table is fine: its labels are only used "
                             "to report the pseudo-labels' accuracy).", panel=ROUNDS,
                             missing="pass --unlabelled POOL, a folder of images without labels")
    start: str = option(..., "A finetune run (its classifier labels round 1) or a pretrain run (a classifier "
                        "is first trained from it on DATA).", flag="--from", panel=ROUNDS,
                        missing="pass --from RUN, a finetune or pretrain run folder")
    threshold: float = option(0.9, "Keep pseudo-labels at least this confident.", ge=0, le=1, panel=ROUNDS)
    rounds: int = option(3, "At most this many label-and-retrain rounds.", ge=1, panel=ROUNDS)
    per_class_cap: int | None = option(None, "Keep at most N per class (default: the unlabelled count / "
                                       "classes), most confident first.", ge=1, panel=ROUNDS)
    augment: Literal["none", "light", "strong"] = option("light", "none | light | strong (strong: a noisy "
                                                         "student).", panel=ROUNDS)
    epochs: int = option(10, "Training epochs per round.", ge=1)
    max_steps: int | None = option(None, "Optimizer steps per round at most.", ge=1)
    # Not typed: the --from run's model (read from its model.json), trained from its weights.
    model: str | None = option(None, flag=False)
    pretrained: str = option("none", flag=False)

    @model_validator(mode="after")
    def _model_of_the_start_run(self):
        """The vision model the --from run holds (a run that holds none is refused before any work)."""
        if self.model is None:
            from pathlib import Path

            from tlcli.runs.artifacts import read_model
            from tlcli.console.errors import UsageError

            spec = read_model(Path(self.start)).meta.get("model")  # a folder with no model: one line, exit 2
            if not isinstance(spec, str):
                raise UsageError(f"--from {self.start}: its model.json names no vision model; pass a finetune or "
                                 "pretrain run")
            self.model = spec
        return self
