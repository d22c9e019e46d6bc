"""`tlcli pretrain` and `tlcli pseudolabel`, declared: their options are PretrainConfig / PseudolabelConfig,
their work tlcli_selfsup.pretrain_job.run_pretrain / tlcli_selfsup.pseudolabel.run_pseudolabel."""

from tlcli.cli.command import Command
from tlcli_selfsup.config import PretrainConfig, PseudolabelConfig

PRETRAIN_SUMMARY = "Pretrain a vision backbone on unlabelled images with a pretext task."
PSEUDOLABEL_SUMMARY = ("Self-training: label unlabelled images with a model, keep the confident ones "
                       "(class-balanced), retrain, repeat.")

PRETRAIN_HELP = f"""{PRETRAIN_SUMMARY}

rotation (RotNet), jigsaw (3x3 puzzle), simclr (contrastive, NT-Xent) or mae (masked autoencoder). Writes
the backbone's weights (heads dropped) to RUN_DIR/model/ for `tlcli finetune --weights RUN_DIR`. With --val,
the kNN accuracy of the backbone's features on that labelled set is measured each epoch: it is the run's
`best` metric (knn_accuracy)."""

PSEUDOLABEL_HELP = f"""{PSEUDOLABEL_SUMMARY}

Round 0 is the labelled-only model (the --from classifier as it is, or one trained on DATA from a pretrain
run's backbone). Each later round labels --unlabelled with the previous round's model, keeps the images at
least --threshold confident (at most --per-class-cap per class) and trains on DATA plus those, from the
previous round's weights. The training flags (--epochs, --max-steps, --lr...) apply to each round. The last
round's model is the run's model/."""

PRETRAIN = Command(
    "pretrain", PretrainConfig, "tlcli_selfsup.pretrain_job:run_pretrain", PRETRAIN_HELP, plugin="selfsup",
    examples=("tlcli pretrain photos/ --task simclr --model resnet18 --image-size 64 --epochs 30 --val labelled/",
              "tlcli pretrain unlabelled/ more/ --task rotation --out runs/rotnet && tlcli finetune few/ --weights "
              "runs/rotnet",
              "tlcli pretrain --resume runs/pretrain-20261202-101500"))

PSEUDOLABEL = Command(
    "pseudolabel", PseudolabelConfig, "tlcli_selfsup.pseudolabel:run_pseudolabel", PSEUDOLABEL_HELP,
    plugin="selfsup",
    examples=("tlcli pseudolabel few_labels/ --unlabelled pool/ --from runs/finetune-20261202-101500 "
              "--threshold 0.9",
              "tlcli pseudolabel few/ --unlabelled pool/ --from runs/rotnet --rounds 4 --per-class-cap 200 --json",
              "tlcli pseudolabel --resume runs/pseudolabel-20261202-101500"))
