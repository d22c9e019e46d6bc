"""`tlcli sft`, `tlcli dpo` and `tlcli generate`, declared: options in tlcli_tune.config, work in
tlcli_tune.job."""

from tlcli.cli.command import Command
from tlcli_tune.config import DPOConfig, GenerateConfig, SFTConfig

SFT_HELP = """Supervised fine-tuning of a causal language model on chats: the loss on the assistant's tokens only.

DATA is JSON Lines: chat {"messages": [{"role", "content"}, ...]}, {"prompt", "completion"} or Alpaca
{"instruction", "input", "output"}. Chats are written with the model's chat template, or with tlcli's plain
one (`role: content` lines, each reply ending with the end-of-text token) for a model without one; the
template is saved with the model, so it is prompted as it was trained. --packing puts short examples
together into rows of --max-seq-len tokens, each still attending only to itself. The validation split
reports the loss per reply token and its perplexity.

model/ is a full transformers folder, or with --lora a PEFT adapter (--export full merges it): try it with
`tlcli generate RUN "..."`, or --llm hf:RUN in prompt run, rag ask and agents solve."""

DPO_HELP = """Preference tuning of a causal language model on chosen/rejected pairs: DPO, IPO or SimPO.

PAIRS is JSON Lines of {"prompt", "chosen", "rejected"}: strings (a user turn and two replies) or lists of
chat messages. The reference model's log-probabilities are computed once, before training, and cached by
content (the reference's files and the pairs' tokens); with --lora the reference is the model with its
adapters switched off, with no second copy in memory. Each metric event reports the reward accuracy, the
reward margin and the chosen and rejected log-probabilities; the validation split the same.

--loss dpo: -log sigmoid(beta (chosen - rejected log-ratio)), as TRL's "sigmoid"; ipo: TRL's length-normalised
IPO; simpo: no reference, average log-probabilities and the margin --simpo-gamma."""

GENERATE_HELP = """One reply of a tuned model (or any hf: model), streamed on a terminal.

MODEL is a run folder of `tlcli sft`/`tlcli dpo` (a full model or a LoRA adapter), a model folder or
hf:MODEL_ID. The prompt is written with the model's chat template (--raw: as it is). With --json, one record
{"model", "prompt", "text", "usage"}, then the summary."""

SFT = Command("sft", SFTConfig, "tlcli_tune.job:run_sft", SFT_HELP, plugin="tune",
              examples=("tlcli sft chats.jsonl --model hf:Qwen/Qwen2.5-0.5B-Instruct --lora 16 --epochs 2",
                        "tlcli sft alpaca.jsonl --model ./my-gpt2 --packing --max-seq-len 512",
                        "tlcli sft --resume runs/sft-20261207-101500"))
DPO = Command("dpo", DPOConfig, "tlcli_tune.job:run_dpo", DPO_HELP, plugin="tune",
              examples=("tlcli dpo pairs.jsonl --model runs/sft-20261207-101500 --beta 0.1",
                        "tlcli dpo pairs.jsonl --model hf:Qwen/Qwen2.5-0.5B-Instruct --lora 8 --loss ipo",
                        "tlcli dpo pairs.jsonl --model ./my-model --loss simpo --lr 1e-6"))
GENERATE = Command("generate", GenerateConfig, "tlcli_tune.job:generate", GENERATE_HELP, kind="tool", plugin="tune",
                   examples=("tlcli generate runs/sft-20261207-101500 \"What is 12 + 34?\"",
                             "echo 'Summarise: ...' | tlcli generate hf:./my-model - --temperature 0.7 --seed 1"))
