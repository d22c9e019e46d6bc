"""`tlcli compare`: zero-shot, linear probe (from zero and from zero-shot), CoOp, and with ``--lora``
CLIP-LoRA (and with ``--vprompt`` a visual prompt) on one seeded split.

Every method is scored on the same held-out images, which none of them sees while fitting: the probe
picks its weight decay on a split of its own k-shot training images, and CoOp is scored at its last epoch
(not its best one on the held-out set), as is CLIP-LoRA. All methods share the feature cache, so images are encoded once.
"""

from __future__ import annotations

import time

import numpy as np

from tlcli.classify import probe as linear
from tlcli.data.bad_files import BadFiles
from tlcli.console.errors import UsageError
from tlcli.models.clip import load_clip
from tlcli_clip.common import k_shot, split_of, sub_run, train_and_val_features
from tlcli_clip.config import CompareConfig, CoopConfig
from tlcli_clip.text import label_embeddings, resolve_templates, zero_shot_probs


def run_compare(cfg: CompareConfig, run, report) -> dict:
    """The job of `tlcli compare`: every method on one split, in ``run``: one record and one ``eval`` event
    per method and shot count, CoOp (and --vprompt) runs as sub-runs of its folder."""
    from tlcli_clip.coop import run_coop  # torch: only when CoOp runs (compare --no-coop on cached features needs none)

    started = time.time()
    bad = BadFiles()
    split = split_of(cfg, bad)
    if not split.val:
        raise UsageError(f"{cfg.data}: no held-out images; raise --val-split or add images")
    classes = split.classes
    clip = load_clip(cfg.model, cfg.pretrained, cfg.device, cfg.precision)
    stats: dict = {}
    largest = max(cfg.shots)
    pool = k_shot(split.train, largest, cfg.seed)  # every k-shot set is drawn from the same pool order
    report.info(f"compare on {len(split.val)} held-out images, {len(classes)} classes, shots {cfg.shots}")
    train_all, val = train_and_val_features(clip, pool, split.val, classes, bad, cfg, report.progress_quiet, stats,
                                            need_two=False)
    features_s = time.time() - started
    val_x = linear.normalize(val.x.astype(np.float64))
    row_of = {path: i for i, path in enumerate(train_all.paths)}
    run.start({"model": clip.spec["model"], "val_samples": len(val.y), "shots": cfg.shots})

    results = []

    def record(method: str, shots, acc: float, trainable: int, wall: float, **extra):
        row = {"method": method, "shots": shots, "accuracy": acc, "trainable_params": trainable,
               "wall_s": round(wall, 3), **extra}
        results.append(row)
        run.emit("eval", {"metrics": {"accuracy": acc}, "method": method, "shots": shots,
                          "trainable_params": trainable}, step=len(results))
        report.record(row)
        report.info(f"{method} ({'-' if shots is None else f'{shots}-shot'}): accuracy {acc:.4f} in {wall:.1f}s")

    t = time.time()
    head = label_embeddings(clip, classes, resolve_templates(cfg.templates), cfg.cache)
    probs = zero_shot_probs(clip, val.x, head)
    record("zeroshot", None, float((probs.argmax(axis=1) == val.y).mean()), 0, time.time() - t)
    anchor = clip.logit_scale() * head.astype(np.float64)

    for shots in sorted(cfg.shots):
        chosen = k_shot(pool, shots, cfg.seed)
        rows = np.array([row_of[s.path] for s in chosen if s.path in row_of], dtype=np.int64)
        x, y = linear.normalize(train_all.x[rows].astype(np.float64)), train_all.y[rows]
        for method, start in (("probe", None), ("probe+zeroshot-init", anchor)):
            t = time.time()
            weight, bias, wd = linear.fit_with_inner_split(x, y, len(classes), start, cfg.seed)
            record(method, shots, linear.accuracy(val_x, val.y, weight, bias), int(weight.size + bias.size),
                   time.time() - t, weight_decay=wd)
        if cfg.coop:
            t = time.time()
            coop_cfg = CoopConfig(data=cfg.data, val=cfg.val, model=cfg.model, pretrained=cfg.pretrained,
                                  n_ctx=cfg.n_ctx, shots=shots, val_split=cfg.val_split, epochs=cfg.coop_epochs,
                                  seed=cfg.seed, device=cfg.device, precision=cfg.precision, workers=cfg.workers,
                                  cache=cfg.cache, max_bad=cfg.max_bad, batch_size=cfg.batch_size or 32)
            summary = sub_run("coop", coop_cfg, run_coop, run.path / f"coop-{shots}shot")
            stats["cached"] += summary["cached"]
            record("coop", shots, summary["metrics"].get("val_accuracy", float("nan")),
                   summary["trainable_params"], time.time() - t, run_dir=summary["run_dir"])
        if cfg.lora is not None:
            t = time.time()
            lora_cfg = CoopConfig(data=cfg.data, val=cfg.val, model=cfg.model, pretrained=cfg.pretrained, shots=shots,
                                  val_split=cfg.val_split, epochs=cfg.lora_epochs, seed=cfg.seed, device=cfg.device,
                                  precision=cfg.precision, workers=cfg.workers, cache=cfg.cache, max_bad=cfg.max_bad,
                                  batch_size=cfg.batch_size or 32, lora=cfg.lora)
            summary = sub_run("coop", lora_cfg, run_coop, run.path / f"clip-lora-{shots}shot")
            record("clip-lora", shots, summary["metrics"].get("val_accuracy", float("nan")),
                   summary["trainable_params"], time.time() - t, run_dir=summary["run_dir"])
        if cfg.vprompt:
            from tlcli_clip.vprompt import compare_row

            t = time.time()
            row = compare_row(cfg, shots, run.path / f"vprompt-{shots}shot")
            record("vprompt", shots, row["accuracy"], row["trainable_params"], time.time() - t,
                   run_dir=row["run_dir"])

    best = max(results, key=lambda r: (r["accuracy"], -r["trainable_params"]))
    summary = {"status": "finished", "best": {"metric": "accuracy", "value": best["accuracy"], "step": None},
               "best_method": best["method"], "best_shots": best["shots"],
               "metrics": {"accuracy": best["accuracy"]},
               "infer_samples_per_s": round((len(pool) + len(split.val)) / max(1e-9, features_s), 1),
               "results": results, "classes": classes, "val_images": len(val.y), "cached": stats["cached"],
               "computed": stats["computed"], "features_s": round(features_s, 3),
               "wall_s": round(time.time() - started, 3), "precision": clip.spec["precision"],
               "bad_files": bad.summary()}
    report.table(f"compare on {len(val.y)} held-out images (best: {best['method']})",
                 ["method", "shots", "accuracy", "trainable params", "wall"],
                 [[r["method"], "-" if r["shots"] is None else r["shots"], f"{r['accuracy']:.4f}",
                   f"{r['trainable_params']:,}", f"{r['wall_s']:.1f}s"] for r in results])
    return summary
