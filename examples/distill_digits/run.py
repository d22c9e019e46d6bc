"""Distil a ResNet-18 fine-tuned on scikit-learn's digits into a ~30x smaller student (timm test_resnet), offline, on a CPU.

1. Teacher: `tlcli finetune` a ResNet-18 (random init) on the training digits.
2. Baseline: the student architecture (timm test_resnet, 0.37M parameters) trained from scratch on the same labels.
3. `tlcli distill` with labels: alpha * T^2 * KL(teacher || student) + (1 - alpha) * cross-entropy.
4. Rows 3 and 5 again with `--feature-loss` (FitNets' hint: a learned linear map of the student's
   penultimate features regressed onto the teacher's 512-d ones, MSE weighted by --feature-weight); --quick
   keeps only the one with labels.
5. `tlcli distill` with no labels at all: the same images as an --unlabelled folder, the teacher's outputs
   only (alpha = 1).
6. The same unlabelled flow with a CLIP zero-shot teacher built from a tiny config with RANDOM weights: no
   CLIP weights can be downloaded here, so this teacher is near chance and so is its student. It shows the
   mechanics (class names in, a student out, no labels), not what a real CLIP teacher would give.

Every model is scored on the same held-out test digits with `tlcli evaluate`; a validation split (not the
test set) picks each run's best epoch. Everything goes through the tlcli command line, as a user runs it.
With --seeds N the two distillations with labels (plain and with the hint) are trained at seeds 0..N-1 and
their rows give the mean and standard deviation of test top-1: one seed's difference of a few test digits
says nothing.
Usage: python examples/distill_digits/run.py [--quick] [--threads N] [--seeds N] [--feature-weight W]
                                             [--work DIR] [--json] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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
    parser.add_argument("--seeds", type=int, default=1,
                        help="train the two distillations with labels (plain, hint) at seeds 0..N-1: mean and std")
    parser.add_argument("--feature-weight", type=float, default=None,
                        help="--feature-weight of the --feature-loss rows (default: tlcli's own, 1.0)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON Lines")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs of an earlier call in --work")
    options = parser.parse_args()
    if options.seeds < 1:
        parser.error("--seeds: at least 1")
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
              "--device", "cpu", "--quiet", "--json"]
    hint = ["--feature-loss"]
    hint_name = "distilled-hint"
    if options.feature_weight is not None:  # its own folder, so --reuse never mixes two weights
        hint += ["--feature-weight", str(options.feature_weight)]
        hint_name += f"-w{options.feature_weight:g}"
    weight_text = f"{options.feature_weight:g}" if options.feature_weight is not None else "1, the default"
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    timings: dict[str, float] = {}

    def step(name: str, *args, seed: int = 0) -> dict:
        started = time.time()
        summary = tlcli_or_reuse(options.reuse, runs / name, *args, "--seed", seed, env=env)
        timings[name] = time.time() - started
        return summary

    def seeded(name: str, *args) -> list[str]:
        """The run at seed 0 in ``name``, the others (--seeds) beside it; their folder names."""
        names = [name] + [f"{name}-seed{seed}" for seed in range(1, options.seeds)]
        for seed, run_name in enumerate(names):
            step(run_name, *args, seed=seed)
        return names

    say(f"1/7 teacher: {TEACHER} fine-tuned on {train_count} labelled digits ({teacher_epochs} epochs)")
    step("teacher", "finetune", data["train"], "--model", TEACHER, "--pretrained", "none", "--augment", "none",
         "--epochs", teacher_epochs, "--lr", "2e-3", *common)
    student = ["--pretrained", "none", "--epochs", student_epochs, "--lr", "5e-3", *common]
    say(f"2/7 baseline: {STUDENT} from scratch on the same labels ({student_epochs} epochs)")
    step("scratch", "finetune", data["train"], "--model", STUDENT, "--augment", "none", *student)
    seeds_text = f", seeds 0-{options.seeds - 1}" if options.seeds > 1 else ""
    say(f"3/7 distilled with labels (alpha 0.7, T 4{seeds_text})")
    distilled = seeded("distilled", "distill", data["train"], "--teacher", runs / "teacher", "--student", STUDENT,
                       *student)
    labelled = json.loads((runs / "distilled" / "metrics.json").read_text())
    say(f"4/7 the same with the feature hint (--feature-loss, weight {weight_text}{seeds_text})")
    distilled_hint = seeded(hint_name, "distill", data["train"], "--teacher", runs / "teacher", "--student", STUDENT,
                            *hint, *student)
    say("5/7 distilled with the teacher's outputs only, on the same digits without labels")
    unlabelled = step("distilled-unlabelled", "distill", "--unlabelled", data["unlabelled"], "--teacher",
                      runs / "teacher", "--student", STUDENT, *student)
    if options.quick:  # ~25 s more: left out of --quick (`make demo`), which keeps the labelled hint row
        say("6/7 the same with the feature hint, no labels: full run only (left out of --quick)")
    else:
        say("6/7 the same with the feature hint, no labels")
        step(f"{hint_name}-unlabelled", "distill", "--unlabelled", data["unlabelled"], "--teacher", runs / "teacher",
             "--student", STUDENT, *hint, *student)
    (work / "tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    say("7/7 CLIP zero-shot teacher (tiny config, RANDOM weights) over the class names, no labels")
    clip = step("distilled-clip", "distill", "--unlabelled", data["unlabelled"], "--teacher",
                f"clip:{work / 'tiny-clip.json'}", "--teacher-pretrained", "none", "--labels", ",".join(CLASS_NAMES),
                "--templates", "single", "--student", STUDENT, *student)

    def test_accuracy(run: Path) -> float:
        report = tlcli("evaluate", run, data["test"], "--json", "--device", "cpu", env=env)
        return report["metrics"]["accuracy"]

    def row(model: str, names: list[str], params: int, images_per_s: float) -> dict:
        """One table row; over several seeds, the mean test top-1 (and the sample std, and each seed's)."""
        scores = [test_accuracy(runs / name) for name in names]
        out = {"model": model, "test_top1": statistics.mean(scores), "params": params, "images_per_s": images_per_s,
               "wall_s": statistics.mean(timings[name] for name in names)}
        if len(scores) > 1:
            out.update(test_top1_std=statistics.stdev(scores), test_top1_seeds=scores)
        return out

    teacher_ips, student_ips = labelled["teacher"]["infer_samples_per_s"], labelled["student"]["infer_samples_per_s"]
    student_params = labelled["student"]["params"]
    rows = [
        row(f"teacher {TEACHER} (finetune, labels)", ["teacher"], labelled["teacher"]["params"], teacher_ips),
        row(f"student {STUDENT} from scratch (labels)", ["scratch"], student_params, student_ips),
        row("student distilled (labels + teacher)", distilled, student_params, student_ips),
        row("student distilled + feature hint (labels + teacher)", distilled_hint, student_params, student_ips),
        row("student distilled (teacher only, no labels)", ["distilled-unlabelled"], student_params, student_ips),
        *([] if options.quick else [
            row("student distilled + feature hint (teacher only, no labels)", [f"{hint_name}-unlabelled"],
                student_params, student_ips)]),
        {"model": "tiny random CLIP zero-shot teacher (mechanics only)",
         "test_top1": _zero_shot_accuracy(clip), "params": clip["teacher"]["params"],
         "images_per_s": clip["teacher"]["infer_samples_per_s"], "wall_s": None},
        row("student distilled from it (no labels)", ["distilled-clip"], clip["student"]["params"],
            clip["student"]["infer_samples_per_s"]),
    ]
    cache = {"computed_first_run": labelled["teacher_outputs"]["computed"],
             "cached_second_run": unlabelled["teacher_outputs"]["cached"]}
    settings = {"train_digits": train_count, "test_digits": 500, "seeds": options.seeds,
                "feature_weight": options.feature_weight, "teacher_cache": cache}
    if options.json:
        for line in rows:
            print(json.dumps(line))
        print(json.dumps(settings))
        return
    print(f"\nDigits ({SIZE}px): {train_count} training images, 150 validation, 500 test (50 per class); "
          f"feature hint weight {weight_text}")
    print(f"{'model':<60} {'test top-1':>13} {'params':>12} {'images/s':>9} {'wall s':>7}")
    for line in rows:
        wall = "" if line["wall_s"] is None else f"{line['wall_s']:.0f}"
        top1 = f"{line['test_top1']:.3f}" + (f"±{line['test_top1_std']:.3f}" if "test_top1_std" in line else "")
        print(f"{line['model']:<60} {top1:>13} {line['params']:>12,} {line['images_per_s']:>9,.0f} {wall:>7}")
        if "test_top1_seeds" in line:
            print(f"{'':<4}seeds 0-{options.seeds - 1}: " + ", ".join(f"{s:.3f}" for s in line["test_top1_seeds"]))
    print(f"teacher outputs: {cache['computed_first_run']} computed by the first distill run, "
          f"{cache['cached_second_run']} read from the cache by the unlabelled one")


def _zero_shot_accuracy(summary: dict) -> float:
    """The CLIP teacher has no run folder: its accuracy on --val comes from the distill summary."""
    return summary["teacher"]["val_accuracy"]


if __name__ == "__main__":
    main()
