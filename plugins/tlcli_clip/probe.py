"""`tlcli probe`: logistic regression on frozen, cached CLIP image features.

The head works on L2-normalised features: ``logits = normalize(f) @ W.T + b``. It is fit full-batch with
L-BFGS (a convex problem: the optimum does not depend on the start), minimising
``mean cross-entropy + weight_decay / 2 * ||W - W0||^2``, where ``W0`` is zero, or with ``--init zeroshot``
the zero-shot head (label text embeddings times CLIP's logit scale): the probe then starts from zero-shot
and is pulled back towards it, which is what makes the zero-shot start matter with few shots.
The weight decay is swept on the validation split, as clip_benchmark does.

Everything here is NumPy: with every feature cached (and no --init zeroshot), a probe never imports torch
and takes well under a second. The torch-tensor wrappers at the top serve `tlcli compare`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from tlcli.data.bad_files import BadFiles
from tlcli.errors import UsageError
from tlcli.models.clip import ClipModel, load_clip
from tlcli.output import emit_json, print_table
from tlcli.paths import CONFIG_FILE, EVENTS_FILE, METRICS_FILE, MODEL_DIR, atomic_write_text
from tlcli_clip.common import k_shot, labelled_features, say, split_data

MODEL_KIND = "clip-probe"
WEIGHT_DECAYS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
SWEEP_MAX_ITER = 150


def fit_logistic(features, labels, num_classes: int, weight_decay: float, init=None, max_iter: int = 500,
                 start=None):
    """``(W (C, D), b (C,))`` minimising mean CE of ``features @ W.T + b`` + ``wd/2 * ||W - init||^2``.

    ``features`` are used as given (callers normalise them). ``start`` (W, b) only changes where the
    solver begins (a warm start from a neighbouring weight decay), not the optimum. Full batch, float64,
    deterministic: tlcli.logistic's L-BFGS.
    """
    import torch

    to_numpy = (lambda t: None if t is None else t.detach().double().numpy())
    weight, bias = _fit(to_numpy(features), labels.numpy(), num_classes, weight_decay, to_numpy(init), max_iter,
                        None if start is None else (to_numpy(start[0]), to_numpy(start[1])))
    return torch.from_numpy(weight), torch.from_numpy(bias)


def accuracy(features, labels, weight, bias) -> float:
    """Top-1 accuracy of the head (torch tensors)."""
    if len(labels) == 0:
        return float("nan")
    return ((features @ weight.T + bias).argmax(dim=1) == labels).float().mean().item()


def _fit(x: np.ndarray, y: np.ndarray, num_classes: int, weight_decay: float, init: np.ndarray | None = None,
         max_iter: int = 500, start=None) -> tuple[np.ndarray, np.ndarray]:
    """NumPy ``(W, b)`` float32 (see fit_logistic)."""
    from tlcli.logistic import fit_logistic as solve

    weight, bias = solve(x, y, num_classes, weight_decay, anchor=init, start=start, max_iter=max_iter)
    return weight.astype(np.float32), bias.astype(np.float32)


def _accuracy(x: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    return float(((x @ weight.T + bias).argmax(axis=1) == y).mean())


def _log_loss(x: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    logits = x @ weight.T + bias
    logits = logits - logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean())


def _normalize(x: np.ndarray) -> np.ndarray:
    """L2-normalised rows, as torch.nn.functional.normalize (eps 1e-12)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def sweep(train_x, train_y, val_x, val_y, num_classes, init=None, decays=WEIGHT_DECAYS):
    """NumPy arrays in, NumPy head out. Fit each weight decay; the best validation accuracy wins. Ties,
    common on small easy sets, go to the lower validation log-loss (as in the text probe): on such data
    the strongest decay ties on accuracy with near-uniform probabilities, which are of no use to a user.

    From the strongest decay down, each fit starting from the previous solution: weak decays on
    ill-conditioned features converge slowly from scratch, and quickly from a neighbour."""
    results = []
    previous = None
    for wd in sorted(decays, reverse=True):
        weight, bias = _fit(train_x, train_y, num_classes, wd, init, max_iter=SWEEP_MAX_ITER, start=previous)
        previous = (weight, bias)
        results.append({"weight_decay": wd, "val_accuracy": _accuracy(val_x, val_y, weight, bias),
                        "val_loss": _log_loss(val_x, val_y, weight, bias), "head": (weight, bias)})
    ranked = [r for r in results if not np.isnan(r["val_accuracy"])] or results
    best = max(ranked, key=lambda r: (r["val_accuracy"], -r["val_loss"], r["weight_decay"]))
    # The sweep stops early where a weak decay converges slowly; finish the winner from where it stopped.
    best["head"] = _fit(train_x, train_y, num_classes, best["weight_decay"], init, start=best["head"])
    best["val_accuracy"] = _accuracy(val_x, val_y, *best["head"])
    return best, [{k: v for k, v in r.items() if k != "head"} for r in results]


def zero_shot_init(clip: ClipModel, classes: list[str], templates: str, use_cache: bool) -> np.ndarray:
    from tlcli_clip.text import label_embeddings, resolve_templates

    return clip.logit_scale() * label_embeddings(clip, classes, resolve_templates(templates), use_cache).astype(np.float64)


