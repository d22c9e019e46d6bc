"""One distillation run: teacher, data, cached teacher outputs, the engine, and the summary."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from tlcli.data.bad_files import BadFiles
from tlcli.data.labelled import class_names_of
from tlcli.data.sources import expand_paths, load_labelled, stratified_split
from tlcli.data.tables import columns_of, default_validation
from tlcli.console.errors import UsageError
from tlcli_distill.config import DistillConfig
from tlcli_distill.data import Decoded, decode, eval_transform
from tlcli_distill.loss import UNLABELLED
from tlcli_distill.teacher_cache import TeacherCache, digests_of
from tlcli_distill.teachers import Teacher, build_teacher

THROUGHPUT_BATCH = 64


def class_names(cfg: DistillConfig) -> list[str] | None:
    """The classes a CLIP teacher scores: --labels, else the labelled data's class folders/labels."""
    if cfg.labels:
        return list(cfg.labels)
    if cfg.teacher.startswith("clip:") and cfg.data:
        return class_names_of(load_labelled(cfg.data, columns=columns_of(cfg)))
    return None


def _labelled_items(source: str, classes: list[str], bad: BadFiles, what: str, columns=None) -> list:
    samples = load_labelled(source, bad_files=bad, columns=columns)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({s.label for s in samples} - set(index))
    if unknown:
        raise UsageError(f"{what} {source}: labels the teacher does not know: {', '.join(unknown[:5])}; the teacher "
                         f"scores {', '.join(classes[:10])}")
    return [(s.path, index[s.label], s.label) for s in samples]


def gather_items(cfg: DistillConfig, classes: list[str], bad: BadFiles):
    """(train items, val items) as (path, class index or UNLABELLED)."""
    train, val = [], []
    columns = columns_of(cfg)
    val_source = cfg.val or (default_validation(cfg.data) if cfg.val_split > 0 else None)
    if cfg.data:
        labelled = _labelled_items(cfg.data, classes, bad, "DATA", columns)
        if val_source:
            train = labelled
        elif cfg.val_split > 0:
            train, val = stratified_split(_Labelled.wrap(labelled), cfg.val_split, cfg.seed)
            train, val = [x.item for x in train], [x.item for x in val]
        else:
            train = labelled
    if val_source:
        val = _labelled_items(val_source, classes, bad, "--val", columns)
    if cfg.unlabelled:
        paths, skipped = expand_paths([cfg.unlabelled], columns=columns)
        bad.extend(skipped)
        if not paths and not skipped:
            raise UsageError(f"--unlabelled {cfg.unlabelled}: no images found; pass a folder of images")
        train += [(path, UNLABELLED, None) for path in paths]
    return [(p, y) for p, y, _ in train], [(p, y) for p, y, _ in val]


class _Labelled:
    """stratified_split wants objects with ``label``."""

    def __init__(self, item):
        self.item, self.label = item, item[2]

    @classmethod
    def wrap(cls, items):
        return [cls(item) for item in items]


def teacher_logits(teacher: Teacher, decoded: Decoded, cache: TeacherCache, device: torch.device,
                   batch_size: int, stats: dict) -> torch.Tensor:
    """(N, classes) float32 teacher logits of the clean views, from the cache where present."""
    return teacher_outputs(teacher, decoded, cache, device, batch_size, stats)[0]


