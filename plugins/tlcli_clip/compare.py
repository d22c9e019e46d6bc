"""`tlcli compare`: zero-shot, linear probe (from zero and from zero-shot) and CoOp on one seeded split.

Every method is scored on the same held-out images, which none of them sees while fitting: the probe
picks its weight decay on a split of its own k-shot training images, and CoOp is scored at its last epoch
(not its best one on the held-out set). All methods share the feature cache, so images are encoded once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tlcli.data.bad_files import BadFiles
from tlcli.data.sources import stratified_split
from tlcli.errors import UsageError
from tlcli.models.clip import load_clip
from tlcli.output import emit_json, print_table
from tlcli.paths import CONFIG_FILE, METRICS_FILE, atomic_write_text
from tlcli_clip.common import k_shot, labelled_features, say, split_data
from tlcli_clip.probe import SWEEP_MAX_ITER, WEIGHT_DECAYS, accuracy, fit_logistic

FALLBACK_WEIGHT_DECAY = 1e-2  # too few shots to hold any out: a moderate decay


def fit_probe_without_test(x: torch.Tensor, y: torch.Tensor, num_classes: int, init, seed: int):
    """Weight decay chosen on a split of the training images themselves (when every class has >= 4),
    then the head refit on all of them. Returns (weight, bias, weight_decay)."""
    counts = torch.bincount(y, minlength=num_classes)
    wd = FALLBACK_WEIGHT_DECAY
    if int(counts.min()) >= 4:
        items = [_Item(i, int(label)) for i, label in enumerate(y.tolist())]
        inner_train, inner_val = stratified_split(items, 0.25, seed)
        a = torch.tensor([item.index for item in inner_train])
        b = torch.tensor([item.index for item in inner_val])
        scores, previous = [], None
        for candidate in sorted(WEIGHT_DECAYS, reverse=True):  # warm starts, as in probe.sweep
            weight, bias = fit_logistic(x[a], y[a], num_classes, candidate, init, max_iter=SWEEP_MAX_ITER,
                                        start=previous)
            previous = (weight, bias)
            scores.append((accuracy(x[b], y[b], weight, bias), candidate))
        wd = max(scores)[1]
    weight, bias = fit_logistic(x, y, num_classes, wd, init)
    return weight, bias, wd


class _Item:
    def __init__(self, index: int, label: int):
        self.index, self.label = index, label


def run_compare(config: dict, run_dir: Path, json_output: bool, quiet: bool) -> dict:
    from tlcli_clip.coop import CoopConfig, run_coop
    from tlcli_clip.text import label_embeddings, resolve_templates, zero_shot_probs

    started = time.time()
    bad = BadFiles()
    split = split_data(config["data"], config["val_split"], config["seed"], bad)
    if not split.val:
        raise UsageError(f"{config['data']}: no held-out images; raise --val-split or add images")
    classes = split.classes
    clip = load_clip(config["model"], config["pretrained"], config["device"], config["precision"])
    stats: dict = {}
    largest = max(config["shots"])
    pool = k_shot(split.train, largest, config["seed"])  # every k-shot set is drawn from the same pool order
    say(quiet, f"compare on {len(split.val)} held-out images, {len(classes)} classes, shots {config['shots']}")
    train_all = labelled_features(clip, pool, classes, bad, config, quiet, stats)
    val = labelled_features(clip, split.val, classes, bad, config, quiet, stats)
    bad.check(len(pool) + len(split.val), config["max_bad"])
    features_s = time.time() - started
    val_x = F.normalize(val.features, dim=-1)
    row_of = {path: i for i, path in enumerate(train_all.paths)}
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps(config, indent=1))

    results = []

    def record(method: str, shots, acc: float, trainable: int, wall: float, **extra):
        row = {"method": method, "shots": shots, "accuracy": acc, "trainable_params": trainable,
               "wall_s": round(wall, 3), **extra}
        results.append(row)
        if json_output:
            emit_json(row)
        say(quiet, f"{method} ({'-' if shots is None else f'{shots}-shot'}): accuracy {acc:.4f} in {wall:.1f}s")

    t = time.time()
    head = label_embeddings(clip, classes, resolve_templates(config["templates"]), config["use_cache"])
    probs = zero_shot_probs(clip, val.x, head)
    record("zeroshot", None, float((probs.argmax(axis=1) == val.y).mean()), 0, time.time() - t)
    init = clip.logit_scale() * torch.from_numpy(head)

    for shots in sorted(config["shots"]):
        chosen = k_shot(pool, shots, config["seed"])
        rows = torch.tensor([row_of[s.path] for s in chosen if s.path in row_of], dtype=torch.long)
        x, y = F.normalize(train_all.features[rows], dim=-1), train_all.labels[rows]
        for method, start in (("probe", None), ("probe+zeroshot-init", init)):
            t = time.time()
            weight, bias, wd = fit_probe_without_test(x, y, len(classes), start, config["seed"])
            record(method, shots, accuracy(val_x, val.labels, weight, bias), weight.numel() + bias.numel(),
                   time.time() - t, weight_decay=wd)
        if config["coop"]:
            t = time.time()
            cfg = CoopConfig(data=config["data"], model=config["model"], pretrained=config["pretrained"],
                             n_ctx=config["n_ctx"], shots=shots, val_split=config["val_split"],
                             epochs=config["coop_epochs"], seed=config["seed"], device=config["device"],
                             precision=config["precision"], feature_precision=config["precision"],
                             decode_workers=config["workers"], use_cache=config["use_cache"],
                             max_bad=config["max_bad"], batch_size=config["batch_size"])
            summary = run_coop(cfg, run_dir / f"coop-{shots}shot", resume=False, json_output=False, quiet=True,
                               emit=False)
            stats["cached"] += summary["cached"]
            record("coop", shots, summary["final_metrics"].get("val_accuracy", float("nan")),
                   summary["trainable_params"], time.time() - t, run_dir=summary["run_dir"])
        if config.get("vprompt"):
            from tlcli_clip.vprompt import compare_row

            t = time.time()
            row = compare_row(config, shots, run_dir / f"vprompt-{shots}shot")
            record("vprompt", shots, row["accuracy"], row["trainable_params"], time.time() - t,
                   run_dir=row["run_dir"])

    best = max(results, key=lambda r: (r["accuracy"], -r["trainable_params"]))
    summary = {"run_dir": str(run_dir), "results": results, "best": {k: best[k] for k in ("method", "shots", "accuracy")},
               "classes": classes, "val_images": len(val.labels), "cached": stats["cached"],
               "computed": stats["computed"], "features_s": round(features_s, 3),
               "wall_s": round(time.time() - started, 3), "precision": clip.spec["precision"],
               "bad_files": bad.summary()}
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(summary, indent=1))
    if json_output:
        emit_json({"summary": summary})
    else:
        print_table(f"compare on {len(val.labels)} held-out images (best: {best['method']})",
                    ["method", "shots", "accuracy", "trainable params", "wall"],
                    [[r["method"], "-" if r["shots"] is None else r["shots"], f"{r['accuracy']:.4f}",
                      f"{r['trainable_params']:,}", f"{r['wall_s']:.1f}s"] for r in results])
    return summary
