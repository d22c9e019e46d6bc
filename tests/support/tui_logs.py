"""Event logs for the dashboard tests, written line by line as the engine would (see tlcli/runs/events.py)."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

START = 1_795_000_000.0  # a fixed moment, so times on screen are stable
# Above Linux's largest pid_max (2**22): no process can have it, so the writer reads as gone.
DEAD_PID = 4_194_999
BLOCKS = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
PARAMS = {"conv1": 9408, "bn1": 128, "layer1": 147968, "layer2": 525568, "layer3": 2099712,
          "layer4": 8393728, "fc": 5130}


def line(kind: str, data: dict, step: int = 0, epoch: float = 0, time: float = START, run: str = "ft") -> str:
    return json.dumps({"time": time, "run": run, "kind": kind, "step": step, "epoch": epoch, "data": data}) + "\n"


def blocks(trainable_from: str) -> list[dict]:
    first = BLOCKS.index(trainable_from)
    return [{"name": n, "params": PARAMS[n], "trainable": i >= first} for i, n in enumerate(BLOCKS)]


def run_start(pid: int = DEAD_PID, host: str | None = None, total_steps: int = 300, run: str = "ft",
              time: float = START) -> str:
    return line("run_start", {
        "command": "finetune", "plugin": "finetune", "model": "resnet18", "device": "cuda:0",
        "precision": "bf16", "config": {"lr": 0.001}, "pid": pid, "host": host or socket.gethostname(),
        "params": {"trainable": PARAMS["fc"], "total": sum(PARAMS.values())}, "blocks": blocks("fc"),
        "total_steps": total_steps, "epochs": 3, "train_samples": 3200, "val_samples": 400,
        "resumed_from": None,
    }, time=time, run=run)


def metric(step: int, total_steps: int = 300, loss: float | None = None, run: str = "ft") -> str:
    loss = 2.3 * math.exp(-step / 90) + 0.2 if loss is None else loss
    return line("metric", {
        "loss": round(loss, 4), "lr": {"head": 1e-3, "backbone": 1e-4}, "samples_per_s": 812.5,
        "data_wait": 0.12, "epoch_progress": step / 100, "memory": {"rss_mb": 2150.0, "gpu_mb": 5300.0},
    }, step=step, epoch=round(step / 100, 2), time=START + step * 0.5, run=run)


def evaluation(step: int, accuracy: float, best: float, is_best: bool, run: str = "ft") -> str:
    return line("eval", {"metrics": {"val_loss": round(1.5 - accuracy, 4), "val_accuracy": accuracy},
                         "monitor": "val_accuracy", "best": best, "is_best": is_best},
                step=step, epoch=step / 100, time=START + step * 0.5 + 0.2, run=run)


def unfreeze(step: int, trainable_from: str, unfrozen: list[str], run: str = "ft") -> str:
    return line("layers", {"blocks": blocks(trainable_from), "reason": "unfreeze", "unfrozen": unfrozen},
                step=step, epoch=step / 100, time=START + step * 0.5 + 0.1, run=run)


def finished_run(pid: int = DEAD_PID, run: str = "ft") -> str:
    """300 steps, 3 epochs; layer4 unfreezes at 100, layer3 at 200; best val_accuracy 0.91 at 300."""
    text = run_start(pid=pid, run=run)
    accuracies = {100: 0.72, 200: 0.86, 300: 0.91}
    best = 0.0
    for step in range(10, 301, 10):
        text += metric(step, run=run)
        if step in accuracies:
            best = max(best, accuracies[step])
            text += evaluation(step, accuracies[step], best, accuracies[step] == best, run=run)
            text += line("checkpoint", {"path": "checkpoints/best", "kind": "best"}, step=step,
                         time=START + step * 0.5 + 0.3, run=run)
        if step == 100:
            text += unfreeze(100, "layer4", ["layer4"], run=run)
        if step == 200:
            text += unfreeze(200, "layer3", ["layer3"], run=run)
    text += line("log", {"level": "warning", "message": "skipped 2 unreadable images"}, step=150,
                 time=START + 75, run=run)
    text += line("run_end", {"status": "finished", "best": 0.91, "monitor": "val_accuracy", "wall_s": 754.0,
                             "steps": 300, "error": None}, step=300, epoch=3, time=START + 754, run=run)
    return text


def crashed_run(run: str = "crashed") -> str:
    """A run whose writer died at step 120: no run_end, pid gone."""
    text = run_start(run=run)
    for step in range(10, 121, 10):
        text += metric(step, run=run)
    text += evaluation(100, 0.7, 0.7, True, run=run)
    return text


def write(path: Path, text: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "events.jsonl").write_text(text, encoding="utf-8")
    return path


def agent_run(run: str = "agents") -> str:
    """A plan-solve-critique run: a calculator call, a rejected answer, a revision, approval."""
    def message(step, data, t):
        return line("message", data, step=step, time=START + t, run=run)

    usage = lambda p, c: {"prompt_tokens": p, "completion_tokens": c}  # noqa: E731
    text = line("run_start", {"command": "agents solve", "plugin": "agents", "model": "scripted:demo.json",
                              "pid": DEAD_PID, "host": socket.gethostname()}, run=run)
    text += message(0, {"agent": "user", "role": "user", "content": "What is 17 * 23 + 4?"}, 0.1)
    text += message(1, {"agent": "planner", "role": "assistant", "content": "1. multiply 2. add 4",
                        "tool_calls": [], "usage": usage(120, 8)}, 1)
    text += message(2, {"agent": "solver", "role": "assistant", "content": "",
                        "tool_calls": [{"id": "c1", "name": "calculator", "arguments": '{"expression": "17*23"}'}],
                        "usage": usage(200, 12)}, 2)
    text += message(2, {"agent": "solver", "role": "tool", "tool_name": "calculator", "tool_call_id": "c1",
                        "content": "391", "ok": True}, 2.1)
    text += message(3, {"agent": "solver", "role": "assistant", "content": "The answer is 391.",
                        "tool_calls": [], "usage": usage(230, 6)}, 3)
    text += message(4, {"agent": "critic", "role": "assistant", "content": "The +4 is missing; revise.",
                        "tool_calls": [], "usage": usage(260, 7)}, 4)
    text += message(5, {"agent": "solver", "role": "assistant", "content": "The answer is 395.",
                        "tool_calls": [], "usage": usage(280, 6)}, 5)
    text += message(6, {"agent": "critic", "role": "assistant", "content": "APPROVE",
                        "tool_calls": [], "usage": usage(300, 1)}, 6)
    text += line("run_end", {"status": "finished", "wall_s": 7.0, "steps": 6, "error": None, "best": None,
                             "monitor": None}, step=6, time=START + 7, run=run)
    return text


def index_start(run: str = "index", pid: int = DEAD_PID, time: float = START) -> str:
    return line("run_start", {"command": "rag-index", "plugin": "rag", "pid": pid, "host": socket.gethostname(),
                              "config": {"paths": ["docs"]}, "index": ".tlcli-index"}, time=time, run=run)


def index_progress(files_done: int, chunks_done: int, files: int = 120, chunks: int = 2400,
                   chunks_per_s: float = 80.0, run: str = "index", time: float | None = None) -> str:
    """An `index` event in the current shape: files and chunks are the build's totals."""
    eta = (chunks - chunks_done) / chunks_per_s
    return line("index", {"files_done": files_done, "files": files, "chunks_done": chunks_done, "chunks": chunks,
                          "chunks_per_s": chunks_per_s, "eta_s": eta},
                time=START + 1 + chunks_done / chunks_per_s if time is None else time, run=run)


def index_run(ended: bool = True, run: str = "index") -> str:
    """A `rag index` build of 120 files (2,400 chunks) at 80 chunks/s: 40 files (800 chunks) done, then
    (``ended``) the rest and a finished run_end."""
    text = index_start(run=run) + index_progress(0, 0, run=run) + index_progress(40, 800, run=run)
    if ended:
        text += index_progress(120, 2400, run=run)
        text += line("run_end", {"status": "finished", "error": None}, time=START + 32, run=run)
    return text


def legacy_index_run(run: str = "index") -> str:
    """The `index` events `rag index` wrote before the current shape: stages, and during embedding
    ``chunks`` counts what is done (``chunks_total`` the total)."""
    text = index_start(run=run)
    text += line("index", {"stage": "hashed", "files": 12, "files_done": 12, "changed": 10, "removed": 1},
                 time=START + 1, run=run)
    text += line("index", {"stage": "chunked", "files": 10, "files_done": 10, "chunks": 300},
                 time=START + 2, run=run)
    text += line("index", {"stage": "embedding", "files": 10, "files_done": 4, "chunks": 120, "chunks_total": 300,
                           "chunks_per_s": 60.0}, time=START + 4, run=run)
    return text
