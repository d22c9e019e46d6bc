"""`tlcli finetune`, declared: its options are FinetuneConfig, its work tlcli_finetune.job.run_finetune."""

from tlcli.cli.command import Command
from tlcli_finetune.config import FinetuneConfig

SUMMARY = "Fine-tune a pretrained vision backbone with its lower layers frozen."

HELP = f"""{SUMMARY}

DATA is a folder with one subfolder per class, or a CSV manifest (path,label). Blocks up to --freeze-until
stay frozen (their BatchNorm statistics too, unless --train-bn); --lr is the head's learning rate and each
earlier block gets --lr-decay times the next one's; --unfreeze-every E unfreezes one more block every E
epochs. The run folder works with `tlcli predict` and `tlcli evaluate`.

--domain-adapt TARGET adds domain-adversarial training (DANN) on unlabelled target images; --seeds 1,2,3
trains once per seed into RUN_DIR/seed-N and reports the mean and std of their best validation accuracy."""

FINETUNE = Command(
    "finetune", FinetuneConfig, "tlcli_finetune.job:run_finetune", HELP, plugin="finetune",
    examples=("tlcli finetune photos/ --model resnet50 --freeze-until layer3 --epochs 5",
              "tlcli finetune train.csv --val val/ --weights pretrained.safetensors --lr 3e-4 --lr-decay 0.5 "
              "--unfreeze-every 2",
              "tlcli finetune source/ --domain-adapt target/ --seeds 1,2,3",
              "tlcli finetune --resume runs/finetune-20261123-101500"))
