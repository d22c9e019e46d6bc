"""`tlcli probe`: the core linear probe (tlcli.classify.probe) on frozen, cached CLIP image features.

With ``--init zeroshot`` the head starts from, and is pulled back towards, the zero-shot head (label text
embeddings times CLIP's logit scale). With every feature cached (and no --init zeroshot), a probe never
imports torch and takes well under a second.
"""

from __future__ import annotations

import time

import numpy as np

from tlcli.classify import probe as linear
from tlcli.data.bad_files import BadFiles
from tlcli.models.clip import ClipModel, load_clip
from tlcli_clip.common import (k_shot, model_reference, report_short_shots, shots_used, split_of,
                               train_and_val_features)
from tlcli_clip.config import ProbeConfig

MODEL_KIND = "clip-probe"


def zero_shot_init(clip: ClipModel, classes: list[str], templates: str, use_cache: bool) -> np.ndarray:
    from tlcli_clip.text import label_embeddings, resolve_templates

    return clip.logit_scale() * label_embeddings(clip, classes, resolve_templates(templates), use_cache).astype(np.float64)


def run_probe(cfg: ProbeConfig, run, report) -> dict:
    """The job of `tlcli probe`: features, the weight-decay sweep, ``model/`` and the summary, in ``run``."""
    started = time.time()
    bad = BadFiles()
    split = split_of(cfg, bad)
    train_samples = k_shot(split.train, cfg.shots, cfg.seed)
    used = shots_used(train_samples, cfg.shots)
    clip = load_clip(cfg.model, cfg.pretrained, cfg.device, cfg.precision)
    report.info(f"probe: {len(train_samples)} train / {len(split.val)} val images, {len(split.classes)} classes, "
                f"{clip.spec['model']} ({clip.spec['precision']})")
    report_short_shots(used, report)
    stats: dict = {}
    train, val = train_and_val_features(clip, train_samples, split.val, split.classes, bad, cfg,
                                        report.progress_quiet, stats)
    features_s = time.time() - started

    run.start({"model": clip.spec["model"], "train_samples": len(train.y), "val_samples": len(val.y)})
    for entry in bad.summary():
        run.emit("warning", {"message": f"skipped {entry['path']}: {entry['reason']}"})
    fit_started = time.time()
    train_x, val_x = linear.normalize(train.x.astype(np.float64)), linear.normalize(val.x.astype(np.float64))
    anchor = zero_shot_init(clip, split.classes, cfg.templates, cfg.cache) if cfg.init == "zeroshot" else None
    if cfg.weight_decay is not None:
        weight, bias = linear.fit(train_x, train.y, len(split.classes), cfg.weight_decay, anchor)
        best_decay, val_accuracy = cfg.weight_decay, linear.accuracy(val_x, val.y, weight, bias)
        tried = [{"weight_decay": best_decay, "val_accuracy": val_accuracy}]
    else:
        found = linear.sweep(train_x, train.y, val_x, val.y, len(split.classes), anchor)
        (weight, bias), best_decay, val_accuracy, tried = found.head, found.weight_decay, found.val_accuracy, found.tried
    train_accuracy = linear.accuracy(train_x, train.y, weight, bias)
    model_ref, pretrained_ref = model_reference(cfg.model, cfg.pretrained)
    from tlcli.runs.artifacts import write_model

    with run.model_writer() as folder:
        write_model(folder, kind=MODEL_KIND, plugin="clip", weights_file="head.safetensors",
                    tensors={"weight": weight.astype(np.float32), "bias": bias.astype(np.float32)},
                    labels=split.classes, preprocessing=clip.preprocess_cfg, model=model_ref,
                    pretrained=pretrained_ref, precision=clip.spec["precision"], features="l2-normalised",
                    init=cfg.init)
    wall = time.time() - started
    summary = {
        "status": "finished", "best": {"metric": "val_accuracy", "value": val_accuracy, "step": None},
        "metrics": {"val_accuracy": val_accuracy, "train_accuracy": train_accuracy},
        "infer_samples_per_s": round((len(train.y) + len(val.y)) / max(1e-9, features_s), 1),
        "weight_decay": best_decay, "sweep": tried, "init": cfg.init, "shots": used, "classes": split.classes,
        "train_images": len(train.y), "val_images": len(val.y),
        "trainable_params": int(weight.size + bias.size), "cached": stats["cached"], "computed": stats["computed"],
        "features_s": round(features_s, 3), "fit_s": round(time.time() - fit_started, 3),
        "wall_s": round(wall, 3), "precision": clip.spec["precision"], "bad_files": bad.summary(),
    }
    run.emit("eval", {"metrics": {"val_accuracy": val_accuracy, "train_accuracy": train_accuracy},
                      "monitor": "val_accuracy", "best": val_accuracy, "is_best": True})
    report.table("probe finished", ["run", "val acc", "weight decay", "images cached / computed", "wall"],
                 [[str(run.path), f"{val_accuracy:.4f}", f"{best_decay:g}",
                   f"{stats['cached']} / {stats['computed']}", f"{wall:.1f}s"]])
    return summary
