"""`tlcli distill`, declared: its options are DistillConfig, its work tlcli_distill.job.run_distill."""

from tlcli.cli.command import Command
from tlcli_distill.config import DistillConfig

HELP = """Distil a teacher into a small, fast student: a trained run, or CLIP's zero-shot classifier.

The student learns the teacher's outputs softened at --temperature T, mixed with the labels:
alpha * T^2 * KL(teacher || student) + (1 - alpha) * cross-entropy. Images in --unlabelled have no label:
only the teacher's outputs teach them (alpha = 1), so a CLIP teacher with --labels needs no labelled images
at all. The teacher's outputs on each image are computed once and cached (augmented views, with --augment,
run the frozen teacher on the fly). The student's run folder works with `tlcli predict` and `tlcli evaluate`.

--feature-loss adds FitNets' hint: a linear regressor maps the student's penultimate features to the
teacher's (a CLIP teacher's: its image embedding), and --feature-weight * MSE joins the loss. The regressor
trains with the student and is left out of the exported model."""

DISTILL = Command(
    "distill", DistillConfig, "tlcli_distill.job:run_distill", HELP, plugin="distill",
    examples=("tlcli distill photos/ --teacher runs/finetune-20261123-101500 --student mobilenet_v3_small",
              "tlcli distill --unlabelled shots/ --teacher clip:ViT-B-32 --labels cat,dog,bird --val val/ "
              "--student resnet18",
              "tlcli distill photos/ --teacher runs/finetune-20261123-101500 --student resnet18 --feature-loss",
              "tlcli distill --resume runs/distill-20261202-101500"))
