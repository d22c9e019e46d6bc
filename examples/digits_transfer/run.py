"""Transfer against training from scratch, over several seeds, offline: letters -> digits.

1. Source: a ResNet-18 trained from random init on 26 capital letters (80 each), drawn the way scikit-learn's
   digits were made (a 32x32 bitmap counted in 4x4 blocks: 8x8 images of 0..16). It stands in for a
   downloaded pretrained network; it is trained once per call (`--source digits`: on the digits 0-4 instead).
2. For each seed 0..N-1: draw SHOTS labelled images per digit 5-9 from a fixed pool of 30 per digit, then
   a. transfer: fine-tune the source network on them, `--weights SOURCE/model --freeze-until layer2`;
   b. scratch: the same network from random init, the same images, the same budget (15 epochs).
3. Evaluate both with `tlcli evaluate` on the same held-out digits 5-9 (all 746 not in the pool); print each
   seed, mean +- sample std over the seeds, and on how many seeds transfer won.

The seed changes which images are labelled, the new head's and the scratch network's initialisation and the
data order; the source network and the test images stay the same. Everything goes through the tlcli command
line, as a user would run it. Results: WORK/results-PRECISION.json; run folders: WORK/runs/.
Usage: python examples/digits_transfer/run.py [--seeds 5] [--shots 5] [--precision fp32|bf16] [--json]
                                             [--work DIR] [--reuse] [--data-only]
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

SIZE = 32  # digits are 8x8; upscaled so a ResNet's stem has something to work on
POOL = 30  # images per class of digits 5-9 that may be labelled; the rest are the test set
SHOTS = 5  # labelled images per digit
FREEZE = "layer2"  # the last frozen block of the transferred network
EPOCHS = 15  # both arms: 15 passes over the labelled images
LR = 1e-3
SOURCE_EPOCHS = 4


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def write_data(work: Path, source: str, letters_per_class: int = 80) -> dict[str, Path]:
    """PNG class folders: the source task (`letters`: A-Z rendered like the digits, or `digits`: digits 0-4),
    the target pool (digits 5-9, POOL each, the images that may be labelled) and the target test set (the
    rest of digits 5-9)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    def save(counts, folder: Path, name: str) -> None:  # 8x8 counts 0..16 -> a grey PNG upscaled to SIZE
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (np.asarray(counts) * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").resize((SIZE, SIZE), Image.BILINEAR).save(folder / name)

    folders = {name: work / name for name in ("source", "target_pool", "target_test")}
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    digits = load_digits()
    rng = np.random.default_rng(0)
    taken: dict[int, int] = {}
    for index in rng.permutation(len(digits.images)):
        label = int(digits.target[index])
        if label < 5:
            if source == "digits":
                save(digits.images[index], folders["source"] / f"digit_{label}", f"{index:04d}.png")
            continue
        taken[label] = taken.get(label, 0) + 1
        split = "target_pool" if taken[label] <= POOL else "target_test"
        save(digits.images[index], folders[split] / f"digit_{label}", f"{index:04d}.png")
    if source == "letters":
        for letter in LETTERS:
            for i in range(letters_per_class):
                save(render_letter(letter, rng), folders["source"] / f"letter_{letter}", f"{i:03d}.png")
    return folders


def render_letter(letter: str, rng):
    """A capital letter as the UCI digits were made: drawn with a random stroke width, slant, rotation and
    size, binarised in a 32x32 box, then the set pixels counted in 4x4 blocks (8x8 values 0..16). The font is
    the one Pillow embeds, so no font file is needed."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    canvas = Image.new("L", (128, 128))
    ImageDraw.Draw(canvas).text((32, 16), letter, fill=255, font=ImageFont.load_default(size=64))
    canvas = canvas.filter(ImageFilter.MaxFilter(int(rng.choice([5, 7, 9, 11]))))  # stroke width
    canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR)
    shear = float(rng.uniform(-0.3, 0.3))
    canvas = canvas.transform(canvas.size, Image.AFFINE, (1, shear, -shear * 64, 0, 1, 0), resample=Image.BILINEAR)
    glyph = canvas.crop(canvas.getbbox())
    width, height = glyph.size
    scale = int(rng.integers(22, 31)) / max(width, height)
    glyph = glyph.resize((max(1, round(width * scale * rng.uniform(0.8, 1.0))), max(1, round(height * scale))),
                         Image.BILINEAR)
    box = Image.new("L", (32, 32))
    box.paste(glyph, ((32 - glyph.size[0]) // 2 + int(rng.integers(-1, 2)),
                      (32 - glyph.size[1]) // 2 + int(rng.integers(-1, 2))))
    bits = (np.asarray(box) > 127).astype(np.uint8)
    return bits.reshape(8, 4, 8, 4).sum(axis=(1, 3))


def draw_labelled(pool: Path, shots: int, seed: int, manifest: Path) -> int:
    """A CSV manifest (path,label) of `shots` images per class drawn from the pool with this seed."""
    import numpy as np

    rng = np.random.default_rng(1000 + seed)
    lines = []
    for folder in sorted(p for p in pool.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.png"))
        for chosen in sorted(rng.choice(len(files), size=shots, replace=False)):
            lines.append(f"{files[chosen].resolve().relative_to(manifest.parent.resolve())},{folder.name}")
    manifest.write_text("\n".join(lines) + "\n")
    return len(lines)


def tlcli(*args) -> dict:
    done = subprocess.run([sys.executable, "-m", "tlcli", *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"tlcli {' '.join(map(str, args[:2]))} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def finetune(out: Path, reuse: bool, *args) -> dict:
    """`tlcli finetune ... --out OUT`; with --reuse, a finished run already in OUT is read back instead (the
    data and every seed are the same from call to call, so it is the run this call would make)."""
    if reuse and (out / "metrics.json").is_file():
        summary = json.loads((out / "metrics.json").read_text())
        if summary.get("status") == "finished":
            return summary
    return tlcli("finetune", *args, "--out", out)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def machine() -> str:
    """The CPU's model name (what the figures depend on), from /proc/cpuinfo where there is one."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} CPUs"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "work")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--shots", type=int, default=SHOTS, help=f"labelled images per digit (default {SHOTS})")
    parser.add_argument("--source", default="letters", choices=("letters", "digits"),
                        help="the source task: letters A-Z (default) or digits 0-4")
    parser.add_argument("--freeze-until", default=FREEZE, help=f"last frozen block when transferring ({FREEZE})")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs of both arms (default {EPOCHS})")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--data-only", action="store_true", help="write the image folders and stop")
    parser.add_argument("--reuse", action="store_true", help="read back finished runs of an earlier call in --work")
    parser.add_argument("--json", action="store_true", help="print one JSON line per seed, then the summary")
    options = parser.parse_args()
    if not 1 <= options.shots <= POOL:
        parser.error(f"--shots must be 1..{POOL}")
    started = time.time()
    work, runs = options.work, options.work / "runs"
    work.mkdir(parents=True, exist_ok=True)
    print(f"writing images into {work}: source/ ({options.source}), target_pool/ and target_test/ (digits 5-9)",
          file=sys.stderr)
    data = write_data(work, options.source)
    if options.data_only:
        return
    # --workers 0: on a small shared machine a loader process only waits for the scheduler (results are the
    # same with any number of workers).
    common = ["--model", "resnet18", "--image-size", SIZE, "--precision", options.precision, "--workers", 0,
              "--quiet", "--json", "--overwrite"]

    print(f"source: ResNet-18 from random init on {options.source} ({options.precision})", file=sys.stderr)
    source_run = runs / f"source-{options.source}-{options.precision}"
    source = finetune(source_run, options.reuse, data["source"], *common, "--pretrained", "none",
                      "--augment", "none", "--epochs", SOURCE_EPOCHS, "--batch-size", 64, "--lr", 2e-3,
                      "--val-split", 0.1)
    print(f"    source validation accuracy {source['best']['value']:.3f}", file=sys.stderr)

    arms = {"transfer": ["--weights", source_run / "model", "--freeze-until", options.freeze_until],
            "scratch": ["--pretrained", "none"]}
    budget = ["--epochs", options.epochs, "--batch-size", 16, "--val-split", 0, "--lr", LR, "--augment", "none"]
    rows = []
    for seed in range(options.seeds):
        manifest = work / f"labelled-seed{seed}.csv"
        labelled = draw_labelled(data["target_pool"], options.shots, seed, manifest)
        row = {"seed": seed, "labelled": labelled}
        for arm, flags in arms.items():
            setting = f"{options.shots}shot-{options.epochs}ep-{options.precision}"
            if arm == "transfer":
                setting = f"{options.source}-{options.freeze_until}-{setting}"
            out = runs / f"{arm}-{setting}-seed{seed}"
            summary = finetune(out, options.reuse, manifest, *common, *budget, *flags, "--seed", seed)
            report = tlcli("evaluate", out, data["target_test"], "--json")
            row[arm] = round(report["metrics"]["accuracy"], 4)
            row[f"{arm}_trainable_params"] = summary["trainable_params"]
            row["test_images"] = report["n"]
        rows.append(row)
        print(f"    seed {seed}: transfer {row['transfer']:.3f}  scratch {row['scratch']:.3f}", file=sys.stderr)

    transfer, scratch = mean_std([r["transfer"] for r in rows]), mean_std([r["scratch"] for r in rows])
    summary = {"transfer_mean": round(transfer[0], 4), "transfer_std": round(transfer[1], 4),
               "scratch_mean": round(scratch[0], 4), "scratch_std": round(scratch[1], 4),
               "transfer_wins": sum(r["transfer"] > r["scratch"] for r in rows), "seeds": len(rows),
               "source": options.source, "source_val_accuracy": source["best"]["value"], "shots": options.shots,
               "freeze_until": options.freeze_until, "epochs": options.epochs, "precision": options.precision,
               "test_images": rows[0]["test_images"],
               "transfer_trainable_params": rows[0]["transfer_trainable_params"],
               "scratch_trainable_params": rows[0]["scratch_trainable_params"],
               "machine": machine(), "wall_s": round(time.time() - started)}
    results = json.dumps({"summary": summary, "seeds": rows}, indent=1)
    (work / f"results-{options.precision}.json").write_text(results + "\n")
    if options.json:
        for row in rows:
            print(json.dumps(row))
        print(json.dumps(summary))
        return
    print(f"\nDigits 5-9, {options.shots} labels per class, tested on {summary['test_images']} held-out digits; "
          f"{options.precision}, {len(rows)} seeds")
    print(f"{'seed':>4} {'transfer':>9} {'scratch':>9}")
    for row in rows:
        print(f"{row['seed']:>4} {row['transfer']:>9.3f} {row['scratch']:>9.3f}")
    print(f"\n{'method':<58} {'test accuracy':>15} {'trainable':>12}")
    print(f"{f'transfer from {options.source} (--weights, --freeze-until {options.freeze_until})':<58} "
          f"{transfer[0]:>7.3f} ± {transfer[1]:.3f} {summary['transfer_trainable_params']:>12,}")
    print(f"{'from scratch, the same images and budget':<58} "
          f"{scratch[0]:>7.3f} ± {scratch[1]:.3f} {summary['scratch_trainable_params']:>12,}")
    print(f"transfer beat scratch on {summary['transfer_wins']} of {len(rows)} seeds (mean ± sample std); "
          f"{summary['wall_s']} s in all on {summary['machine']}; run folders in {runs}")


if __name__ == "__main__":
    main()