@torch.inference_mode()
def teacher_outputs(teacher: Teacher, decoded: Decoded, cache: TeacherCache, device: torch.device,
                    batch_size: int, stats: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The teacher's (N, classes) float32 logits of the clean views and, when ``cache.features`` (their
    width), its (N, features) penultimate features (else None); from the cache where present. Under torchrun
    each rank computes its share of the missing rows and every rank receives them all."""
    from tlcli.engine import distributed

    if not len(decoded):  # the same data on every rank: all return here, before any collective
        return torch.zeros((0, cache.classes)), torch.zeros((0, cache.features)) if cache.features else None
    digests = digests_of(decoded.paths)
    rows: dict[int, np.ndarray] = {}
    for i, digest in enumerate(digests):
        row = cache.get(digest)  # checked there: float32, one finite value per class
        if row is not None:
            rows[i] = row
    # Ranks on other machines may hold other caches: a row missing on any rank is computed by all.
    info = distributed.setup(device.type)
    absent = torch.tensor([float(i not in rows) for i in range(len(decoded))])
    missing = torch.nonzero(distributed.sum_across_ranks(absent, info, device)).flatten().tolist()
    if missing:
        computed = _computed_rows(teacher, decoded, missing, cache, device, batch_size, info)
        for i, row in zip(missing, computed):
            rows[i] = row
            cache.put(digests[i], row)
        cache.flush()
    stats["cached"] = stats.get("cached", 0) + len(decoded) - len(missing)
    stats["computed"] = stats.get("computed", 0) + len(missing)
    table = torch.from_numpy(np.stack([rows[i] for i in range(len(decoded))]).astype(np.float32))
    if not cache.features:
        return table, None
    return table[:, : cache.classes].contiguous(), table[:, cache.classes :].contiguous()


def _computed_rows(teacher: Teacher, decoded: Decoded, missing: list[int], cache: TeacherCache,
                   device: torch.device, batch_size: int, info) -> np.ndarray:
    """(len(missing), classes + features) rows of the teacher's outputs. Under torchrun rank r computes
    rows r, r + world, ... and a sum across ranks fills in the others' (no pickled objects cross)."""
    from tlcli.engine import distributed

    table = torch.zeros((len(missing), cache.classes + cache.features), dtype=torch.float32)
    mine = list(range(info.rank, len(missing), info.world))
    teacher.to(device).eval()
    for start in range(0, len(mine), batch_size):
        places = mine[start : start + batch_size]
        batch = torch.stack([teacher.transform(decoded.images[missing[p]]) for p in places]).to(device)
        if cache.features:  # a row is the logits, then the features
            logits, features = teacher(batch, with_features=True)
            table[places] = torch.cat([logits.float(), features.float()], dim=1).cpu()
        else:
            table[places] = teacher(batch).float().cpu()
    teacher.to("cpu")
    return distributed.sum_across_ranks(table, info, device).numpy()


def student_preprocessing(cfg: DistillConfig) -> dict:
    from tlcli.models.vision import preprocessing_of

    pre = dict(preprocessing_of(cfg.student, "none" if cfg.weights else cfg.pretrained))
    if cfg.image_size:  # keep the library's resize/crop ratio
        pre["resize"] = max(cfg.image_size, round(cfg.image_size * pre["resize"] / pre["crop"]))
        pre["crop"] = cfg.image_size
    return pre


def student_builder(cfg: DistillConfig, num_classes: int):
    def build():
        from tlcli.models.vision import build_vision_model, load_backbone_weights, read_weights_file

        built = build_vision_model(cfg.student, "none" if cfg.weights else cfg.pretrained, num_classes=num_classes,
                                   image_size=cfg.image_size)
        if cfg.weights:
            load_backbone_weights(built.model, read_weights_file(Path(cfg.weights)), built.head_names)
        return built.model

    return build


