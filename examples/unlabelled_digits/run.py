"""Learning from unlabelled images, measured offline on scikit-learn's digits (8x8, upscaled).

Three experiments, every step through the tlcli command line as a user would run it:

1. Self-supervised pretraining. Each pretext task (rotation, jigsaw, simclr, mae) pretrains a backbone on
   the unlabelled pool; then fine-tuning with 5 labels per class. Compared with the same fine-tuning from
   scratch and from supervised pretraining on the pool's labels: the share of the scratch -> supervised
   gap each task closes (the table shape of RotNet's paper).
2. Pseudo-labelling rounds (`tlcli pseudolabel`) from the 5-labels-per-class model, against that
   labelled-only model.
3. DANN on an MNIST-M-like shift: the target domain is the same kind of digits blended with patches of
   scikit-image's colour photos (|patch - digit|, MNIST-M's recipe). Source-only vs `--domain-adapt` vs
   trained on labelled target images, 3 seeds each.

Splits (seeded): test 60 per class, validation 10 per class, labelled 5 per class; the rest is the
unlabelled pool (its labels are used only by the supervised-pretraining upper bound and to report the
pseudo-labels' accuracy). Every accuracy in the tables is on the test images.

Usage: python examples/unlabelled_digits/run.py [--quick] [--work DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

TASKS = ("rotation", "jigsaw", "simclr", "mae")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


class Settings:
    def __init__(self, quick: bool):
        self.quick = quick
        self.size = 24
        self.model = "timm:test_resnet"
        # Step budgets, not epochs: the tables were measured on a 2-core machine shared with other work.
        self.pretrain_epochs = 1 if quick else 10
        self.pretrain_steps = {task: 3 for task in TASKS} if quick else {
            "rotation": 100, "jigsaw": 200, "simclr": 150, "mae": 300, "supervised": 300}
        self.pretrain_batch = 32
        self.finetune_epochs = 3 if quick else 30  # 4 steps of 16 per epoch on 50 images
        self.start_epochs = 3 if quick else 60  # the pseudo-labelling start: 2 steps of 25 per epoch
        self.rounds = 1 if quick else 3
        self.round_epochs = 1 if quick else 10
        self.round_steps = 4 if quick else 100
        self.dann_epochs = 1 if quick else 10
        self.dann_steps = 4 if quick else 300
        self.seeds = (1,) if quick else (1, 2, 3)
        self.source_per_class = 20 if quick else 60

    def common(self, model: bool = True) -> list[str]:
        chosen = ["--model", self.model] if model else []
        # --workers 0: on a busy machine a loader process waits for the scheduler at every batch
        return [*chosen, "--image-size", str(self.size), "--precision", "fp32", "--workers", "0", "--quiet",
                "--json"]


def digit_image(pixels):
    import numpy as np
    from PIL import Image

    grey = (pixels * (255 / 16)).astype(np.uint8)
    return Image.fromarray(grey, mode="L").resize((32, 32), Image.BILINEAR).convert("RGB")


def colour_patches(rng, count: int):
    """MNIST-M's target domain: random 32x32 patches of colour photos (downscaled by 4, so a patch holds
    texture rather than one flat colour)."""
    import numpy as np
    from PIL import Image
    from skimage import data as photos

    sources = []
    for name in PHOTOS:
        image = Image.fromarray(getattr(photos, name)()).convert("RGB")
        sources.append(np.asarray(image.resize((image.width // 4, image.height // 4), Image.BILINEAR)))
    out = []
    for _ in range(count):
        photo = sources[rng.integers(len(sources))]
        top, left = rng.integers(photo.shape[0] - 32), rng.integers(photo.shape[1] - 32)
        out.append(photo[top:top + 32, left:left + 32].astype(np.int16))
    return out


def write_data(work: Path, settings: Settings) -> dict[str, Path]:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    names = ("test", "val", "labelled", "pool", "source", "target_pool", "target_train", "target_test")
    folders = {name: work / "data" / name for name in names}
    marker = work / "data" / ".complete"
    if marker.exists() and marker.read_text() == ("quick" if settings.quick else "full"):
        return folders  # the same seeded data (so experiments may run in parallel processes)
    shutil.rmtree(work / "data", ignore_errors=True)
    order = rng.permutation(len(digits.images))
    patches = colour_patches(rng, 2 * len(order))
    seen: dict[int, int] = {}
    for n, index in enumerate(order):
        label = int(digits.target[index])
        seen[label] = seen.get(label, 0) + 1
        rank = seen[label]
        split = "test" if rank <= 60 else "val" if rank <= 70 else "labelled" if rank <= 75 else "pool"
        image = digit_image(digits.images[index])
        targets = []
        if split == "test":
            targets = ["target_test"]
        elif split == "pool":
            targets = ["target_pool", "target_train"]
        splits = [split] + (["source"] if split != "test" and rank - 60 <= settings.source_per_class else [])
        for name in splits:
            save(image, folders[name] / f"digit_{label}" / f"{index:04d}.png")
        for k, name in enumerate(targets):
            blended = np.abs(patches[2 * n + k] - np.asarray(image, dtype=np.int16)).astype(np.uint8)
            save(Image.fromarray(blended), folders[name] / f"digit_{label}" / f"{index:04d}.png")
    if settings.quick:  # a tenth of the pool: the point is to run every step, not to measure
        for name in ("pool", "target_pool", "target_train"):
            for folder in folders[name].iterdir():
                for extra in sorted(folder.iterdir())[12:]:
                    extra.unlink()
    marker.write_text("quick" if settings.quick else "full")
    return folders


def save(image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def tlcli(*args) -> dict:
    """``tlcli ARGS --json`` run in this process (the same entry point as the shell command; torch is
    imported once instead of once per command) and its last JSON line."""
    import contextlib
    import io

    from tlcli.cli import main as tlcli_main

    started = time.time()
    captured = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(captured):
        try:
            tlcli_main([str(a) for a in args])
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    if code != 0:
        sys.exit(f"tlcli {' '.join(map(str, args))} failed with exit code {code}")
    result = json.loads(captured.getvalue().strip().splitlines()[-1])
    result["_wall_s"] = round(time.time() - started, 1)
    return result


def test_accuracy(run: Path, test: Path) -> float:
    return tlcli("evaluate", run, test, "--json")["metrics"]["accuracy"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pretext_experiment(s: Settings, data: dict, runs: Path) -> list[dict]:
    finetune = finetune_args(s)
    rows = []
    log("scratch: fine-tuning on 5 labels per class from random weights")
    tlcli("finetune", data["labelled"], "--pretrained", "none", *finetune, "--out", runs / "ft-scratch")
    rows.append({"start": "scratch (random init)", "pretext_s": 0.0, "knn_on_labelled": None,
                 "test_accuracy": test_accuracy(runs / "ft-scratch", data["test"])})
    for task in TASKS:
        log(f"{task}: pretraining on {count(data['pool'])} unlabelled images, then fine-tuning")
        pre = tlcli("pretrain", data["pool"], "--task", task, "--val", data["labelled"], "--epochs",
                    str(s.pretrain_epochs), "--max-steps", str(s.pretrain_steps[task]), "--batch-size",
                    str(s.pretrain_batch), "--lr", "2e-3", *s.common(),
                    "--out", runs / f"pre-{task}")
        tlcli("finetune", data["labelled"], "--weights", runs / f"pre-{task}", *finetune, "--out", runs / f"ft-{task}")
        rows.append({"start": f"pretrain --task {task}", "pretext_s": pre["wall_s"],
                     "knn_on_labelled": pre["best"]["value"],
                     "test_accuracy": test_accuracy(runs / f"ft-{task}", data["test"])})
    log("supervised pretraining on the pool's labels (the upper bound), then fine-tuning")
    sup = tlcli("finetune", data["pool"], "--pretrained", "none", "--val-split", "0", "--epochs",
                str(s.pretrain_epochs), "--max-steps", str(s.pretrain_steps.get("supervised", 3)), "--batch-size",
                str(s.pretrain_batch), "--lr", "2e-3", *s.common(),
                "--out", runs / "pre-supervised")
    tlcli("finetune", data["labelled"], "--weights", runs / "pre-supervised", *finetune, "--out",
          runs / "ft-supervised")
    rows.append({"start": "supervised pretraining (pool labels)", "pretext_s": sup["wall_s"], "knn_on_labelled": None,
                 "test_accuracy": test_accuracy(runs / "ft-supervised", data["test"])})
    scratch, supervised = rows[0]["test_accuracy"], rows[-1]["test_accuracy"]
    for row in rows:
        gap = supervised - scratch
        row["gap_closed"] = round((row["test_accuracy"] - scratch) / gap, 3) if gap > 0 else None
    return rows


def finetune_args(s: Settings) -> list[str]:
    """Fine-tuning on the 5 labels per class: every parameter trains (the backbones are small)."""
    return ["--val-split", "0", "--epochs", str(s.finetune_epochs), "--batch-size", "16", "--lr", "2e-3",
            "--augment", "light", "--seed", "0", *s.common()]


def pseudolabel_experiment(s: Settings, data: dict, runs: Path) -> list[dict]:
    steps = ["--max-steps", str(s.round_steps)] if s.round_steps else []
    log("pseudo-labelling: the labelled-only start (5 labels per class, random init)")
    start = finetune_args(s)
    start[start.index("--epochs") + 1], start[start.index("--batch-size") + 1] = str(s.start_epochs), "25"
    tlcli("finetune", data["labelled"], "--pretrained", "none", *start, "--out", runs / "pseudolabel-start")
    rows = []
    for augment in ("light", "strong"):  # strong: TrivialAugment, colour jitter, erasing (input noise only)
        out = runs / ("pseudolabel" if augment == "light" else f"pseudolabel-{augment}")
        log(f"pseudo-labelling: {s.rounds} rounds from the 5-labels-per-class model, --augment {augment}")
        summary = tlcli("pseudolabel", data["labelled"], "--unlabelled", data["pool"], "--from",
                        runs / "pseudolabel-start", "--val", data["val"], "--threshold", "0.9", "--rounds",
                        str(s.rounds), "--epochs", str(s.round_epochs), *steps, "--batch-size", "32", "--lr", "1e-3",
                        "--seed", "0", "--augment", augment, *s.common(model=False), "--out", out)
        for entry in summary["rounds"]:
            run = runs / "pseudolabel-start" if entry["round"] == 0 else out / "rounds" / f"round-{entry['round']}"
            rows.append({**entry, "augment": augment, "test_accuracy": test_accuracy(run, data["test"])})
    return rows


def dann_experiment(s: Settings, data: dict, runs: Path) -> list[dict]:
    steps = ["--max-steps", str(s.dann_steps)] if s.dann_steps else []
    common = ["--pretrained", "none", "--val-split", "0", "--epochs", str(s.dann_epochs), *steps, "--batch-size",
              "32", "--lr", "2e-3", "--augment", "light", *s.common()]
    seeds = ",".join(map(str, s.seeds))
    rows = []
    for name, args in (
        ("source only", [data["source"]]),
        ("DANN (--domain-adapt, --dann-weight 1)", [data["source"], "--domain-adapt", data["target_pool"]]),
        ("trained on labelled target", [data["target_train"]]),
    ):
        log(f"DANN experiment: {name}, seeds {seeds}")
        folder = runs / ("dann-" + name.split()[0].lower())
        tlcli("finetune", *args, *common, "--seeds", seeds, "--out", folder)
        values = [test_accuracy(folder / f"seed-{seed}", data["target_test"]) for seed in s.seeds]
        rows.append({"method": name, "target_test_accuracy": values, "mean": statistics.fmean(values),
                     "std": statistics.stdev(values) if len(values) > 1 else 0.0})
    return rows


def count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "work")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks every step runs (~1 minute)")
    parser.add_argument("--only", choices=("pretext", "pseudolabel", "dann", "data"), action="append",
                        help="run only these experiments (each may run in its own process, after --only data)")
    parser.add_argument("--json", action="store_true", help="print the tables as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a machine shared "
                        "with other work, two threads of these tiny models waited on each other ~10x longer)")
    options = parser.parse_args()
    import torch

    torch.set_num_threads(options.threads)
    settings = Settings(options.quick)
    work = options.work
    runs = work / "runs"
    only = set(options.only or ("pretext", "pseudolabel", "dann"))
    prefixes = {"pretext": ("ft-", "pre-"), "pseudolabel": ("pseudolabel",), "dann": ("dann-",), "data": ()}
    if not options.only:
        for name in prefixes:
            (work / f"results-{name}.json").unlink(missing_ok=True)
        shutil.rmtree(work / "data", ignore_errors=True)
    for name in only:  # a new measurement replaces the old runs of the same experiment
        for folder in runs.glob("*") if runs.is_dir() else []:
            if folder.name.startswith(prefixes[name]):
                shutil.rmtree(folder)
    started = time.time()
    log(f"writing digits into {work / 'data'}")
    data = write_data(work, settings)
    experiments = {"pretext": pretext_experiment, "pseudolabel": pseudolabel_experiment, "dann": dann_experiment}
    for name in ("pretext", "pseudolabel", "dann"):
        if name in only:
            begun = time.time()
            rows = experiments[name](settings, data, runs)
            (work / f"results-{name}.json").write_text(json.dumps(
                {"rows": rows, "wall_s": round(time.time() - begun, 1), "settings": vars(settings)}, indent=1))
    tables = {name: json.loads((work / f"results-{name}.json").read_text())["rows"]
              for name in experiments if (work / f"results-{name}.json").exists()}
    tables["wall_s"] = round(time.time() - started, 1)
    tables["quick"] = options.quick
    if options.json:
        print(json.dumps(tables))
        return
    report(tables, data)


def report(tables: dict, data: dict) -> None:
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    if "pretext" in tables:
        print(f"\n1. Pretraining on {count(data['pool'])} unlabelled digits, fine-tuning on 5 labels per class "
              f"({count(data['test'])} test images)")
        print(f"{'start':<38} {'kNN (labelled)':>14} {'test acc':>9} {'gap closed':>10} {'pretext s':>9}")
        for r in tables["pretext"]:
            print(f"{r['start']:<38} {fmt(r['knn_on_labelled']):>14} {fmt(r['test_accuracy']):>9} "
                  f"{fmt(r['gap_closed']):>10} {r['pretext_s']:>9.1f}")
    if "pseudolabel" in tables:
        print("\n2. Pseudo-labelling rounds (round 0 = labelled only)")
        print(f"{'augment':>7} {'round':>5} {'kept':>6} {'kept acc':>9} {'val acc':>8} {'test acc':>9}")
        for r in tables["pseudolabel"]:
            print(f"{r.get('augment', 'light'):>7} {r['round']:>5} {r['kept']:>6} {fmt(r['kept_accuracy']):>9} "
                  f"{fmt(r['val_accuracy']):>8} {fmt(r['test_accuracy']):>9}")
    if "dann" in tables:
        print(f"\n3. Digits -> colour-blended digits ({count(data['target_test'])} target test images)")
        print(f"{'method':<42} {'target test acc (mean ± std)':>28}  per seed")
        for r in tables["dann"]:
            print(f"{r['method']:<42} {r['mean']:>19.3f} ± {r['std']:.3f}  "
                  f"{', '.join(f'{v:.3f}' for v in r['target_test_accuracy'])}")
    print(f"\nwall time {tables['wall_s']:.0f} s")
    if tables.get("quick"):
        print("--quick runs every command with budgets of a few steps to show the mechanics: at these budgets "
              "the accuracies are near chance (0.10 for ten digits) and say nothing about the methods. "
              "Run without --quick for the README's tables.")


if __name__ == "__main__":
    main()
