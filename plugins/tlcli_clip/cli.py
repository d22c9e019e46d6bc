"""`tlcli zeroshot`, `probe`, `coop`, `compare`, `vprompt`, declared: their options are the configs of
tlcli_clip.config, their work the job of each command's module."""

from tlcli.cli.command import Command
from tlcli_clip.config import CompareConfig, CoopConfig, ProbeConfig, VPromptConfig, ZeroshotConfig

ZEROSHOT_HELP = """Classify images by comparing them with label prompts (no training).

PATHS are image files, folders (recursive) or - (paths on stdin). With --eval, PATHS is one folder with a
subfolder per label, and accuracy is reported. With --json, one line per image, then the summary."""

PROBE_HELP = """Train a linear probe (logistic regression) on frozen CLIP image features.

DATA is a folder with one subfolder per class, or a CSV manifest (path,label). Features are cached: a second
run over the same images runs no image model at all. The head is saved to RUN_DIR/model/ for
`tlcli predict` and `tlcli evaluate`."""

COOP_HELP = """Learn soft prompts (CoOp), CLIP frozen; or with --lora, LoRA adapters in both towers (CLIP-LoRA).

Trained by the shared engine (events, `tlcli monitor`, checkpoints, --resume) on cached image features. Saves
only the prompt vectors (KBs) and the labels: use them with `tlcli zeroshot --prompt RUN_DIR`,
`tlcli predict RUN_DIR` or `tlcli evaluate RUN_DIR DATA`.

--lora RANK trains CLIP-LoRA instead (Zanella & Ben Ayed 2024): rank-RANK adapters on q, k, v of every
attention block of both towers, CLIP's zero-shot classifier ("a photo of a {}." through the adapted text
tower) kept as the classifier, cross-entropy on the shots; the images go through the image tower every step.
It saves model/adapter/ in PEFT's format; `tlcli merge RUN_DIR` folds it into the CLIP weights."""

COMPARE_HELP = """Zero-shot vs linear probe vs CoOp (and CLIP-LoRA) on one seeded split: accuracy, parameters, time.

Every method is scored on the same held-out images. With --json, one line per method and shot count, then
the summary."""

VPROMPT_HELP = """Learn a visual prompt: a padding of --pad learned pixels around every image, CLIP frozen.

After Bahng et al. 2022: CLIP's weights and the class text embeddings stay frozen. DATA is a folder with one
subfolder per class, or a CSV manifest (path,label). Trained by the shared engine (events, `tlcli monitor`,
checkpoints, --resume). Saves the prompt and the fixed class embeddings: use them with
`tlcli zeroshot --vprompt RUN_DIR`, `tlcli predict RUN_DIR` or `tlcli evaluate RUN_DIR DATA`."""

ZEROSHOT = Command(
    "zeroshot", ZeroshotConfig, "tlcli_clip.zeroshot:run_zeroshot", ZEROSHOT_HELP, kind="tool", plugin="clip",
    examples=("tlcli zeroshot photos/ --labels cat,dog",
              "find . -name '*.jpg' | tlcli zeroshot - --labels-file labels.txt --json --top-k 3",
              "tlcli zeroshot val/ --eval --templates single",
              "tlcli zeroshot photos/ --prompt runs/coop-20261123-101500"))

PROBE = Command(
    "probe", ProbeConfig, "tlcli_clip.probe:run_probe", PROBE_HELP, plugin="clip", resumable=False,
    examples=("tlcli probe photos/ --shots 16", "tlcli probe photos/ --init zeroshot --val-split 0.3 --json"))

COOP = Command(
    "coop", CoopConfig, "tlcli_clip.coop:run_coop", COOP_HELP, plugin="clip",
    examples=("tlcli coop photos/ --shots 16 --epochs 50", 'tlcli coop photos/ --init "a photo of a" --class-specific',
              "tlcli coop photos/ --shots 16 --lora 2 --epochs 20      # CLIP-LoRA",
              "tlcli coop --resume runs/coop-20261123-101500"))

COMPARE = Command(
    "compare", CompareConfig, "tlcli_clip.compare:run_compare", COMPARE_HELP, plugin="clip", resumable=False,
    examples=("tlcli compare photos/ --shots 1,4,16", "tlcli compare photos/ --shots 4 --coop-epochs 20 --json",
              "tlcli compare photos/ --shots 4,16 --lora 2      # adds a CLIP-LoRA row"))

VPROMPT = Command(
    "vprompt", VPromptConfig, "tlcli_clip.vprompt:run_vprompt", VPROMPT_HELP, plugin="clip",
    examples=("tlcli vprompt photos/ --pad 30 --epochs 20",
              "tlcli vprompt photos/ --shots 16 --model ViT-B-16 --pretrained laion2b_s34b_b88k",
              "tlcli vprompt --resume runs/vprompt-20261123-101500"))
