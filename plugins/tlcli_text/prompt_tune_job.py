"""The `tlcli prompt-tune` jobs: one soft-prompt run (data, task, engine, summary), and predict with one."""

from __future__ import annotations

import random
from pathlib import Path

from tlcli.data.labelled import stratified_split, training_classes
from tlcli.data.tables import columns_of, default_validation
from tlcli.data.texts import read_labelled_texts
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.loop import fit
from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
from tlcli_text.config import PromptTuneConfig, PromptTunePredictConfig
from tlcli.cli.predict_texts import emit_text_predictions, probabilities
from tlcli_text.job import texts_of
from tlcli_text.predictors import SoftPromptModel, SoftPromptPredictor
from tlcli_text.task import (
    Examples, PromptTuneTask, encode_for_classify, encode_for_generate, eos_id, input_budget, load_base,
    prompt_input_ids,
)

_TARGET_COLUMNS = ("target", "output", "completion", "answer", "label")


def _split(cfg: PromptTuneConfig):
    columns = _TARGET_COLUMNS if cfg.mode == "generate" else ("label", "class", "category", "target")
    named = columns_of(cfg)
    samples = read_labelled_texts(Path(cfg.data), label_columns=columns, columns=named)
    val = cfg.val or (default_validation(cfg.data) if cfg.val_split > 0 else None)
    if val:
        return samples, read_labelled_texts(Path(val), label_columns=columns, columns=named)
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


def train(cfg: PromptTuneConfig, run, report) -> dict:
    """`tlcli prompt-tune [train]`: the soft prompt (and head) trained by the engine, exported to model/.

    Data and model are read and checked before the run's first event: a failure there removes a new run's
    folder (a resumed run is left as it was)."""
    train_samples, val_samples = _split(cfg)
    if len(train_samples) < 2:
        raise UsageError(f"{display_path(cfg.data)}: fewer than two training rows")
    report.info(f"loading {cfg.model} ({cfg.mode})")
    base = load_base(cfg.mode, cfg.model)
    train_set, val_set, classes = build_examples(cfg, base, train_samples, val_samples)
    task = PromptTuneTask(cfg, base, train_set, val_set, classes, run=run)
    result = fit(task, cfg, run, callbacks=standard_callbacks(run, "prompt-tune", "text", report.progress_quiet),
                 resume=run.resumed)
    best = "-" if result.best is None else f"{result.best:.4f}"
    report.table(f"prompt-tune {result.status}: {display_path(run.path)}",
                 [f"best {result.monitor}", "steps", "wall", "trainable / total"],
                 [[best, result.steps, f"{result.wall_s:.1f}s",
                   f"{result.trainable_params:,} / {result.total_params:,}"]])
    return {**result.summary(), "mode": cfg.mode, "model": cfg.model, "trainable_params": result.trainable_params,
            "total_params": result.total_params, "classes": classes, "train_texts": len(train_set),
            "val_texts": len(val_set) if val_set else 0}


def predict(cfg: PromptTunePredictConfig, run, report) -> dict:
    """`tlcli prompt-tune predict`: classify-mode runs give classifier records (as `tlcli predict`);
    generate-mode runs give ``{"text", "output", "tokens"}`` per text (the output shown escaped on a terminal)."""
    loaded = SoftPromptModel(Path(cfg.run_dir), cfg.device)
    texts = texts_of(cfg)
    if loaded.mode == "classify":
        predictor = SoftPromptPredictor(loaded)
        emit_text_predictions(texts, predictor.labels, probabilities(predictor, texts), cfg.top_k, report,
                              score_name="prob")
        return {"status": "finished", "mode": "classify", "texts": len(texts)}
    base, module = loaded.base, loaded.module
    budget = input_budget(loaded.cfg.max_length, base, loaded.cfg.virtual_tokens)
    eos = eos_id(base.tokenizer)
    rows, tokens = [], 0
    for text in texts:
        new = module.generate(prompt_input_ids(base.tokenizer, text, budget), cfg.max_new_tokens, eos)
        output = base.tokenizer.decode(new, skip_special_tokens=True).strip()
        report.record({"text": text, "output": output, "tokens": len(new)})
        rows.append([text, output])
        tokens += len(new)
    report.table(None, ["input", "output"], rows)
    return {"status": "finished", "mode": "generate", "texts": len(texts), "generated_tokens": tokens}
