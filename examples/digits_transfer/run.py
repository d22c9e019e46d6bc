"""A real transfer experiment that runs offline in about a minute on a laptop CPU.

1. Pretrain a ResNet-18 (random init) on scikit-learn's digits 0-4 (about 900 images).
2. Fine-tune it on digits 5-9 with only 10 labelled images per class: `--weights` + `--freeze-until`.
3. Train the same network from scratch on the same 50 images with the same budget.
4. Evaluate both on the remaining ~850 images of digits 5-9 and print the table.

Everything goes through the tlcli command line, as a user would run it.
Usage: python examples/digits_transfer/run.py [--work DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

SHOTS = 10  # labelled images per target class
SIZE = 32  # digits are 8x8; upscaled so a ResNet's stem has something to work on
# fp32: bf16 autocast rounds differently on different CPUs. With 50 training images the comparison is within
# the noise either way (an Intel Xeon in fp32: transfer 0.844 vs 0.826; an AMD EPYC in fp32: 0.848 vs 0.877).
COMMON = ["--model", "resnet18", "--image-size", str(SIZE), "--augment", "none", "--quiet", "--json",
          "--precision", "fp32"]


def write_digits(work: Path) -> dict[str, Path]:
    """Digits as PNG class folders: pretrain (0-4), target train (5-9, SHOTS each), target test (the rest)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    folders = {name: work / name for name in ("pretrain", "target_train", "target_test")}
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    taken: dict[int, int] = {}
    for index in rng.permutation(len(digits.images)):
        label = int(digits.target[index])
        pixels = (digits.images[index] * (255 / 16)).astype(np.uint8)
        image = Image.fromarray(pixels, mode="L").resize((SIZE, SIZE), Image.BILINEAR)
        if label < 5:
            split = "pretrain"
        else:
            taken[label] = taken.get(label, 0) + 1
            split = "target_train" if taken[label] <= SHOTS else "target_test"
        folder = folders[split] / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index:04d}.png")
    return folders


def tlcli(*args) -> dict:
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "tlcli", *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"tlcli {' '.join(map(str, args[:2]))} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["_wall_s"] = time.time() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "work")
    parser.add_argument("--json", action="store_true", help="print the table as JSON Lines")
    parser.add_argument("--epochs", type=int, default=15, help="fine-tuning / scratch epochs")
    options = parser.parse_args()
    work = options.work
    work.mkdir(parents=True, exist_ok=True)
    print(f"writing digits into {work}", file=sys.stderr)
    data = write_digits(work)

    print("1/3 pretraining ResNet-18 from scratch on digits 0-4", file=sys.stderr)
    pretrain = tlcli("finetune", data["pretrain"], *COMMON, "--pretrained", "none", "--epochs", "4",
                     "--batch-size", "64", "--lr", "2e-3", "--val-split", "0.1", "--out", work / "runs" / "pretrain")
    print(f"    digits 0-4 validation accuracy {pretrain['best']['value']:.3f}", file=sys.stderr)

    budget = ["--epochs", str(options.epochs), "--batch-size", "16", "--val-split", "0", "--seed", "0"]
    print(f"2/3 transfer: {SHOTS} images per digit 5-9, pretrained weights, layers up to layer2 frozen",
          file=sys.stderr)
    tlcli("finetune", data["target_train"], *COMMON, *budget, "--weights", work / "runs" / "pretrain" / "model",
          "--freeze-until", "layer2", "--lr", "1e-3", "--out", work / "runs" / "transfer")
    print("3/3 baseline: the same 50 images and budget, trained from scratch", file=sys.stderr)
    tlcli("finetune", data["target_train"], *COMMON, *budget, "--pretrained", "none", "--lr", "1e-3",
          "--out", work / "runs" / "scratch")

    rows = []
    for name, label in (("transfer", "transfer (--weights, --freeze-until layer2)"), ("scratch", "from scratch")):
        run = work / "runs" / name
        report = tlcli("evaluate", run, data["target_test"], "--json")
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append({"method": label, "test_accuracy": round(report["metrics"]["accuracy"], 4),
                     "mean_recall": round(report["metrics"]["mean_recall"], 4),
                     "test_images": report["n"], "trainable_params": metrics["trainable_params"],
                     "train_wall_s": metrics["wall_s"]})
    if options.json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"\nDigits 5-9 with {SHOTS} labels per class, tested on {rows[0]['test_images']} held-out images")
    print(f"{'method':<46} {'test acc':>10} {'trainable':>12} {'train s':>8}")
    for row in rows:
        print(f"{row['method']:<46} {row['test_accuracy']:>10.3f} {row['trainable_params']:>12,} "
              f"{row['train_wall_s']:>8.1f}")


if __name__ == "__main__":
    main()
