"""`tlcli sft` against a plain TRL ``SFTTrainer``: training tokens per second on the same model, data and
precision, and peak memory with and without LoRA.

The model is a random GPT-2 built from a config (--layers, --width; the bundled 30522-token WordPiece
tokenizer, tlcli.llm.tiny), saved once; the data are synthetic chats (a user turn of about 40 tokens, a
reply of about 20), the loss on the reply only (TRL: ``assistant_only_loss=True``; tlcli always), no packing,
batch --batch-size, --steps optimizer steps, AdamW, no evaluation, no gradient checkpointing.

Each measurement runs in a fresh Python process (so its peak RSS is its own): ``python -m tlcli sft`` as a
user runs it, and TRL's ``SFTTrainer(...).train()``. Tokens per second are each trainer's own count over its
own training loop: TRL's ``num_tokens`` (real tokens of its batches) over the time from ``on_train_begin`` to
``on_train_end``; tlcli's ``train_tokens_per_s`` (real tokens of the batches trained on, over the engine's loop
time). Both include fetching and collating batches. The whole process's wall time is given
too (model loading, tokenising, the export). Runs alternate tlcli, TRL, tlcli, TRL... (--repeats each); the
medians and their ratio are reported, with the CPU. On a machine shared with other work, ratios from one run
of this script are what to compare, not absolute figures.

Run: .venv/bin/python benchmarks/sft.py [--steps 30] [--repeats 3] [--precision fp32] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("the river stone light garden window paper music table yellow orange quiet number letter city "
         "morning winter summer bridge forest animal travel market doctor friend answer question simple").split()


def cpu_name() -> str:
    from tlcli.hardware import cpu_model

    return cpu_model() or platform.processor() or platform.machine()


def make_data(path: Path, examples: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for _ in range(examples):
            user = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 50)))
            reply = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 28)))
            handle.write(json.dumps({"messages": [{"role": "user", "content": user},
                                                  {"role": "assistant", "content": reply}]}) + "\n")


def make_model(folder: Path, layers: int, width: int) -> None:
    sys.path.insert(0, str(ROOT))
    from tlcli.llm.tiny import build_tiny_causal_lm

    build_tiny_causal_lm(folder, n_layer=layers, n_embd=width, n_head=max(1, width // 64), n_positions=256)


# --- the children: one measurement each --------------------------------------------------------------------

def child_tlcli(args: list[str]) -> dict:
    """`tlcli ARGS` in this process; its summary and this process's peak RSS."""
    import contextlib
    import io

    from tlcli.cli import main

    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        try:
            main(args)
        except SystemExit as done:
            if done.code not in (0, None):
                raise
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    return {"tokens_per_s": summary["train_tokens_per_s"], "steps": summary["steps"], "wall_s": time.perf_counter() - started,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_trl(model_dir: str, data: str, out: str, steps: int, batch: int, precision: str, lora: int | None) -> dict:
    started = time.perf_counter()
    import warnings

    import torch
    from datasets import Dataset
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    warnings.simplefilter("ignore")
    sys.path.insert(0, str(ROOT / "plugins"))
    from tlcli_tune.chat import prepare_tokenizer  # the same plain template (it has {% generation %} blocks)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prepare_tokenizer(tokenizer, AutoConfig.from_pretrained(model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = [json.loads(line) for line in open(data)]
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=lora, lora_alpha=2 * lora, target_modules=["c_attn", "c_proj", "c_fc"],
                                 fan_in_fan_out=True, lora_dropout=0.0)
    args = SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-4,
                     weight_decay=0.0, lr_scheduler_type="cosine", assistant_only_loss=True, max_length=None,
                     bf16=precision == "bf16", fp16=False, use_cpu=True, gradient_checkpointing=False,
                     logging_steps=10_000, save_strategy="no", report_to=[], disable_tqdm=True,
                     dataloader_num_workers=0, seed=0)
    from transformers import TrainerCallback

    class LoopTime(TrainerCallback):  # the training loop alone, as tlcli's figure (not the set-up before it)
        def on_train_begin(self, *args, **kwargs):
            self.begin = time.perf_counter()

        def on_train_end(self, *args, **kwargs):
            self.end = time.perf_counter()

    loop = LoopTime()
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[loop])
    output = trainer.train()
    trainer.save_model(out)  # tlcli exports its model too
    runtime = loop.end - loop.begin
    return {"tokens_per_s": trainer._total_train_tokens / runtime, "steps": output.global_step,
            "train_runtime_s": output.metrics["train_runtime"],
            "wall_s": time.perf_counter() - started,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(kind: str, payload: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}", "TLCLI_PLUGINS": "tune",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(payload)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(model_dir: Path, data: Path, work: Path, steps: int, batch: int, precision: str, lora: int | None,
            tool: str, index: int) -> dict:
    out = work / f"{tool}-{'lora' if lora else 'full'}-{index}"
    if tool == "tlcli":
        args = ["sft", str(data), "--model", str(model_dir), "--max-steps", str(steps), "--epochs", "1000",
                "--batch-size", str(batch), "--lr", "1e-4", "--precision", precision, "--device", "cpu",
                "--val-split", "0", "--out", str(out), "--overwrite", "--json", "--quiet"]
        if lora:
            args += ["--lora", str(lora)]
        return run_child("tlcli", {"args": args})
    return run_child("trl", {"model_dir": str(model_dir), "data": str(data), "out": str(out), "steps": steps,
                             "batch": batch, "precision": precision, "lora": lora})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--lora", type=int, default=8)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        kind, payload = options.child[0], json.loads(options.child[1])
        result = child_tlcli(payload["args"]) if kind == "tlcli" else child_trl(**payload)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, data = work / "model", work / "chats.jsonl"
        make_model(model_dir, options.layers, options.width)
        make_data(data, options.examples)
        results: dict[str, list[dict]] = {}
        for index in range(options.repeats):
            for lora in (None, options.lora):
                for tool in ("tlcli", "trl"):
                    key = f"{tool}-{'lora' if lora else 'full'}"
                    results.setdefault(key, []).append(measure(model_dir, data, work, options.steps,
                                                               options.batch_size, options.precision, lora, tool,
                                                               index))
                    if not options.json:
                        last = results[key][-1]
                        print(f"  {key} #{index}: {last['tokens_per_s']:.0f} tokens/s, peak RSS "
                              f"{last['peak_rss_mb']:.0f} MB, process {last['wall_s']:.1f}s", file=sys.stderr)

    def median(key: str, field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    table = {key: {"tokens_per_s": round(median(key, "tokens_per_s"), 1),
                   "peak_rss_mb": round(median(key, "peak_rss_mb"), 1), "process_s": round(median(key, "wall_s"), 2),
                   "steps": results[key][0]["steps"]} for key in results}
    summary = {
        "cpu": cpu_name(), "threads": __import__("torch").get_num_threads(), "precision": options.precision,
        "model": {"layers": options.layers, "width": options.width, "vocab": 30522}, "batch_size": options.batch_size,
        "steps": options.steps, "repeats": options.repeats, "lora_rank": options.lora, "runs": table,
        "speed_ratio_full": round(table["tlcli-full"]["tokens_per_s"] / table["trl-full"]["tokens_per_s"], 2),
        "speed_ratio_lora": round(table["tlcli-lora"]["tokens_per_s"] / table["trl-lora"]["tokens_per_s"], 2),
    }
    if options.json:
        print(json.dumps(summary))
        return
    print(f"CPU: {summary['cpu']} ({summary['threads']} threads), {options.precision}, GPT-2 {options.layers}x"
          f"{options.width}, batch {options.batch_size}, {options.steps} steps, median of {options.repeats}")
    print(f"{'run':<12} {'tokens/s':>10} {'peak RSS MB':>12} {'process s':>10}")
    for key, row in table.items():
        print(f"{key:<12} {row['tokens_per_s']:>10.0f} {row['peak_rss_mb']:>12.0f} {row['process_s']:>10.1f}")
    print(f"tlcli / TRL tokens/s: full {summary['speed_ratio_full']}x, LoRA {summary['speed_ratio_lora']}x")


if __name__ == "__main__":
    main()
