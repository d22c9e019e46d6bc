"""One soft-prompt run (data, task, engine, summary) and `tlcli prompt-tune predict`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from tlcli.data.labelled import training_classes
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.loop import fit
from tlcli.errors import Interrupted, UsageError
from tlcli.output import display_path, emit_json, info, print_table
from tlcli.paths import CONFIG_FILE, METRICS_FILE, atomic_write_text
from tlcli_text.inputs import read_labelled_texts
from tlcli_text.prompt_tune_config import PromptTuneConfig
from tlcli_text.prompt_tune_task import (
    MODEL_KIND, Examples, PromptTuneTask, collate, encode_for_classify, encode_for_generate, eos_id, input_budget,
    load_base, pad_id, prompt_input_ids,
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


def run_prompt_tune(cfg: PromptTuneConfig, run_dir: Path, resume: bool, json_output: bool, quiet: bool) -> dict:
    train_samples, val_samples = _split(cfg)
    if len(train_samples) < 2:
        raise UsageError(f"{display_path(cfg.data)}: fewer than two training rows")
    if not quiet:
        info(f"loading {cfg.model} ({cfg.mode})")
    base = load_base(cfg.mode, cfg.model)
    train, val, classes = build_examples(cfg, base, train_samples, val_samples)

    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write_text(run_dir / CONFIG_FILE, json.dumps(cfg.model_dump(), indent=1))
    task = PromptTuneTask(cfg, base, train, val, classes)
    callbacks = standard_callbacks(run_dir, "prompt-tune", "text", quiet)
    result = fit(task, cfg, run_dir, callbacks=callbacks, resume=resume)

    summary = {
        "run_dir": str(run_dir), "status": result.status, "mode": cfg.mode, "monitor": result.monitor,
        "best": result.best, "final_metrics": result.final_metrics, "steps": result.steps,
        "epochs": result.epochs_done, "wall_s": round(result.wall_s, 2),
        "samples_per_s": round(result.samples_per_s, 1), "trainable_params": result.trainable_params,
        "total_params": result.total_params, "device": result.device, "precision": result.precision,
        "classes": classes, "train_texts": len(train), "val_texts": len(val) if val else 0,
    }
    if cfg.mode == "classify":
        summary["best_val_accuracy"] = result.best
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(summary, indent=1))
    if json_output:
        emit_json(summary)
    else:
        best = "-" if result.best is None else f"{result.best:.4f}"
        print_table(f"prompt-tune {result.status}", ["run", f"best {result.monitor}", "wall", "trainable / total"],
                    [[str(run_dir), best, f"{result.wall_s:.1f}s",
                      f"{result.trainable_params:,} / {result.total_params:,}"]])
    if result.status == "interrupted":
        raise Interrupted(f"interrupted; checkpoint saved. Continue with: tlcli prompt-tune --resume {run_dir}")
    return summary


# --- predict -----------------------------------------------------------------------------------------------

def load_soft_prompt(run_dir: Path, device: str = "cpu"):
    """(model in eval mode on device, base, model.json, labels or None) of a prompt-tune run."""
    from safetensors.torch import load_file

    from tlcli.engine.device import resolve_device
    from tlcli_text.prompt_tune_task import PromptTuneTask
    from tlcli_text.text_run import _model_dir

    folder = _model_dir(Path(run_dir), MODEL_KIND, "tlcli prompt-tune")
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8")) if meta["mode"] == "classify" else None
    pre = json.loads((folder / "preprocessing.json").read_text(encoding="utf-8"))
    cfg = PromptTuneConfig(data="-", mode=meta["mode"], model=meta["model"], virtual_tokens=meta["virtual_tokens"],
                           max_length=pre["max_length"])
    base = load_base(cfg.mode, cfg.model)
    model = PromptTuneTask(cfg, base, Examples([]), None, labels).build_model()
    try:
        model.load_state_dict(load_file(str(folder / "prompt.safetensors")))
    except RuntimeError as error:
        raise UsageError(f"{display_path(folder)}: prompt does not fit {meta['model']} ({str(error).splitlines()[0]})") from None
    return model.to(resolve_device(device)).eval(), base, cfg, labels


def run_prompt_tune_predict(run_dir, texts, top, max_new_tokens, batch_size, device, json_output) -> None:
    model, base, cfg, labels = load_soft_prompt(run_dir, device)
    budget = input_budget(cfg.max_length, base, cfg.virtual_tokens)
    target = model.prompt.embedding.device
    if cfg.mode == "classify":
        from tlcli_text.text_run import emit_predictions

        ids = encode_for_classify(base.tokenizer, texts, budget)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(ids), batch_size):
                batch = collate([{"input_ids": i, "labels": 0} for i in ids[start:start + batch_size]],
                                pad_id(base.tokenizer))
                logits = model(batch["input_ids"].to(target), batch["attention_mask"].to(target))
                chunks.append(torch.softmax(logits.float(), dim=1).cpu())
        emit_predictions(texts, labels, torch.cat(chunks).numpy(), min(top, len(labels)), json_output,
                         score_name="prob")
        return
    eos = eos_id(base.tokenizer)
    rows = []
    for text in texts:
        new = model.generate(prompt_input_ids(base.tokenizer, text, budget), max_new_tokens, eos)
        output = base.tokenizer.decode(new, skip_special_tokens=True).strip()
        if json_output:
            emit_json({"text": text, "output": output, "tokens": len(new)})
        else:
            rows.append([text, output])
    if not json_output:
        print_table(None, ["input", "output"], rows)
