"""`tlcli text ...` and `tlcli prompt-tune ...`, declared: options in tlcli_text.config, work in
tlcli_text.job (text) and tlcli_text.prompt_tune_job (soft prompts)."""

from tlcli.cli.command import Command
from tlcli_text.config import (
    ProbeConfig, PromptTuneConfig, PromptTunePredictConfig, TextCompareConfig, TextEvaluateConfig, TextFinetuneConfig,
    TextPredictConfig, ZeroshotConfig,
)

ZEROSHOT_HELP = """Classify texts by similarity to label descriptions.

Each label becomes a sentence (--label-template) and each text gets the label whose sentence is nearest
(cosine similarity of all-MiniLM-L6-v2 embeddings, offline). Scores are cosine similarities, not
probabilities."""

PROBE_HELP = """Logistic regression on frozen sentence embeddings of DATA (CSV text,label).

The weight decay is chosen on validation data (--val, or --val-split of DATA) from --weight-decay's
candidates; the exported head is then fitted on every labelled row. The run folder works with `tlcli
predict` and `tlcli evaluate`."""

FINETUNE_HELP = """Fine-tune the sentence encoder + a linear head on DATA (CSV text,label), in full or with --lora.

The encoder (all-MiniLM-L6-v2 by default, offline) is pooled and L2-normalised as its sentence-transformers
folder says, then a linear head classifies. Full fine-tuning trains every encoder weight at --lr x
--encoder-lr-factor (0.05: the head at 1e-3, the encoder at 5e-5); --lora RANK freezes the encoder and trains
LoRA adapters in its attention and feed-forward linears and the head, both at --lr (factor 1).
The run's model/ holds the head and labels beside encoder/ (a plain Hugging Face folder) or adapter/
(PEFT's format: PeftModel.from_pretrained(AutoModel.from_pretrained(BASE), RUN/model/adapter)). It works
with `tlcli predict` and `tlcli evaluate`; --seeds 1,2,3 trains once per seed into RUN_DIR/seed-N."""

COMPARE_HELP = """The adaptation ladder on DATA: zero-shot, probe, soft prompt, LoRA, full fine-tuning.

Every row is scored on the same held-out texts (--val, or --val-split of DATA seeded by --seed); each seed
of --seeds draws its own --shots texts per class from the rest and initialises its own head, prompt and
adapters. Rows: zero-shot (class names as sentences), logistic probe on frozen embeddings, soft prompt
(20 virtual tokens + head), LoRA at each of --ranks, full fine-tuning. Reported per row and shot count:
accuracy mean ± std over seeds, trainable parameters, wall time and peak memory (the process's resident
memory above what it held before the row, on a CPU; allocated GPU memory on CUDA)."""

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

FINETUNE = Command(
    "finetune", TextFinetuneConfig, "tlcli_text.finetune:finetune", FINETUNE_HELP, plugin="text", group="text",
    run_name="text-finetune",
    examples=("tlcli text finetune data.csv --epochs 10 --out runs/text-ft",
              "tlcli text finetune data.csv --lora 8 --out runs/text-lora",
              'tlcli predict runs/text-lora "The striker scored twice" --json',
              "tlcli text finetune data.csv --lora 8 --seeds 1,2,3",
              "tlcli text finetune --resume runs/text-lora"))

COMPARE = Command(
    "compare", TextCompareConfig, "tlcli_text.compare:run_compare", COMPARE_HELP, plugin="text", group="text",
    run_name="text-compare", resumable=False,
    examples=("tlcli text compare data.csv --shots 10,32 --seeds 0,1,2",
              "tlcli text compare train.csv --val test.csv --ranks 8 --methods probe,lora,full --json"))

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