def model_reference(model: str, pretrained: str | None) -> tuple[str, str | None]:
    """``--model``/``--pretrained`` as a run folder stores them: local files made absolute."""
    if model.startswith("local-dir:"):
        model = "local-dir:" + os.path.abspath(model[len("local-dir:"):])
    elif model.lower().endswith(".json") and Path(model).is_file():
        model = os.path.abspath(model)
    if pretrained not in (None, "none", "default") and Path(pretrained).is_file():
        pretrained = os.path.abspath(pretrained)
    return model, pretrained


def export_probe(run_dir: Path, clip: ClipModel, classes: list[str], weight: np.ndarray, bias: np.ndarray,
                 model: str, pretrained: str | None, extra: dict) -> Path:
    from safetensors.numpy import save_file

    final = Path(run_dir) / MODEL_DIR
    tmp = Path(run_dir) / f".{MODEL_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({"weight": np.ascontiguousarray(weight, dtype=np.float32),
               "bias": np.ascontiguousarray(bias, dtype=np.float32)}, str(tmp / "head.safetensors"),
              metadata={"format": "pt", "tlcli_model": MODEL_KIND})
    (tmp / "labels.json").write_text(json.dumps(classes, ensure_ascii=False, indent=1), encoding="utf-8")
    (tmp / "preprocessing.json").write_text(json.dumps(clip.preprocess_cfg, indent=1), encoding="utf-8")
    (tmp / "model.json").write_text(json.dumps({
        "kind": MODEL_KIND, "plugin": "clip", "model": model, "pretrained": pretrained,
        "precision": clip.spec["precision"], "features": "l2-normalised", "num_classes": len(classes),
        "format": 1, **extra}, indent=1), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def run_probe(config: dict, run_dir: Path, json_output: bool, quiet: bool) -> dict:
    from tlcli.events import EventWriter

    started = time.time()
    bad = BadFiles()
    split = split_data(config["data"], config["val_split"], config["seed"], bad)
    train_samples = k_shot(split.train, config["shots"], config["seed"])
    clip = load_clip(config["model"], config["pretrained"], config["device"], config["precision"])
    say(quiet, f"probe: {len(train_samples)} train / {len(split.val)} val images, {len(split.classes)} classes, "
               f"{clip.spec['model']} ({clip.spec['precision']})")
    stats: dict = {}
    train = labelled_features(clip, train_samples, split.classes, bad, config, quiet, stats)
    val = labelled_features(clip, split.val, split.classes, bad, config, quiet, stats)
    bad.check(len(train_samples) + len(split.val), config["max_bad"])
    if len(train.y) < 2:
        raise UsageError(f"{config['data']}: fewer than two readable training images")
    features_s = time.time() - started

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps(config, indent=1))
    events = EventWriter(run_dir / EVENTS_FILE, run=run_dir.name)
    events.emit("run_start", {"command": "probe", "plugin": "clip", "model": clip.spec["model"], "config": config,
                              "train_samples": len(train.y), "val_samples": len(val.y)})
    fit_started = time.time()
    train_x, val_x = _normalize(train.x.astype(np.float64)), _normalize(val.x.astype(np.float64))
    init = zero_shot_init(clip, split.classes, config["templates"], config["use_cache"]) \
        if config["init"] == "zeroshot" else None
    if config["weight_decay"] is not None:
        weight, bias = _fit(train_x, train.y, len(split.classes), config["weight_decay"], init)
        best = {"weight_decay": config["weight_decay"], "val_accuracy": _accuracy(val_x, val.y, weight, bias)}
        tried = [best]
    else:
        best, tried = sweep(train_x, train.y, val_x, val.y, len(split.classes), init)
        weight, bias = best["head"]
    train_accuracy = _accuracy(train_x, train.y, weight, bias)
    model_ref, pretrained_ref = model_reference(config["model"], config["pretrained"])
    export_probe(run_dir, clip, split.classes, weight, bias, model_ref, pretrained_ref, {"init": config["init"]})
    summary = {
        "run_dir": str(run_dir), "status": "finished", "val_accuracy": best["val_accuracy"],
        "train_accuracy": train_accuracy, "weight_decay": best["weight_decay"], "sweep": tried,
        "init": config["init"], "shots": config["shots"], "classes": split.classes,
        "train_images": len(train.y), "val_images": len(val.y),
        "trainable_params": int(weight.size + bias.size), "cached": stats["cached"], "computed": stats["computed"],
        "features_s": round(features_s, 3), "fit_s": round(time.time() - fit_started, 3),
        "wall_s": round(time.time() - started, 3), "precision": clip.spec["precision"], "bad_files": bad.summary(),
    }
    events.emit("eval", {"metrics": {"val_accuracy": best["val_accuracy"]}, "monitor": "val_accuracy",
                         "best": best["val_accuracy"], "is_best": True})
    events.emit("run_end", {"status": "finished", "best": best["val_accuracy"], "monitor": "val_accuracy",
                            "wall_s": summary["wall_s"]})
    events.close()
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(summary, indent=1))
    if json_output:
        emit_json(summary)
    else:
        print_table("probe finished", ["run", "val acc", "weight decay", "images cached / computed", "wall"],
                    [[str(run_dir), f"{best['val_accuracy']:.4f}", f"{best['weight_decay']:g}",
                      f"{stats['cached']} / {stats['computed']}", f"{summary['wall_s']:.1f}s"]])
    return summary
