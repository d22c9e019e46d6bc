"""Fine-tuning throughput, measured in one run on this machine:

1. tlcli's training images/s against a plain PyTorch loop on the same model, data and precision (goal >= 0.95);
2. `--freeze-until layer3` against full fine-tuning (ResNet-50 @ 224).

Both sides are timed the same way: wall time between the end of the first optimizer step and the end of the
last, so start-up and the first (slow) step are excluded. Random weights (no downloads); generated JPEGs.
Usage: python benchmarks/finetune.py [--model resnet50] [--size 224] [--steps 8] [--batch-size 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_images(root: Path, per_class: int, size: int = 256) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(3):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            pixels[..., c] = pixels[..., c] // 2 + 127
            Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=90)
    return root


def plain_loop(data: Path, model_name: str, size: int, batch_size: int, steps: int, workers: int) -> float:
    """The loop a user would write by hand: ImageFolder, DataLoader, AdamW, bf16 autocast where tlcli uses it."""
    import torch
    import torchvision
    from torchvision import transforms as T

    from tlcli.engine.device import resolve_precision

    torch.manual_seed(0)
    precision = resolve_precision("auto", torch.device("cpu"))
    transform = T.Compose([T.RandomResizedCrop(size, scale=(0.35, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    dataset = torchvision.datasets.ImageFolder(str(data), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0)
    model = torchvision.models.get_model(model_name, num_classes=len(dataset.classes))
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    done, started = 0, None
    while done < steps:
        for images, labels in loader:
            images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = torch.nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            if done == 1:
                started = time.perf_counter()
            if done == steps:
                break
    return (steps - 1) * batch_size / (time.perf_counter() - started)


def tlcli_run(data: Path, out: Path, model: str, size: int, batch_size: int, steps: int, workers: int,
              extra: list[str]) -> float:
    args = [sys.executable, "-m", "tlcli", "finetune", str(data), "--model", model, "--pretrained", "none",
            "--image-size", str(size), "--batch-size", str(batch_size), "--max-steps", str(steps), "--epochs", "100",
            "--val-split", "0", "--workers", str(workers), "--lr", "1e-3", "--log-every", "1", "--quiet",
            "--out", str(out), *extra]
    env = {**os.environ, "TLCLI_PLUGINS": "finetune"}
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(done.stderr)
    metrics = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines() if '"metric"' in line]
    first, last = metrics[0], metrics[-1]
    return (last["step"] - first["step"]) * batch_size / (last["time"] - first["time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_images(tmp / "data", per_class=(options.steps * options.batch_size) // 3 + 8)
        common = (options.model, options.size, options.batch_size, options.steps, options.workers)
        print(f"plain PyTorch loop, {options.model} @ {options.size}", file=sys.stderr)
        plain = plain_loop(data, *[options.model, options.size, options.batch_size, options.steps, options.workers])
        print("tlcli finetune, full fine-tuning", file=sys.stderr)
        full = tlcli_run(data, tmp / "full", *common, [])
        print("tlcli finetune --freeze-until layer3", file=sys.stderr)
        frozen = tlcli_run(data, tmp / "frozen", *common, ["--freeze-until", "layer3"])
    rows = [
        {"measure": "plain PyTorch loop", "images_per_s": round(plain, 2)},
        {"measure": "tlcli finetune (full)", "images_per_s": round(full, 2), "ratio": round(full / plain, 2),
         "baseline": "plain loop", "goal": ">= 0.95"},
        {"measure": "tlcli finetune --freeze-until layer3", "images_per_s": round(frozen, 2),
         "ratio": round(frozen / full, 2), "baseline": "tlcli full fine-tuning"},
    ]
    if options.json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"{options.model} @ {options.size}px, batch {options.batch_size}, {options.steps} steps, CPU threads "
          f"{os.cpu_count()}")
    for row in rows:
        ratio = f"  x{row['ratio']:.2f} vs {row['baseline']}" if "ratio" in row else ""
        print(f"{row['measure']:<40} {row['images_per_s']:>8.2f} images/s{ratio}")


if __name__ == "__main__":
    main()
