"""Regenerate docs/dashboard.svg: the run screen of `tlcli monitor` over a realistic, made-up fine-tuning log.

    .venv/bin/python docs/make_screenshot.py

The log is written to a temporary folder (a ResNet-50 fine-tuned on 10 flower classes, heads first, then
layer4 and layer3 unfrozen); the run reads as live because this process is its writer.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import socket
import tempfile
import time
from pathlib import Path

from tlcli.tui.app import build_monitor_app

SIZE = (110, 34)
BLOCKS = [("conv1", 9408), ("bn1", 128), ("layer1", 215808), ("layer2", 1219584), ("layer3", 7098368),
          ("layer4", 14964736), ("fc", 20490)]
TOTAL_STEPS, STEPS_PER_EPOCH, DONE = 2000, 200, 1240
UNFREEZE = {400: "layer4", 800: "layer3"}


def write_log(run_dir: Path) -> None:
    rng = random.Random(7)
    now = time.time()
    start = now - DONE * 0.62 - 40

    def line(kind, data, step=0, epoch=0.0, at=None):
        return json.dumps({"time": round(at if at is not None else start + 40 + step * 0.62, 3),
                           "run": run_dir.name, "kind": kind, "step": step, "epoch": epoch, "data": data})

    def blocks(trainable):
        return [{"name": n, "params": p, "trainable": n in trainable} for n, p in BLOCKS]

    trainable = {"fc"}
    lines = [line("run_start", {
        "command": "finetune", "plugin": "finetune", "model": "resnet50.a1_in1k", "device": "cuda:0",
        "precision": "bf16", "config": {}, "pid": os.getpid(), "host": socket.gethostname(),
        "params": {"trainable": 20490, "total": sum(p for _, p in BLOCKS)}, "blocks": blocks(trainable),
        "total_steps": TOTAL_STEPS, "epochs": 10, "train_samples": 6400, "val_samples": 800,
        "resumed_from": None}, at=start)]
    lines.append(line("log", {"level": "warning", "message": "skipped 3 unreadable files (see --max-bad)"},
                      at=start + 30))
    best = 0.0
    for step in range(5, DONE + 1, 5):
        epoch = step / STEPS_PER_EPOCH
        loss = 2.3 * math.exp(-step / 260) + 0.18 + 0.05 * math.exp(-step / 900) * rng.gauss(0, 1) * 2
        if step > 800:
            loss -= 0.04 * (1 - math.exp(-(step - 800) / 200))
        head_lr = 1e-3 * min(1.0, step / 100) * 0.5 * (1 + math.cos(math.pi * step / TOTAL_STEPS))
        lr = {"head": head_lr}
        if "layer4" in trainable:
            lr["layer4"] = head_lr / 10
        if "layer3" in trainable:
            lr["layer3"] = head_lr / 100
        lines.append(line("metric", {"loss": round(max(loss, 0.05), 4), "lr": lr,
                                     "samples_per_s": round(rng.gauss(612, 14), 1),
                                     "data_wait": round(abs(rng.gauss(0.08, 0.02)), 3), "epoch_progress": epoch,
                                     "memory": {"rss_mb": 3180.0 + step * 0.1, "gpu_mb": 7420.0}},
                          step=step, epoch=round(epoch, 3)))
        if step in UNFREEZE:
            trainable.add(UNFREEZE[step])
            lines.append(line("layers", {"blocks": blocks(trainable), "reason": "unfreeze",
                                         "unfrozen": [UNFREEZE[step]]}, step=step, epoch=epoch))
        if step % STEPS_PER_EPOCH == 0:
            accuracy = round(0.93 - 0.5 * math.exp(-step / 330) + rng.gauss(0, 0.006), 4)
            is_best = accuracy > best
            best = max(best, accuracy)
            lines.append(line("eval", {"metrics": {"val_loss": round(1.25 - accuracy, 4), "val_accuracy": accuracy},
                                       "monitor": "val_accuracy", "best": best, "is_best": is_best},
                              step=step, epoch=epoch))
            if is_best:
                lines.append(line("checkpoint", {"path": "checkpoints/best", "kind": "best"}, step=step,
                                  epoch=epoch))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


async def screenshot(run_dir: Path, out: Path) -> None:
    app = build_monitor_app(run_dir)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.screen.run is not None and app.screen.run.step == DONE:
                break
        await pilot.pause(0.3)
        app.save_screenshot(out.name, path=str(out.parent))


def main() -> None:
    out = Path(__file__).resolve().parent / "dashboard.svg"
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "finetune-flowers"
        write_log(run_dir)
        asyncio.run(screenshot(run_dir, out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
