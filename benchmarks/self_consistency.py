"""Self-consistency with n samples: one batched call against n sequential calls, on a local hf: model.

Builds a random-weight GPT-2 in a temporary folder (``--model tiny``: 2 layers, 64 wide, the 30k BERT
vocabulary; ``--model gpt2-small``: GPT-2 small's shape, 12 layers x 768, 50257-token vocabulary, 124M
parameters), loads it through ``hf:DIR`` and times, in the same run, for the same few-shot
chain-of-thought prompts and token budget:

  sequential: n x llm.generate(prompts, n=1)        what a naive self-consistency loop does
  expanded:   llm.generate(prompts, n) with share_prefill=false
              (num_return_sequences: the prompt is copied n times, then computed n times)
  shared:     llm.generate(prompts, n), the default  (one prefill, its KV cache expanded to n rows)

Reports the median of several repeats and the ratios sequential / batched (> 1: batching is faster).
Random weights: the texts are gibberish; the timings are what the shapes cost.
Run: .venv/bin/python benchmarks/self_consistency.py --model gpt2-small [--questions 2] [--max-tokens 32]
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

EXEMPLARS = [
    ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
     "How many clips did Natalia sell altogether in April and May?",
     "Natalia sold 48 / 2 = 24 clips in May. Natalia sold 48 + 24 = 72 clips altogether in April and May.", 72),
    ("Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
     "How much did she earn?",
     "Weng earns 12 / 60 = $0.2 per minute. Working 50 minutes, she earned 0.2 x 50 = $10.", 10),
    ("Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs. "
     "Her parents decided to give her $15 for that purpose, and her grandparents twice as much as her "
     "parents. How much more money does Betty need to buy the wallet?",
     "In the beginning, Betty has only 100 / 2 = $50. Betty's grandparents gave her 15 * 2 = $30. "
     "This means, Betty needs 100 - 50 - 30 - 15 = $5 more.", 5),
    ("James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?",
     "He writes each friend 3 * 2 = 6 pages a week. So he writes 6 * 2 = 12 pages every week. "
     "That means he writes 12 * 52 = 624 pages a year.", 624),
]


def few_shot_prompt(index: int) -> str:
    shots = "\n\n".join(f"Q: {q}\nA: {r} The answer is {a}." for q, r, a in EXEMPLARS)
    return (f"{shots}\n\nQ: Tom has {index + 3} apples and buys {index + 5} more. Then he gives away 2. "
            "How many apples does he have now?\nA:")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "gpt2-small"], default="tiny")
    parser.add_argument("--questions", type=int, default=None, help="default: 8 (tiny), 2 (gpt2-small)")
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=None, help="default: 64 (tiny), 32 (gpt2-small)")
    parser.add_argument("--repeats", type=int, default=None, help="default: 5 (tiny), 3 (gpt2-small)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared box)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    small = args.model == "gpt2-small"
    questions = args.questions or (2 if small else 8)
    max_tokens = args.max_tokens or (32 if small else 64)
    repeats = args.repeats or (3 if small else 5)

    import torch

    from tlcli.llm import resolve_llm
    from tlcli.llm.tiny import GPT2_SMALL, build_tiny_causal_lm

    torch.set_num_threads(args.threads)
    prompts = [few_shot_prompt(i) for i in range(questions)]
    options = dict(temperature=0.7, max_tokens=max_tokens)
    with tempfile.TemporaryDirectory() as folder:
        build_tiny_causal_lm(folder, **(GPT2_SMALL if small else {}))
        llm = resolve_llm(f"hf:{folder}?batch_size={questions}&device={args.device}&dtype=float32")
    shared_options, expanded_options = llm.options, llm.options.model_copy(update={"share_prefill": False})
    parameters = sum(p.numel() for p in llm.model.parameters())
    prompt_tokens = [len(ids) for ids in llm.tokenizer(prompts)["input_ids"]]

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def sequential():
        return [g for s in range(args.n) for g in llm.generate(prompts, n=1, seed=s, **options)]

    def expanded():
        llm.options = expanded_options
        try:
            return llm.generate(prompts, n=args.n, seed=0, **options)
        finally:
            llm.options = shared_options

    def shared():
        return llm.generate(prompts, n=args.n, seed=0, **options)

    runs = {"sequential": sequential, "expanded": expanded, "shared": shared}
    for fn in runs.values():  # warm-up: allocator, kernels
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    tokens: dict[str, int] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            sync()
            start = time.perf_counter()
            out = fn()
            sync()
            times[name].append(time.perf_counter() - start)
            tokens[name] = sum(sum(g.completion_tokens) for g in out)
    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "model": args.model, "parameters": parameters, "vocab": llm.model.config.vocab_size,
        "device": llm.device, "threads": args.threads, "questions": questions, "n": args.n,
        "prompt_tokens": prompt_tokens, "max_tokens": max_tokens, "repeats": repeats,
        **{f"{name}_s": round(value, 4) for name, value in median.items()},
        "tokens": tokens,
        "ratio_sequential_over_shared": round(median["sequential"] / median["shared"], 2),
        "ratio_sequential_over_expanded": round(median["sequential"] / median["expanded"], 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"self-consistency n={args.n}: {questions} few-shot questions ({prompt_tokens[0]} prompt tokens) x "
          f"{max_tokens} new tokens, random-weight {args.model} ({parameters / 1e6:.0f}M parameters, vocabulary "
          f"{result['vocab']}) on {result['device']} ({args.threads} thread(s)), median of {repeats}:")
    print(f"  {args.n} sequential calls              {median['sequential']:8.3f} s  ({tokens['sequential']} tokens)")
    print(f"  one call, prompt copied n times    {median['expanded']:8.3f} s  ({tokens['expanded']} tokens)  "
          f"{result['ratio_sequential_over_expanded']:.2f}x")
    print(f"  one call, shared prefill           {median['shared']:8.3f} s  ({tokens['shared']} tokens)  "
          f"{result['ratio_sequential_over_shared']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
