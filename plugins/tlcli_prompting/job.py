"""The `tlcli prompt` jobs. Questions, prompts and model replies are data: a record each with --json; for
people they go through the Report, which escapes terminal controls on a terminal."""

from __future__ import annotations

from pathlib import Path

from tlcli import llm
from tlcli.console.errors import UsageError
from tlcli.console.output import to_json
from tlcli.prompts.answers import compile_answer_regex
from tlcli.prompts.templates import Template, available, load_template
from tlcli_prompting.config import EvalConfig, ListConfig, RunConfig, Sampling, ShowConfig
from tlcli_prompting.questions import read_exemplars, read_questions
from tlcli_prompting.runner import RunSettings, render_all, run_questions, settings_for
from tlcli_prompting.scoring import Score, gold_of


def list_templates(cfg: ListConfig, run, report) -> dict:
    """`tlcli prompt list`: one record per template, built-in then saved."""
    rows = []
    for name, _ in available():
        template = load_template(name)
        meta = template.meta
        row = {"name": name, "description": meta.description, "variables": meta.variables,
               "optional": meta.optional, "exemplars": meta.exemplars, "n": meta.n,
               "temperature": meta.temperature, "max_tokens": meta.max_tokens, "path": str(template.path)}
        report.record(row)
        rows.append(row)
    report.table("prompt templates", ["name", "n", "temperature", "exemplars", "description"],
                 [[r["name"], r["n"], r["temperature"], r["exemplars"], r["description"]] for r in rows])
    return {"status": "finished", "templates": len(rows)}


def _template(template_ref: str, exemplars_path: str | None, strict: bool = True):
    """The template and its exemplars. With strict=False (eval comparing several templates) exemplars are
    silently not given to a template that takes none."""
    template = load_template(template_ref)
    exemplars = read_exemplars(exemplars_path) if exemplars_path else None
    if template.meta.exemplars == "required" and not exemplars:
        raise UsageError(f"template {template.name!r} needs worked examples: pass --exemplars FILE.jsonl with "
                         "{\"question\", \"rationale\", \"answer\"} per line")
    if template.meta.exemplars == "none" and exemplars:
        if strict:
            raise UsageError(f"template {template.name!r} takes no exemplars; drop --exemplars or use "
                             "few-shot-cot / self-consistency")
        exemplars = None
    return template, exemplars


def _settings(template: Template, cfg: Sampling) -> RunSettings:
    return settings_for(template, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
                        stop=cfg.stop, seed=cfg.seed, batch_size=cfg.batch_size,
                        answer_regex=compile_answer_regex(cfg.answer_regex))


def show(cfg: ShowConfig, run, report) -> dict:
    """`tlcli prompt show`: every question's rendered prompt, no model."""
    template, exemplars = _template(cfg.template, cfg.exemplars)
    questions = read_questions(cfg.input)
    for question, prompt in zip(questions, render_all(template, questions, exemplars)):
        report.record({"id": question["id"], "prompt": prompt})
        report.text(f"### {question['id']}\n{prompt}\n\n")
    return {"status": "finished", "template": template.name, "questions": len(questions)}


def run_prompts(cfg: RunConfig, run, report) -> dict:
    """`tlcli prompt run`: one record per question as its chunk is answered."""
    template, exemplars = _template(cfg.template, cfg.exemplars)
    questions = read_questions(cfg.input)
    settings = _settings(template, cfg)
    answered = prompt_tokens = completion_tokens = 0
    with llm.resolve_llm(cfg.llm) as backend:
        report.info(f"{template.name}: {len(questions)} questions on {backend.spec}, n={settings.sampling.n}, "
                    f"temperature={settings.sampling.temperature}")
        for record in run_questions(backend, template, questions, exemplars, settings):
            report.record(record)
            votes = ", ".join(f"{a}:{c}" for a, c in record["votes"].items()) or "-"
            answer = record["answer"] if record["answer"] is not None else "-"
            report.text("\t".join(str(v) for v in (record["id"], answer, votes)))
            answered += record["answer"] is not None
            prompt_tokens += record["tokens"]["prompt"]
            completion_tokens += record["tokens"]["completion"]
    return {"status": "finished", "template": template.name, "n": settings.sampling.n, "questions": len(questions),
            "answered": answered, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}


def evaluate(cfg: EvalConfig, run, report) -> dict:
    """`tlcli prompt eval`: one record per template (accuracy, non-answers apart), then the summary naming
    the best template."""
    # Load and check everything before the model: a bad template or gold line fails in a second.
    loaded = [_template(t, cfg.exemplars, strict=len(cfg.templates) == 1) for t in cfg.templates]
    questions = read_questions(cfg.input)  # once: stdin can be read only once
    golds = {q["id"]: gold_of(q, cfg.input) for q in questions}
    plans = [(template, exemplars, _settings(template, cfg)) for template, exemplars in loaded]
    scores = []
    sink = open(cfg.predictions, "w", encoding="utf-8") if cfg.predictions else None
    try:
        with llm.resolve_llm(cfg.llm) as backend:
            for template, exemplars, settings in plans:
                report.info(f"{template.name}: {len(questions)} questions on {backend.spec}, "
                            f"n={settings.sampling.n}")
                score = Score(template.name)
                for record in run_questions(backend, template, questions, exemplars, settings):
                    correct = score.add(record, golds[record["id"]])
                    if sink:
                        sink.write(to_json({**record, "template": template.name, "gold": golds[record["id"]],
                                            "correct": correct}) + "\n")
                scores.append(score.summary(settings.sampling.n))
                report.record(scores[-1])
    finally:
        if sink:
            sink.close()
    report.table("prompt eval", ["template", "n", "questions", "correct", "wrong", "no_answer", "accuracy"],
                 [[s["template"], s["n"], s["questions"], s["correct"], s["wrong"], s["no_answer"],
                   f"{s['accuracy']:.3f}"] for s in scores])
    best = max(scores, key=lambda s: s["accuracy"])  # the first of equals: the order they were given
    summary = {"status": "finished", "best": {"metric": "accuracy", "value": best["accuracy"], "step": None},
               "metrics": {"accuracy": best["accuracy"]}, "best_template": best["template"],
               "questions": len(questions), "accuracy_by_template": {s["template"]: s["accuracy"] for s in scores}}
    if cfg.predictions:
        summary["predictions"] = str(Path(cfg.predictions))
    return summary
