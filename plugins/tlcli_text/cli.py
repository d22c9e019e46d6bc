"""`tlcli text ...` and `tlcli prompt-tune ...`, declared: options in tlcli_text.config, work in
tlcli_text.job (text) and tlcli_text.prompt_tune_job (soft prompts)."""

from tlcli.cli.command import Command
from tlcli_text.config import (
    ProbeConfig, PromptTuneConfig, PromptTunePredictConfig, TextEvaluateConfig, TextPredictConfig, ZeroshotConfig,
)

ZEROSHOT_HELP = """Classify texts by similarity to label descriptions.

Each label becomes a sentence (--label-template) and each text gets the label whose sentence is nearest
(cosine similarity of all-MiniLM-L6-v2 embeddings, offline). Scores are cosine similarities, not
probabilities."""

PROBE_HELP = """Logistic regression on frozen sentence embeddings of DATA (CSV text,label).

The weight decay is chosen on validation data (--val, or --val-split of DATA) from --weight-decay's
candidates; the exported head is then fitted on every labelled row. The run folder works with `tlcli
predict` and `tlcli evaluate`."""

PREDICT_HELP = "Classify texts with a text run (the same as `tlcli predict RUN TEXTS`)."
EVALUATE_HELP = """Score a text run on labelled data (the same as `tlcli evaluate RUN DATA`).

Accuracy, top-5 accuracy, mean recall and per-class precision/recall/support; --confusion draws the
confusion matrix."""

PROMPT_TUNE_HELP = """Train a soft prompt (the default: `tlcli prompt-tune DATA` is the same).

Soft-prompt tuning (Lester et al. 2021) learns --virtual-tokens embeddings in front of a frozen model.
--mode classify (default): a frozen sentence encoder + soft prompt + linear head; DATA is CSV text,label.
--mode generate: a frozen causal LM (--model DIR); DATA is CSV/JSONL input,target; loss on target tokens
only. --lr is the prompt's learning rate, --head-lr the head's; --weight-decay applies to the head."""

PROMPT_TUNE_PREDICT_HELP = """Run a soft-prompt run on texts: class labels or generated text.

A classify run prints one classifier line per text (as `tlcli predict`); a generate run prints
{"text", "output", "tokens"} per text."""

ZEROSHOT = Command(
    "zeroshot", ZeroshotConfig, "tlcli_text.job:zeroshot", ZEROSHOT_HELP, kind="tool", plugin="text",
    group="text",
    examples=('tlcli text zeroshot "The striker scored twice" --labels sports,cooking,weather',
              "cat lines.txt | tlcli text zeroshot - --labels sports,cooking --json"))

PROBE = Command(
    "probe", ProbeConfig, "tlcli_text.job:probe", PROBE_HELP, plugin="text", group="text", run_name="text-probe",
    resumable=False,
    examples=("tlcli text probe data.csv --out runs/probe",
              'tlcli predict runs/probe "Preheat the oven to 200 degrees" --json'))

PREDICT = Command(
    "predict", TextPredictConfig, "tlcli_text.job:predict", PREDICT_HELP, kind="tool", plugin="text",
    group="text", examples=('tlcli text predict runs/probe "Whisk the eggs" --json',))

EVALUATE = Command(
    "evaluate", TextEvaluateConfig, "tlcli_text.job:evaluate", EVALUATE_HELP, kind="tool", plugin="text",
    group="text", examples=("tlcli text evaluate runs/probe test.csv --confusion confusion.svg",))

PROMPT_TUNE = Command(
    "train", PromptTuneConfig, "tlcli_text.prompt_tune_job:train", PROMPT_TUNE_HELP, plugin="text",
    group="prompt-tune", run_name="prompt-tune",
    examples=('tlcli prompt-tune data.csv --virtual-tokens 20 --init-text "Classify the topic:" --epochs 20',
              "tlcli prompt-tune pairs.jsonl --mode generate --model ./my-gpt2 --epochs 5",
              "tlcli prompt-tune --resume runs/prompt-tune-20261123-101500",
              "tlcli evaluate runs/prompt-tune-20261123-101500 test.csv"))

PROMPT_TUNE_PREDICT = Command(
    "predict", PromptTunePredictConfig, "tlcli_text.prompt_tune_job:predict", PROMPT_TUNE_PREDICT_HELP,
    kind="tool", plugin="text", group="prompt-tune",
    examples=('tlcli prompt-tune predict runs/prompt-tune-20261123-101500 "Whisk the eggs" --json',))
