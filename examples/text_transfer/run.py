"""Zero-shot vs linear probe vs soft-prompt tuning on a small labelled text set, all through the CLI, offline.

The data (data.csv: 275 short lines, 5 topics) ships with the project. Each method sees the same few-shot
training split (--shots per class) and is scored on every other line. Run from the repository root:

    .venv/bin/python examples/text_transfer/run.py [--shots 10] [--seeds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABEL_TEMPLATE = "This text is about {}."
PROMPT_INIT = "Classify the topic of this sentence"


def tlcli(*args: str, home: Path) -> list[dict]:
    """Run `python -m tlcli ARGS --json`; the JSON lines it prints on stdout (the last is the summary)."""
    # A fresh embedding cache per demo run: timings are cold and repeatable.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TLCLI_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "tlcli", *args, "--json"], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"tlcli {' '.join(args[:2])} failed (exit {done.returncode}):\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def split(rows: list[tuple[str, str]], shots: int, seed: int):
    by_label: dict[str, list[str]] = {}
    for text, label in rows:
        by_label.setdefault(label, []).append(text)
    rng = random.Random(seed)
    train, test = [], []
    for label, texts in sorted(by_label.items()):
        texts = texts[:]
        rng.shuffle(texts)
        train += [(t, label) for t in texts[:shots]]
        test += [(t, label) for t in texts[shots:]]
    return train, test


def write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def accuracy(predictions: list[dict], gold: list[str]) -> float:
    assert len(predictions) == len(gold)
    return sum(p["label"] == g for p, g in zip(predictions, gold)) / len(gold)


def run_seed(rows, labels, shots: int, seed: int, epochs: int, work: Path) -> list[tuple[str, int, float, float]]:
    """The three methods on one seeded split: (method, trainable parameters, test accuracy, wall seconds)."""
    train, test = split(rows, shots, seed)
    gold = [label for _, label in test]
    work.mkdir(parents=True, exist_ok=True)
    home = work / "tlcli-home"
    train_csv, test_csv = write_csv(work / "train.csv", train), write_csv(work / "test.csv", test)
    print(f"seed {seed}: train {len(train)} ({shots} per class), test {len(test)}", file=sys.stderr, flush=True)
    results = []

    started = time.time()
    zero = tlcli("text", "zeroshot", "--input", str(test_csv), "--labels", ",".join(labels),
                 "--label-template", LABEL_TEMPLATE, home=home)[:-1]
    results.append(("zero-shot (label similarity)", 0, accuracy(zero, gold), time.time() - started))
    print(f"  zero-shot done ({results[-1][3]:.0f}s)", file=sys.stderr, flush=True)

    started = time.time()
    probe = tlcli("text", "probe", str(train_csv), "--val-split", "0.5", "--seed", str(seed),
                  "--out", str(work / "probe"), "--overwrite", home=home)[-1]
    probe_predictions = tlcli("text", "predict", str(work / "probe"), "--input", str(test_csv),
                              home=home)[:-1]
    results.append(("linear probe", probe["dim"] * len(labels) + len(labels),
                    accuracy(probe_predictions, gold), time.time() - started))
    print(f"  probe done ({results[-1][3]:.0f}s, weight decay {probe['weight_decay']:g})", file=sys.stderr, flush=True)

    started = time.time()
    tuned = tlcli("prompt-tune", str(train_csv), "--virtual-tokens", "10", "--init-text", PROMPT_INIT,
                  "--epochs", str(epochs), "--batch-size", "10", "--val-split", "0", "--seed", str(seed),
                  "--device", "cpu", "--precision", "fp32", "--quiet", "--out", str(work / "prompt-tune"),
                  "--overwrite", home=home)[-1]
    tuned_predictions = tlcli("prompt-tune", "predict", str(work / "prompt-tune"), "--input", str(test_csv),
                              home=home)[:-1]
    results.append((f"soft prompt, 10 tokens + head, {epochs} epochs", tuned["trainable_params"],
                    accuracy(tuned_predictions, gold), time.time() - started))
    print(f"  prompt tuning done ({results[-1][3]:.0f}s)", file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=10, help="training lines per class")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=1, help="seeds --seed .. --seed+N-1: mean +- std over them")
    parser.add_argument("--epochs", type=int, default=10, help="prompt-tuning epochs")
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    args = parser.parse_args()

    with open(HERE / "data.csv", encoding="utf-8") as handle:
        rows = [(r["text"], r["label"]) for r in csv.DictReader(handle)]
    labels = sorted({label for _, label in rows})
    work = Path(tempfile.mkdtemp(prefix="text-transfer-")) if args.keep is None else args.keep
    print(f"{len(rows)} lines, {len(labels)} classes", file=sys.stderr, flush=True)
    seeds = list(range(args.seed, args.seed + args.seeds))
    per_seed = [run_seed(rows, labels, args.shots, seed, args.epochs, work / f"seed-{seed}") for seed in seeds]

    test_lines = len(rows) - args.shots * len(labels)
    header = ["method (all-MiniLM-L6-v2, frozen)", "trainable", "test accuracy", "per seed", "wall"]
    table = []
    for i, (name, params, _, _) in enumerate(per_seed[0]):
        accuracies = [results[i][2] for results in per_seed]
        mean = statistics.fmean(accuracies)
        spread = f" ± {statistics.stdev(accuracies):.3f}" if len(accuracies) > 1 else ""
        wall = statistics.fmean(results[i][3] for results in per_seed)
        table.append([name, f"{params:,}", f"{mean:.3f}{spread}", ", ".join(f"{a:.3f}" for a in accuracies),
                      f"{wall:.0f}s"])
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    print(f"\ntext transfer: {args.shots * len(labels)} training lines, {test_lines} test lines, {len(labels)} "
          f"classes; seeds {', '.join(map(str, seeds))} (mean ± sample std; wall: mean per seed)")
    for row in [header, ["-" * w for w in widths], *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if args.keep is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"run folders: {work}/seed-N/ (probe/, prompt-tune/)")


if __name__ == "__main__":
    main()
