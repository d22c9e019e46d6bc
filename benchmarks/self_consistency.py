"""Self-consistency n=5: one batched generate call vs 5 sequential calls, on the tiny local model.

Builds the random-weight tiny GPT-2 (tlcli.llm.tiny) in a temporary folder, loads it through ``hf:DIR``
and times, in the same run, for the same prompts and token budget:

  batched:    llm.generate(prompts, n=5)                  one model.generate, num_return_sequences=5
  sequential: 5 x llm.generate(prompts, n=1)              what a naive self-consistency loop does

Reports the median of several repeats and the ratio sequential / batched (> 1: batching is faster).
Run: .venv/bin/python benchmarks/self_consistency.py [--questions 8] [--max-tokens 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared box)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from tlcli.llm import resolve_llm
    from tlcli.llm.tiny import build_tiny_causal_lm

    torch.set_num_threads(args.threads)
    prompts = [f"Q: Tom has {i} apples and buys {i + 2} more. How many apples?\nA: Let's think step by step."
               for i in range(args.questions)]
    options = dict(temperature=0.7, max_tokens=args.max_tokens)
    with tempfile.TemporaryDirectory() as folder:
        llm = resolve_llm(f"hf:{build_tiny_causal_lm(folder)}?batch_size={args.questions}")

        def batched():
            return llm.generate(prompts, n=args.n, seed=0, **options)

        def sequential():
            return [llm.generate(prompts, n=1, seed=s, **options) for s in range(args.n)]

        batched(), sequential()  # warm-up: allocator, kernels
        times = {"batched": [], "sequential": []}
        tokens = {}
        for _ in range(args.repeats):
            for name, fn in (("batched", batched), ("sequential", sequential)):
                start = time.perf_counter()
                out = fn()
                times[name].append(time.perf_counter() - start)
                gens = out if name == "batched" else [g for call in out for g in call]
                tokens[name] = sum(sum(g.completion_tokens) for g in gens)
    result = {
        "device": llm.device, "threads": args.threads, "questions": args.questions, "n": args.n,
        "max_tokens": args.max_tokens, "repeats": args.repeats,
        "batched_s": round(statistics.median(times["batched"]), 4),
        "sequential_s": round(statistics.median(times["sequential"]), 4),
        "tokens": tokens,
    }
    result["ratio_sequential_over_batched"] = round(result["sequential_s"] / result["batched_s"], 2)
    if args.json:
        print(json.dumps(result))
        return
    print(f"self-consistency n={args.n}, {args.questions} questions x {args.max_tokens} tokens, tiny GPT-2 on "
          f"{result['device']} ({args.threads} thread(s)), median of {args.repeats}:")
    print(f"  one batched call   {result['batched_s']:.3f} s   ({tokens['batched']} tokens)")
    print(f"  {args.n} sequential calls {result['sequential_s']:.3f} s   ({tokens['sequential']} tokens)")
    print(f"  ratio sequential / batched: {result['ratio_sequential_over_batched']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
