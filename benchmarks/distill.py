"""Distillation speed, measured in one process on this machine:

1. Inference images/s of the teacher against the student (the reason to distil), same input size, random
   weights, batch 64, best of three timings each.
2. The teacher-output cache: filling it (the teacher runs on every image) against reading it back (a second
   run, or --resume), and a training epoch whose teacher outputs come from the cache against one where the
   teacher runs on every batch (what every epoch would cost without the cache). Both epochs show the student
   the same clean views; only where the teacher's outputs come from differs.

Random weights (no downloads); generated PNGs. The CPU may be shared with other jobs: compare the ratios,
which are measured side by side, more than the absolute figures.
Usage: python benchmarks/distill.py [--teacher resnet18] [--student timm:test_resnet] [--size 32] [--images 256]
       [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def make_images(root: Path, count: int, size: int) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class_{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        pixels[..., i % 3] = pixels[..., i % 3] // 2 + 127
        Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def export_teacher(folder: Path, spec: str, size: int) -> Path:
    """A random-weight teacher in the fine-tuning export layout (what `tlcli finetune` writes)."""
    from tlcli.runs.artifacts import write_model
    from tlcli.models.vision import IMAGENET_MEAN, IMAGENET_STD, build_vision_model

    built = build_vision_model(spec, "none", num_classes=3)
    write_model(folder / "model", kind="image-classifier", plugin="finetune", tensors=built.model.state_dict(),
                labels=["class_0", "class_1", "class_2"], model=spec,
                preprocessing={"resize": size, "crop": size, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                               "interpolation": "bilinear"})
    return folder


def epoch_images_per_s(cfg, teacher, train, logits, preprocessing, build_student, run_dir: Path,
                       teacher_on_every_batch: bool) -> float:
    """Training images/s of one epoch (the engine's own figure: first step and start-up excluded)."""
    import tlcli_distill.task as task_module
    from tlcli.engine.loop import fit
    from tlcli.runs.run import Run
    from tlcli_distill.task import DistillTask

    original = task_module.augment_view
    if teacher_on_every_batch:  # the clean view, but the teacher's outputs computed on the fly
        task_module.augment_view = lambda augment: (lambda image: image)
    try:
        config = cfg.model_copy(update={"augment": "light" if teacher_on_every_batch else "none"})
        with Run.create("distill", run_dir, plugin="distill", config=config.model_dump()) as run:
            task = DistillTask(config, teacher.labels, teacher, train, None, None if teacher_on_every_batch else logits,
                               None, preprocessing, build_student, run=run)
            result = fit(task, config, run)
    finally:
        task_module.augment_view = original
    return result.samples_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="resnet18")
    parser.add_argument("--student", default="timm:test_resnet")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()

    import torch

    from tlcli.runs.artifacts import read_model
    from tlcli.data.bad_files import BadFiles
    from tlcli.models.vision import build_vision_model
    from tlcli_distill.config import DistillConfig
    from tlcli_distill.data import decode, eval_transform
    from tlcli_distill.job import teacher_logits
    from tlcli_distill.teacher_cache import TeacherCache
    from tlcli_distill.teachers import RunTeacher
    from tlcli_distill.throughput import images_per_second

    work = Path(tempfile.mkdtemp(prefix="tlcli-distill-bench-"))
    os.environ["TLCLI_HOME"] = str(work / "home")
    data = make_images(work / "data", options.images, options.size)
    teacher_dir = export_teacher(work / "teacher", options.teacher, options.size)
    teacher = RunTeacher(teacher_dir, "cpu").eval()
    preprocessing = read_model(teacher_dir).preprocessing  # the student sees the same input as the teacher
    items = [(path, int(path.parent.name[-1])) for path in sorted(data.rglob("*.png"))]
    train = decode(items, BadFiles(), options.size, None)

    def build_student():
        torch.manual_seed(0)
        return build_vision_model(options.student, "none", num_classes=3).model

    student = build_student().eval()
    batch = torch.stack([eval_transform(preprocessing)(image) for image in train.images[:64]])
    teacher_ips = images_per_second(teacher, batch)
    student_ips = images_per_second(student, batch)

    cold_started = time.perf_counter()
    logits = teacher_logits(teacher, train, TeacherCache(teacher.key, {}, 3), torch.device("cpu"), 64, {})
    cold = time.perf_counter() - cold_started
    warm_started = time.perf_counter()
    again = teacher_logits(teacher, train, TeacherCache(teacher.key, {}, 3), torch.device("cpu"), 64, {})
    warm = time.perf_counter() - warm_started
    assert torch.equal(logits, again)

    cfg = DistillConfig(data=str(data), teacher="bench", student=options.student, epochs=1,
                        batch_size=options.batch_size, workers=0, device="cpu", precision="fp32", log_every=1)
    on_the_fly = epoch_images_per_s(cfg, teacher, train, logits, preprocessing, build_student, work / "run-fly", True)
    cached = epoch_images_per_s(cfg, teacher, train, logits, preprocessing, build_student, work / "run-cached", False)

    result = {
        "teacher": options.teacher, "student": options.student, "size": options.size, "images": len(train),
        "teacher_params": teacher.num_params(), "student_params": sum(p.numel() for p in student.parameters()),
        "teacher_images_per_s": round(teacher_ips, 1), "student_images_per_s": round(student_ips, 1),
        "student_speedup": round(student_ips / teacher_ips, 2),
        "cache_fill_s": round(cold, 3), "cache_read_s": round(warm, 3), "cache_read_speedup": round(cold / warm, 1),
        "epoch_images_per_s_teacher_each_batch": round(on_the_fly, 1),
        "epoch_images_per_s_cached_outputs": round(cached, 1),
        "epoch_speedup_from_cache": round(cached / on_the_fly, 2),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
    }
    if options.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:<42} {value}")


if __name__ == "__main__":
    sys.exit(main())
