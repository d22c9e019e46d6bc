"""The options of `tlcli prompt list | show | run | eval`: the one declaration of their flags (see
tlcli/fields.py); the language model and its sampling come from the shared LLMOptions."""

from __future__ import annotations

from pydantic import field_validator

from tlcli.fields import PANEL_LLM, CommaList, LLMOptions, Options, Seeded, option

INPUT_HELP = "Questions as JSONL ({\"id\", \"question\", \"choices\"?, \"answer\"?} per line); - reads stdin."
TEMPLATE_HELP = "A built-in or saved template name (see 'tlcli prompt list') or a .jinja file."
MISSING_INPUT = "pass --input questions.jsonl (or - for stdin)"


class ListConfig(Options):
    """`tlcli prompt list` takes no options of its own."""


class Exemplars(Options):
    exemplars: str | None = option(None, "Worked examples JSONL {question, rationale, answer} for few-shot CoT.")


class ShowConfig(Exemplars):
    template: str = option(..., TEMPLATE_HELP, argument=True, metavar="TEMPLATE", missing="name a template "
                           "(see `tlcli prompt list`) or a .jinja file")
    input: str = option(..., INPUT_HELP, short="-i", missing=MISSING_INPUT)


class Sampling(LLMOptions, Seeded, Exemplars):
    """What `prompt run` and `prompt eval` share: the model, its sampling, and how answers are read."""

    n: int | None = option(None, "Samples per question (default: the template's; self-consistency 5). All n "
                           "come from one batched call.", ge=1, panel=PANEL_LLM)
    top_p: float | None = option(None, "Nucleus sampling mass.", gt=0.0, le=1.0, panel=PANEL_LLM)
    stop: CommaList | None = option(None, "Stop strings, comma-separated; replace the template's.",
                                    panel=PANEL_LLM)
    answer_regex: str | None = option(None, "Regex for the answer; its group (or the match) of the last match "
                                      "wins.")
    batch_size: int = option(8, "Questions per generate call (raw prompts) or per parallel group of chat "
                             "calls.", short="-b", ge=1)

    @field_validator("answer_regex")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            from tlcli.prompts.answers import compile_answer_regex

            compile_answer_regex(pattern)  # a UsageError (one line) when it does not compile
        return pattern


class RunConfig(Sampling):
    template: str = option(..., TEMPLATE_HELP, argument=True, metavar="TEMPLATE", missing="name a template "
                           "(see `tlcli prompt list`) or a .jinja file")
    input: str = option(..., INPUT_HELP, short="-i", missing=MISSING_INPUT)


class EvalConfig(Sampling):
    templates: list[str] = option(..., "One or more templates to compare (" + TEMPLATE_HELP + ")", argument=True,
                                  metavar="TEMPLATES", missing="name one or more templates (see `tlcli prompt "
                                  "list`)")
    input: str = option(..., INPUT_HELP + " Every line needs 'answer'.", short="-i", missing=MISSING_INPUT)
    predictions: str | None = option(None, "Also write every question's record, with gold and correct, to this "
                                     "JSONL file.")
