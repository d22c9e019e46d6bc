"""One soft-prompt run (data, task, engine, summary) and `tlcli prompt-tune predict`."""

from __future__ import annotations

import random
from pathlib import Path

from tlcli.data.labelled import training_classes
from tlcli.data.texts import read_labelled_texts
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.loop import fit
from tlcli.errors import Interrupted, UsageError
from tlcli.output import display_path, emit_json, info, print_table
from tlcli.run import Run
from tlcli_text.prompt_tune_config import PromptTuneConfig
from tlcli_text.prompt_tune_task import (
    Examples, PromptTuneTask, encode_for_classify, encode_for_generate, eos_id, input_budget, load_base,
    prompt_input_ids,
)

_TARGET_COLUMNS = ("target", "output", "completion", "answer", "label")


def _split(cfg: PromptTuneConfig):
    from tlcli.data.labelled import stratified_split

    columns = _TARGET_COLUMNS if cfg.mode == "generate" else ("label", "class", "category", "target")
    samples = read_labelled_texts(Path(cfg.data), label_columns=columns)
    if cfg.val:
        return samples, read_labelled_texts(Path(cfg.val), label_columns=columns)
    if cfg.val_split == 0:
        return samples, []
    if cfg.mode == "classify":
        return stratified_split(samples, cfg.val_split, cfg.seed)
    order = list(range(len(samples)))
    random.Random(cfg.seed).shuffle(order)
    held = set(order[: max(1, round(len(samples) * cfg.val_split))]) if len(samples) > 1 else set()
    return [s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held]


def build_examples(cfg: PromptTuneConfig, base, train, val):
    budget = input_budget(cfg.max_length, base, cfg.virtual_tokens)
    if cfg.mode == "classify":
        classes = training_classes(train, val, cfg.data, items="rows")
        index = {c: i for i, c in enumerate(classes)}

        def rows(samples):
            ids = encode_for_classify(base.tokenizer, [s.text for s in samples], budget)
            return [{"input_ids": i, "labels": index[s.label]} for i, s in zip(ids, samples)]
    else:
        classes = None

        def rows(samples):
            pairs = encode_for_generate(base.tokenizer, [(s.text, s.label) for s in samples], budget)
            return [{"input_ids": i, "labels": l} for i, l in pairs]
    return Examples(rows(train)), (Examples(rows(val)) if val else None), classes


def run_prompt_tune(cfg: PromptTuneConfig, run: Run | None, out: Path | None, overwrite: bool, json_output: bool,
                    quiet: bool) -> dict:
    """Train (``run`` None: a new run in ``out``; else the resumed ``run``), export, print the summary.

    Data is read and checked before a new run folder exists; a model that fails to load after that leaves no
    folder either (the Run removes a folder whose command failed before its first event)."""
    resume = run is not None
    try:
        train_samples, val_samples = _split(cfg)
        if len(train_samples) < 2:
            raise UsageError(f"{display_path(cfg.data)}: fewer than two training rows")
    except BaseException:
        if run is not None:
            run.close()  # a resumed run is left as it was
        raise
    if run is None:
        run = Run.create("prompt-tune", out, overwrite=overwrite, plugin="text", config=cfg.model_dump())
    with run:
        if not quiet:
            info(f"loading {cfg.model} ({cfg.mode})")
        base = load_base(cfg.mode, cfg.model)
        train, val, classes = build_examples(cfg, base, train_samples, val_samples)
        task = PromptTuneTask(cfg, base, train, val, classes, run=run)
        result = fit(task, cfg, run, callbacks=standard_callbacks(run, "prompt-tune", "text", quiet), resume=resume)
        summary = {
            "run_dir": str(run.path), "status": result.status, "mode": cfg.mode, "monitor": result.monitor,
            "best": result.best, "final_metrics": result.final_metrics, "steps": result.steps,
            "epochs": result.epochs_done, "wall_s": round(result.wall_s, 2),
            "samples_per_s": round(result.samples_per_s, 1), "trainable_params": result.trainable_params,
            "total_params": result.total_params, "device": result.device, "precision": result.precision,
            "classes": classes, "train_texts": len(train), "val_texts": len(val) if val else 0,
        }
        if cfg.mode == "classify":
            summary["best_val_accuracy"] = result.best
        run.finish(result.status, summary)
    if json_output:
        emit_json(summary)
    else:
        best = "-" if result.best is None else f"{result.best:.4f}"
        print_table(f"prompt-tune {result.status}", ["run", f"best {result.monitor}", "wall", "trainable / total"],
                    [[str(run.path), best, f"{result.wall_s:.1f}s",
                      f"{result.trainable_params:,} / {result.total_params:,}"]])
    if result.status == "interrupted":
        raise Interrupted(f"interrupted; checkpoint saved. Continue with: tlcli prompt-tune --resume {run.path}")
    return summary


# --- predict -----------------------------------------------------------------------------------------------

def run_prompt_tune_predict(run_dir, texts, top_k, max_new_tokens, device, json_output) -> None:
    """Classify-mode runs print class lines (the same as `tlcli predict`); generate-mode runs print text."""
    from tlcli_text.predictors import SoftPromptModel, SoftPromptPredictor

    loaded = SoftPromptModel(Path(run_dir), device)
    if loaded.mode == "classify":
        from tlcli.cli.predict_texts import emit_text_predictions

        predictor = SoftPromptPredictor(loaded)
        emit_text_predictions(texts, predictor.labels, predictor.predict_texts(texts), top_k, json_output,
                              score_name="prob")
        return
    base, module = loaded.base, loaded.module
    budget = input_budget(loaded.cfg.max_length, base, loaded.cfg.virtual_tokens)
    eos = eos_id(base.tokenizer)
    rows = []
    for text in texts:
        new = module.generate(prompt_input_ids(base.tokenizer, text, budget), max_new_tokens, eos)
        output = base.tokenizer.decode(new, skip_special_tokens=True).strip()
        if json_output:
            emit_json({"text": text, "output": output, "tokens": len(new)})
        else:
            rows.append([text, output])
    if not json_output:
        print_table(None, ["input", "output"], rows)