def run_distill(cfg: DistillConfig, run, report) -> dict:
    """The job of `tlcli distill`: teacher outputs (cached), then the student trained by the engine; the
    summary (Report schema) with the teacher's and the student's accuracy, size and speed."""
    from tlcli.engine.callbacks import standard_callbacks
    from tlcli.engine.device import resolve_device
    from tlcli.engine.loop import fit
    from tlcli_distill.task import DistillTask

    started = time.time()
    device = resolve_device(cfg.device)
    teacher = build_teacher(cfg.teacher, cfg.teacher_pretrained, class_names(cfg), cfg.templates, str(device),
                            cfg.cache)
    classes = teacher.labels
    bad = BadFiles()
    train_items, val_items = gather_items(cfg, classes, bad)
    preprocessing = student_preprocessing(cfg)
    short_side = max(preprocessing["resize"], teacher.short_side)
    report.info(f"distill: teacher {teacher.description}; decoding {len(train_items) + len(val_items)} images")
    train = decode(train_items, bad, short_side, None)
    val = decode(val_items, bad, short_side, None) if val_items else None
    bad.check(len(train_items) + len(val_items), cfg.max_bad)
    if len(train) < 2:
        raise UsageError("fewer than two readable training images; pass more labelled DATA or --unlabelled images")

    feature_width = teacher.feature_width() if cfg.feature_loss else 0
    cache = TeacherCache(teacher.key, {"teacher": cfg.teacher, "labels": classes}, len(classes),
                         enabled=cfg.cache, features=feature_width)
    stats: dict = {}
    t = time.time()
    batch = cfg.eval_batch_size
    train_logits = train_features = None
    if cfg.augment == "none":
        train_logits, train_features = teacher_outputs(teacher, train, cache, device, batch, stats)
    val_logits = teacher_outputs(teacher, val, cache, device, batch, stats)[0] if val is not None else None
    teacher_s = time.time() - t
    report.info(f"teacher outputs: {stats.get('cached', 0)} cached, {stats.get('computed', 0)} computed "
                f"({teacher_s:.1f}s)")

    task = DistillTask(cfg, classes, teacher, train, val, train_logits, val_logits, preprocessing,
                       student_builder(cfg, len(classes)), run=run, train_features=train_features,
                       feature_width=feature_width)
    warnings = [f"skipped {e['path']}: {e['reason']}" for e in bad.summary()]
    result = fit(task, cfg, run, callbacks=standard_callbacks(run, "distill", "distill", report.progress_quiet,
                                                    warnings),
                 resume=run.resumed)

    summary = _summary(cfg, run, result, teacher, task, train, val, val_logits, preprocessing, device, stats,
                       teacher_s, bad, time.time() - started)
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    report.table(f"distill {result.status}: {run.path}", ["model", "val accuracy", "parameters", "images/s"], [
        [role, fmt(summary[role]["val_accuracy"]), f"{summary[role]['params']:,}",
         f"{summary[role]['infer_samples_per_s']:.0f}"] for role in ("teacher", "student")])
    return summary


def _summary(cfg, run, result, teacher, task, train: Decoded, val: Decoded | None, val_logits, preprocessing,
             device, stats, teacher_s, bad, wall) -> dict:
    from tlcli.runs.artifacts import read_model
    from tlcli_distill.data import eval_transform

    teacher_acc = None
    if val is not None and len(val):
        truth = torch.tensor(val.labels)
        teacher_acc = float((val_logits.argmax(1) == truth).float().mean())
    student = task._build_student()
    student_params = sum(p.numel() for p in student.parameters())
    student_ips = teacher_ips = None
    sample = (val if val is not None and len(val) else train).images[:THROUGHPUT_BATCH]
    if run.writable and (run.path / "model").is_dir():  # the exported student, as predict would run it
        from safetensors.torch import load_file

        files = read_model(run.path)
        student.load_state_dict(load_file(str(files.path / "model.safetensors")))
        student.to(device).eval()
        from tlcli_distill.throughput import images_per_second

        student_ips = images_per_second(student, torch.stack([eval_transform(preprocessing)(im) for im in sample])
                                        .to(device))
        teacher.to(device).eval()
        teacher_ips = images_per_second(teacher, torch.stack([teacher.transform(im) for im in sample]).to(device))
        teacher.to("cpu")
    final = result.final_metrics or {}
    return {
        **result.summary(),
        "infer_samples_per_s": round(student_ips or 0.0, 1),
        "teacher": {"spec": cfg.teacher, "val_accuracy": teacher_acc, "params": teacher.num_params(),
                    "infer_samples_per_s": round(teacher_ips or 0.0, 1)},
        # the exported student is the best one seen on --val (its accuracy is result.best)
        "student": {"spec": cfg.student, "val_accuracy": result.best, "last_val_accuracy": final.get("val_accuracy"),
                    "teacher_agreement": final.get("val_teacher_agreement"),
                    "params": student_params, "infer_samples_per_s": round(student_ips or 0.0, 1)},
        "speedup": round(student_ips / teacher_ips, 2) if student_ips and teacher_ips else None,
        "compression": round(teacher.num_params() / max(1, student_params), 2),
        "temperature": cfg.temperature, "alpha": cfg.alpha if train.labelled else 1.0,
        "feature_weight": cfg.feature_weight if cfg.feature_loss else None,
        "labelled_images": train.labelled, "unlabelled_images": len(train) - train.labelled,
        "val_images": len(val) if val is not None else 0, "classes": teacher.labels,
        "teacher_outputs": {"cached": stats.get("cached", 0), "computed": stats.get("computed", 0),
                            "seconds": round(teacher_s, 3), "training": task.describe()["teacher_outputs"]},
        "wall_s": round(wall, 2), "bad_files": bad.summary(),
    }
