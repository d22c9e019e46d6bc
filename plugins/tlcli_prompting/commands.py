"""`tlcli prompt list | show | run | eval`. Only typer and the standard library at top level: this module
is imported on every `tlcli` start; the work is imported inside each command."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tlcli.cli import options

prompt_app = typer.Typer(
    name="prompt",
    help="Chain-of-thought prompting: templates, self-consistency voting, accuracy against gold answers.\n\n"
    "Example: tlcli prompt run self-consistency --input questions.jsonl --llm hf:./my-model --n 5 --json",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(prompt_app, name="prompt")


INPUT_HELP = "Questions as JSONL ({\"id\", \"question\", \"choices\"?, \"answer\"?} per line); - reads stdin."
TEMPLATE_HELP = "A built-in or saved template name (see 'tlcli prompt list') or a .jinja file."


@prompt_app.command("list")
def list_templates(json_output: bool = options.json_()) -> None:
    """List the prompt templates: built-in ones and those saved in $TLCLI_HOME/prompt-templates/.

    Example: tlcli prompt list --json
    """
    from tlcli.output import emit_json, print_table
    from tlcli.prompts.templates import available, load_template

    rows = []
    for name, _ in available():
        template = load_template(name)
        meta = template.meta
        rows.append({"name": name, "description": meta.description, "variables": meta.variables,
                     "optional": meta.optional, "exemplars": meta.exemplars, "n": meta.n,
                     "temperature": meta.temperature, "max_tokens": meta.max_tokens,
                     "path": str(template.path)})
    if json_output:
        for row in rows:
            emit_json(row)
        return
    print_table("prompt templates", ["name", "n", "temperature", "exemplars", "description"],
                [[r["name"], r["n"], r["temperature"], r["exemplars"], r["description"]] for r in rows])


def _template(template_ref: str, exemplars_path: Optional[Path], strict: bool = True):
    """The template and its exemplars. With strict=False (eval comparing several templates) exemplars are
    silently not given to a template that takes none."""
    from tlcli.errors import UsageError
    from tlcli_prompting.questions import read_exemplars
    from tlcli.prompts.templates import load_template

    template = load_template(template_ref)
    exemplars = read_exemplars(str(exemplars_path)) if exemplars_path else None
    if template.meta.exemplars == "required" and not exemplars:
        raise UsageError(f"template {template.name!r} needs worked examples: pass --exemplars FILE.jsonl with "
                         "{\"question\", \"rationale\", \"answer\"} per line")
    if template.meta.exemplars == "none" and exemplars:
        if strict:
            raise UsageError(f"template {template.name!r} takes no exemplars; drop --exemplars or use "
                             "few-shot-cot / self-consistency")
        exemplars = None
    return template, exemplars


def _load(template_ref: str, input_path: str, exemplars_path: Optional[Path]):
    from tlcli_prompting.questions import read_questions

    template, exemplars = _template(template_ref, exemplars_path)
    return template, read_questions(input_path), exemplars


@prompt_app.command("show")
def show(
    template: str = typer.Argument(..., help=TEMPLATE_HELP),
    input_path: str = typer.Option(..., "--input", "-i", help=INPUT_HELP),
    exemplars: Optional[Path] = typer.Option(None, "--exemplars", help="Worked examples JSONL for few-shot CoT."),
    json_output: bool = options.json_(),
) -> None:
    """Render the prompts without a model (for pipelines and for checking a template).

    Example: tlcli prompt show few-shot-cot --input questions.jsonl --exemplars worked.jsonl
    """
    from tlcli.output import emit_json, terminal_safe
    from tlcli_prompting.runner import render_all

    chosen, questions, worked = _load(template, input_path, exemplars)
    for question, prompt in zip(questions, render_all(chosen, questions, worked)):
        if json_output:
            emit_json({"id": question["id"], "prompt": prompt})
        else:
            # Line by line: the prompt keeps its lines, while escapes in a question cannot reach the terminal.
            shown = "\n".join(terminal_safe(line) for line in prompt.split("\n"))
            print(f"### {terminal_safe(question['id'])}\n{shown}\n", flush=True)


def _sampling_options():
    """The options run and eval share (declared once so their help reads the same)."""
    return dict(
        llm=options.llm(),
        n=typer.Option(None, "--n", min=1, help="Samples per question (default: the template's; "
                       "self-consistency 5). All n come from one batched call."),
        temperature=options.temperature(),
        top_p=options.finite_option(None, "--top-p", low=0.0, high=1.0, low_open=True, help="Nucleus sampling mass."),
        max_tokens=options.max_tokens(),
        seed=options.seed(),
        stop=typer.Option(None, "--stop", help="Stop string (repeatable); replaces the template's."),
        exemplars=typer.Option(None, "--exemplars", help="Worked examples JSONL {question, rationale, answer}."),
        answer_regex=typer.Option(None, "--answer-regex", help="Regex for the answer; its group (or the match) "
                                  "of the last match wins."),
        batch_size=options.batch_size(8, help="Questions per generate call (raw prompts) or per parallel "
                                      "group of chat calls."),
    )


_S = _sampling_options()


def _settings(template, n, temperature, top_p, max_tokens, stop, seed, batch_size, answer_regex):
    from tlcli.prompts.answers import compile_answer_regex
    from tlcli_prompting.runner import settings_for

    return settings_for(template, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                        stop=stop, seed=seed, batch_size=batch_size,
                        answer_regex=compile_answer_regex(answer_regex))


@prompt_app.command("run")
def run(
    template: str = typer.Argument(..., help=TEMPLATE_HELP),
    input_path: str = typer.Option(..., "--input", "-i", help=INPUT_HELP),
    llm: Optional[str] = _S["llm"],
    n: Optional[int] = _S["n"],
    temperature: Optional[float] = _S["temperature"],
    top_p: Optional[float] = _S["top_p"],
    max_tokens: Optional[int] = _S["max_tokens"],
    seed: int = _S["seed"],
    stop: Optional[List[str]] = _S["stop"],
    exemplars: Optional[Path] = _S["exemplars"],
    answer_regex: Optional[str] = _S["answer_regex"],
    batch_size: int = _S["batch_size"],
    json_output: bool = options.json_(),
) -> None:
    """Answer each question with a template on an LLM; streams one line per question.

    Example: tlcli prompt run self-consistency --input questions.jsonl --llm hf:./my-model --n 5 --seed 0 --json
    """
    from tlcli.llm import resolve_llm
    from tlcli.output import emit_json, info, terminal_safe
    from tlcli_prompting.runner import run_questions

    chosen, questions, worked = _load(template, input_path, exemplars)
    settings = _settings(chosen, n, temperature, top_p, max_tokens, stop, seed, batch_size, answer_regex)
    with resolve_llm(llm) as backend:
        info(f"{chosen.name}: {len(questions)} questions on {backend.spec}, n={settings.sampling.n}, "
             f"temperature={settings.sampling.temperature}")
        for record in run_questions(backend, chosen, questions, worked, settings):
            if json_output:
                emit_json(record)
            else:
                votes = ", ".join(f"{a}:{c}" for a, c in record["votes"].items()) or "-"
                answer = record["answer"] if record["answer"] is not None else "-"
                print("\t".join(terminal_safe(v) for v in (record["id"], answer, votes)), flush=True)


@prompt_app.command("eval")
def evaluate(
    templates: List[str] = typer.Argument(..., help="One or more templates to compare (" + TEMPLATE_HELP + ")"),
    input_path: str = typer.Option(..., "--input", "-i", help=INPUT_HELP + " Every line needs 'answer'."),
    llm: Optional[str] = _S["llm"],
    n: Optional[int] = _S["n"],
    temperature: Optional[float] = _S["temperature"],
    top_p: Optional[float] = _S["top_p"],
    max_tokens: Optional[int] = _S["max_tokens"],
    seed: int = _S["seed"],
    stop: Optional[List[str]] = _S["stop"],
    exemplars: Optional[Path] = _S["exemplars"],
    answer_regex: Optional[str] = _S["answer_regex"],
    batch_size: int = _S["batch_size"],
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="Also write every question's "
                                               "record, with gold and correct, to this JSONL file."),
    json_output: bool = options.json_(),
) -> None:
    """Score templates against gold answers: accuracy, with non-answers counted apart.

    Example: tlcli prompt eval direct zero-shot-cot self-consistency --input gsm8k-50.jsonl --llm hf:./my-model
    """
    from tlcli.llm import resolve_llm
    from tlcli.output import emit_json, info, print_table, to_json
    from tlcli_prompting.runner import run_questions
    from tlcli_prompting.scoring import Score, gold_of

    # Load and check everything before the model: a bad template or gold line fails in a second.
    from tlcli_prompting.questions import read_questions

    loaded = [_template(t, exemplars, strict=len(templates) == 1) for t in templates]
    questions = read_questions(input_path)  # once: stdin can be read only once
    golds = {q["id"]: gold_of(q, input_path) for q in questions}
    plans = [(tpl, worked, _settings(tpl, n, temperature, top_p, max_tokens, stop, seed, batch_size, answer_regex))
             for tpl, worked in loaded]
    summaries = []
    sink = open(predictions, "w", encoding="utf-8") if predictions else None
    try:
        with resolve_llm(llm) as backend:
            for tpl, worked, settings in plans:
                info(f"{tpl.name}: {len(questions)} questions on {backend.spec}, n={settings.sampling.n}")
                score = Score(tpl.name)
                for record in run_questions(backend, tpl, questions, worked, settings):
                    correct = score.add(record, golds[record["id"]])
                    if sink:
                        sink.write(to_json({**record, "template": tpl.name, "gold": golds[record["id"]],
                                            "correct": correct}) + "\n")
                summaries.append(score.summary(settings.sampling.n))
    finally:
        if sink:
            sink.close()
    if json_output:
        for summary in summaries:
            emit_json(summary)
        return
    print_table("prompt eval", ["template", "n", "questions", "correct", "wrong", "no_answer", "accuracy"],
                [[s["template"], s["n"], s["questions"], s["correct"], s["wrong"], s["no_answer"],
                  f"{s['accuracy']:.3f}"] for s in summaries])

