"""`tlcli prompt list | show | run | eval`, declared: options in tlcli_prompting.config, work in
tlcli_prompting.job."""

from tlcli.cli.command import Command
from tlcli_prompting.config import EvalConfig, ListConfig, RunConfig, ShowConfig

LIST_HELP = "List the prompt templates: built-in ones and those saved in $TLCLI_HOME/prompt-templates/."
SHOW_HELP = "Render the prompts without a model (for pipelines and for checking a template)."
RUN_HELP = """Answer each question with a template on an LLM; streams one line per question.

Each line is the question's id, its answer (the majority vote of --n samples) and the votes; with --json
a record {"id", "prompt", "completions", "answers", "answer", "votes", "tokens"} per question."""
EVAL_HELP = """Score templates against gold answers: accuracy, with non-answers counted apart.

With --json, one line per template {"template", "n", "questions", "correct", "wrong", "no_answer",
"accuracy", ...}, then the summary."""

LIST = Command("list", ListConfig, "tlcli_prompting.job:list_templates", LIST_HELP, kind="tool",
               plugin="prompting", group="prompt", examples=("tlcli prompt list --json",))
SHOW = Command("show", ShowConfig, "tlcli_prompting.job:show", SHOW_HELP, kind="tool", plugin="prompting",
               group="prompt",
               examples=("tlcli prompt show few-shot-cot --input questions.jsonl --exemplars worked.jsonl",))
RUN = Command("run", RunConfig, "tlcli_prompting.job:run_prompts", RUN_HELP, kind="tool", plugin="prompting",
              group="prompt",
              examples=("tlcli prompt run self-consistency --input questions.jsonl --llm hf:./my-model --n 5 "
                        "--seed 0 --json",))
EVAL = Command("eval", EvalConfig, "tlcli_prompting.job:evaluate", EVAL_HELP, kind="tool", plugin="prompting",
               group="prompt",
               examples=("tlcli prompt eval direct zero-shot-cot self-consistency --input gsm8k-50.jsonl "
                         "--llm hf:./my-model",))
