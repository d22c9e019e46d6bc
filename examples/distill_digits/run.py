"""Distil a ResNet-18 fine-tuned on scikit-learn's digits into a ~30x smaller student (timm test_resnet), offline, on a CPU.

1. Teacher: `tlcli finetune` a ResNet-18 (random init) on the training digits.
2. Baseline: the student architecture (timm test_resnet, 0.37M parameters) trained from scratch on the same labels.
3. `tlcli distill` with labels: alpha * T^2 * KL(teacher || student) + (1 - alpha) * cross-entropy.
4. `tlcli distill` with no labels at all: the same images as an --unlabelled folder, the teacher's outputs
   only (alpha = 1).
5. The same unlabelled flow with a CLIP zero-shot teacher built from a tiny config with RANDOM weights: no
   CLIP weights can be downloaded here, so this teacher is near chance and so is its student. It shows the
   mechanics (class names in, a student out, no labels), not what a real CLIP teacher would give.

Every model is scored on the same held-out test digits with `tlcli evaluate`; a validation split (not the
test set) picks each run's best epoch. Everything goes through the tlcli command line, as a user runs it.
Usage: python examples/distill_digits/run.py [--quick] [--threads N] [--work DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SIZE = 16  # digits are 8x8: upscaled once; a ResNet's stem still has something to work on
TEACHER = "resnet18"
STUDENT = "timm:test_resnet"
TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def write_digits(work: Path, train_per_class: int | None) -> dict[str, Path]:
    """PNG class folders: train (labelled), val (picks the best epoch), test (scored once), and the train
    images again without labels in one flat folder (named by word so a CLIP teacher can score them)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    folders = {name: work / name for name in ("train", "val", "test", "unlabelled")}
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    seen: dict[int, int] = {}
    for index in rng.permutation(len(digits.images)):
        label = int(digits.target[index])
        seen[label] = seen.get(label, 0) + 1
        n = seen[label]
        split = "test" if n <= 50 else "val" if n <= 65 else "train"
        if split == "train" and train_per_class is not None and n > 65 + train_per_class:
            continue
        pixels = (digits.images[index] * (255 / 16)).astype(np.uint8)
        image = Image.fromarray(pixels, mode="L").resize((SIZE, SIZE), Image.BILINEAR).convert("RGB")
        folder = folders[split] / CLASS_NAMES[label]
        folder.mkdir(exist_ok=True)
        image.save(folder / f"{index:04d}.png")
        if split == "train":
            image.save(folders["unlabelled"] / f"{index:04d}.png")
    return folders


def tlcli_or_reuse(reuse: bool, out: Path, *args, env=None) -> dict:
    """Run the step, or with --reuse read what an earlier run of this script left in ``out``."""
    if reuse and (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return tlcli(*args, "--out", out, env=env)


def tlcli(*args, env=None) -> dict:
    done = subprocess.run([sys.executable, "-m", "tlcli", *map(str, args)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"tlcli {' '.join(map(str, args[:2]))} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "work")
    parser.add_argument("--quick", action="store_true", help="20 training digits per class, fewer epochs (~1 min)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per process (1 is much faster on a CPU shared with other jobs)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON Lines")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs of an earlier call in --work")
    options = parser.parse_args()
    work = options.work
    env = dict(os.environ, TLCLI_HOME=str(work / "home"))
    if options.threads:
        env["OMP_NUM_THREADS"] = str(options.threads)
    teacher_epochs, student_epochs = (4, 6) if options.quick else (8, 12)
    data = write_digits(work, 20 if options.quick else None)
    train_count = sum(1 for _ in data["unlabelled"].iterdir())
    runs = work / "runs"
    if not options.reuse:
        shutil.rmtree(runs, ignore_errors=True)
        shutil.rmtree(work / "home", ignore_errors=True)  # a cold teacher cache: the distill runs fill it
    common = ["--image-size", str(SIZE), "--val", data["val"], "--batch-size", "32", "--precision", "fp32",
              "--device", "cpu", "--seed", "0", "--quiet", "--json"]
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    timings = {}

    say(f"1/5 teacher: {TEACHER} fine-tuned on {train_count} labelled digits ({teacher_epochs} epochs)")
    started = time.time()
    tlcli_or_reuse(options.reuse, runs / "teacher", "finetune", data["train"], "--model", TEACHER, "--pretrained",
                   "none", "--augment", "none", "--epochs", teacher_epochs, "--lr", "2e-3", *common, env=env)
    timings["teacher"] = time.time() - started
    student = ["--pretrained", "none", "--epochs", student_epochs, "--lr", "5e-3", *common]
    say(f"2/5 baseline: {STUDENT} from scratch on the same labels ({student_epochs} epochs)")
    started = time.time()
    tlcli_or_reuse(options.reuse, runs / "scratch", "finetune", data["train"], "--model", STUDENT, "--augment",
                   "none", *student, env=env)
    timings["scratch"] = time.time() - started
    say("3/5 distilled with labels (alpha 0.7, T 4)")
    started = time.time()
    labelled = tlcli_or_reuse(options.reuse, runs / "distilled", "distill", data["train"], "--teacher",
                              runs / "teacher", "--student", STUDENT, *student, env=env)
    timings["distilled"] = time.time() - started
    say("4/5 distilled with the teacher's outputs only, on the same digits without labels")
    started = time.time()
    unlabelled = tlcli_or_reuse(options.reuse, runs / "distilled-unlabelled", "distill", "--unlabelled",
                                data["unlabelled"], "--teacher", runs / "teacher", "--student", STUDENT, *student,
                                env=env)
    timings["distilled-unlabelled"] = time.time() - started
    (work / "tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    say("5/5 CLIP zero-shot teacher (tiny config, RANDOM weights) over the class names, no labels")
    started = time.time()
    clip = tlcli_or_reuse(options.reuse, runs / "distilled-clip", "distill", "--unlabelled", data["unlabelled"],
                          "--teacher", f"clip:{work / 'tiny-clip.json'}", "--teacher-pretrained", "none", "--labels",
                          ",".join(CLASS_NAMES), "--templates", "single", "--student", STUDENT, *student, env=env)
    timings["distilled-clip"] = time.time() - started

    def test_accuracy(run: Path) -> float:
        report = tlcli("evaluate", run, data["test"], "--json", "--device", "cpu", env=env)
        return report["accuracy"]

    teacher_ips, student_ips = labelled["teacher"]["images_per_s"], labelled["student"]["images_per_s"]
    rows = [
        {"model": f"teacher {TEACHER} (finetune, labels)", "test_top1": test_accuracy(runs / "teacher"),
         "params": labelled["teacher"]["params"], "images_per_s": teacher_ips, "wall_s": timings["teacher"]},
        {"model": f"student {STUDENT} from scratch (labels)", "test_top1": test_accuracy(runs / "scratch"),
         "params": labelled["student"]["params"], "images_per_s": student_ips, "wall_s": timings["scratch"]},
        {"model": "student distilled (labels + teacher)", "test_top1": test_accuracy(runs / "distilled"),
         "params": labelled["student"]["params"], "images_per_s": student_ips, "wall_s": timings["distilled"]},
        {"model": "student distilled (teacher only, no labels)",
         "test_top1": test_accuracy(runs / "distilled-unlabelled"), "params": unlabelled["student"]["params"],
         "images_per_s": student_ips, "wall_s": timings["distilled-unlabelled"]},
        {"model": "tiny random CLIP zero-shot teacher (mechanics only)",
         "test_top1": _zero_shot_accuracy(clip), "params": clip["teacher"]["params"],
         "images_per_s": clip["teacher"]["images_per_s"], "wall_s": None},
        {"model": "student distilled from it (no labels)", "test_top1": test_accuracy(runs / "distilled-clip"),
         "params": clip["student"]["params"], "images_per_s": clip["student"]["images_per_s"],
         "wall_s": timings["distilled-clip"]},
    ]
    cache = {"computed_first_run": labelled["teacher_outputs"]["computed"],
             "cached_second_run": unlabelled["teacher_outputs"]["cached"]}
    if options.json:
        for row in rows:
            print(json.dumps(row))
        print(json.dumps({"train_digits": train_count, "test_digits": 500, "teacher_cache": cache}))
        return
    print(f"\nDigits ({SIZE}px): {train_count} training images, 150 validation, 500 test (50 per class)")
    print(f"{'model':<52} {'test top-1':>10} {'params':>12} {'images/s':>9} {'wall s':>7}")
    for row in rows:
        wall = "" if row["wall_s"] is None else f"{row['wall_s']:.0f}"
        print(f"{row['model']:<52} {row['test_top1']:>10.3f} {row['params']:>12,} {row['images_per_s']:>9,.0f} "
              f"{wall:>7}")
    print(f"teacher outputs: {cache['computed_first_run']} computed by the first distill run, "
          f"{cache['cached_second_run']} read from the cache by the second")


def _zero_shot_accuracy(summary: dict) -> float:
    """The CLIP teacher has no run folder: its accuracy on --val comes from the distill summary."""
    return summary["teacher"]["val_accuracy"]


if __name__ == "__main__":
    main()
