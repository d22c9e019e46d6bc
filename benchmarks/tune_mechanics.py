"""`tlcli sft` and `tlcli dpo` end to end, offline, on tlcli.llm.tiny (a random 2-layer GPT-2 with a real
tokenizer): the mechanics work: they are not a language model's skill.

1. SFT teaches a task the random model cannot do: "repeat: w1 w2 w3" answered "w1 w2 w3", three words drawn
   from a 300-word list, in either of two styles (half the training answers end with a full stop, "w1 w2 w3.",
   half do not). Held-out questions are word triples that never occur in training, so a model that only
   memorised its training answers scores nothing; exact match of the greedy reply (either style) through
   ``--llm hf:RUN`` (tlcli's hf backend, as every command loads a tuned model), before (the random model,
   prompted with the same template) and after.
2. DPO on the SFT model, with LoRA (the reference is the SFT model: its adapters switched off), on pairs that
   prefer one of the two styles the SFT model has: chosen "w1 w2 w3" (no full stop), rejected "w1 w2 w3.".
   Measured on held-out triples, before and after: the share of pairs the policy prefers
   (log p(chosen) > log p(rejected)), DPO's reward accuracy (after; before it is 0 by definition, the policy
   being its reference), the share of greedy replies in the preferred style (the bare words), and the share
   still repeating the right words (either style).

   (Preferring the full stop instead, in a trial, made DPO push the end-of-text token down after the words
   without raising the full stop enough: the replies stopped ending. DPO lowers the rejected reply's
   likelihood more readily than it raises the chosen one's; this direction asks it to raise end-of-text.)

Every step runs the real command line (``python -m tlcli``) in a fresh process; --seeds repeats it all with
another tiny model and another data order. Prints a table (or --json) and the CPU.

Run: .venv/bin/python benchmarks/tune_mechanics.py [--seeds 0,1,2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "benchmarks"))

WORDS = 300
TRAIN, HELD_OUT, PAIRS = 2400, 100, 600


def vocabulary(tokenizer) -> list[str]:
    """Whole words of the WordPiece vocabulary (one token each), a fixed draw."""
    words = sorted(w for w, i in tokenizer.get_vocab().items() if 2000 <= i < 8000 and w.isalpha() and len(w) >= 4)
    random.Random(0).shuffle(words)
    return words[:WORDS]


def triples(words: list[str], seed: int) -> tuple[list[str], list[str]]:
    """(training triples, held-out triples): no held-out triple occurs in training."""
    rng = random.Random(seed)
    held = set()
    while len(held) < HELD_OUT:
        held.add(" ".join(rng.sample(words, 3)))
    train = []
    while len(train) < TRAIN:
        triple = " ".join(rng.sample(words, 3))
        if triple not in held:
            train.append(triple)
    return train, sorted(held)


def question(triple: str) -> str:
    return f"repeat: {triple}"


def stopped(triple: str) -> str:
    """The other answer style SFT teaches (half its examples): a full stop before the end."""
    return f"{triple}."


def preferred(triple: str) -> str:
    """The answer style DPO is taught to prefer: the bare words."""
    return triple


def rejected(triple: str) -> str:
    return stopped(triple)


def in_style(reply: str) -> bool:
    return not reply.endswith(".")


def correct(reply: str, triple: str) -> bool:
    """Exact match in either style."""
    return reply in (triple, stopped(triple))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tlcli(*args) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}", "TLCLI_PLUGINS": "tune"}
    done = subprocess.run([sys.executable, "-m", "tlcli", *map(str, args), "--json", "--quiet"], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"tlcli {' '.join(map(str, args[:2]))} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def replies(model: Path, triples_: list[str]) -> list[str]:
    """Greedy replies through tlcli's hf backend (what --llm hf:RUN gives every command)."""
    from tlcli.llm import resolve_llm

    llm = resolve_llm(f"hf:{model}?device=cpu&batch_size=50")
    return [g.texts[0].strip() for g in llm.generate([question(t) for t in triples_], max_tokens=10)]


def preferences(model: Path, triples_: list[str]) -> float:
    """Share of held-out pairs with log p(chosen) > log p(rejected) under ``model``."""
    import torch

    from tlcli_tune.chat import ChatFormat, prepare_tokenizer
    from tlcli_tune.data import Pair
    from tlcli_tune.model import TunedLM, load_model, row_sums
    from tlcli_tune.task import collate_pairs

    loaded = load_model(str(model))
    prepare_tokenizer(loaded.tokenizer, loaded.model.config)
    fmt = ChatFormat(loaded.tokenizer)
    rows = [fmt.pair(Pair([{"role": "user", "content": question(t)}], [{"role": "assistant", "content": preferred(t)}],
                          [{"role": "assistant", "content": rejected(t)}])) for t in triples_]
    batch = collate_pairs([(*r, torch.zeros(2)) for r in rows], loaded.tokenizer.pad_token_id)
    with torch.inference_mode():
        lm = TunedLM(loaded.model).eval()
        sums, _ = row_sums(lm(input_ids=batch["input_ids"], labels=batch["labels"],
                              attention_mask=batch["attention_mask"]), batch["labels"])
    n = len(rows)
    return float((sums[:n] > sums[n:]).float().mean())


def with_plain_template(source: Path, out: Path) -> Path:
    """The random model as `tlcli sft` sees it at step 0: the same weights, the plain template written in (so
    "before" is prompted exactly like "after")."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tlcli_tune.chat import prepare_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    prepare_tokenizer(tokenizer, AutoConfig.from_pretrained(source))
    AutoModelForCausalLM.from_pretrained(source).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def one_seed(seed: int, work: Path, dpo_lr: float = 5e-4, sft_weight: float = 0.0) -> dict:
    from transformers import AutoTokenizer

    from tlcli.llm.tiny import build_tiny_causal_lm

    tiny = build_tiny_causal_lm(work / f"tiny-{seed}", seed=seed)
    words = vocabulary(AutoTokenizer.from_pretrained(tiny))
    train, held = triples(words, seed)
    styles = random.Random(seed + 50)
    data = write_jsonl(work / f"sft-{seed}.jsonl", [{"prompt": question(t), "completion": stopped(t)
                                                     if styles.random() < 0.5 else t} for t in train])
    before_model = with_plain_template(tiny, work / f"tiny-{seed}-template")
    before = sum(correct(r, t) for r, t in zip(replies(before_model, held), held)) / len(held)
    started = time.time()
    sft = tlcli("sft", data, "--model", tiny, "--epochs", "4", "--batch-size", "16", "--lr", "3e-3", "--seed", seed,
                "--scheduler", "cosine", "--warmup", "0.1",
                "--precision", "fp32", "--device", "cpu", "--val-split", "0.05", "--out", work / f"sft-run-{seed}")
    sft_s = time.time() - started
    sft_run = work / f"sft-run-{seed}"
    after_replies = replies(sft_run, held)
    after = sum(correct(r, t) for r, t in zip(after_replies, held)) / len(held)

    rng = random.Random(seed + 100)
    pair_rows = [{"prompt": question(t), "chosen": preferred(t), "rejected": rejected(t)} for t in rng.sample(train, PAIRS)]
    pairs = write_jsonl(work / f"pairs-{seed}.jsonl", pair_rows)
    val = write_jsonl(work / f"pairs-held-{seed}.jsonl",
                      [{"prompt": question(t), "chosen": preferred(t), "rejected": rejected(t)} for t in held])
    prefer_before = preferences(sft_run, held)
    style_before = sum(in_style(r) for r in after_replies) / len(held)
    started = time.time()
    dpo = tlcli("dpo", pairs, "--model", sft_run, "--val", val, "--lora", "8", "--lr", dpo_lr, "--beta", "0.1",
                "--sft-weight", sft_weight, "--epochs", "1", "--batch-size", "8", "--seed", seed, "--precision",
                "fp32", "--device", "cpu", "--out", work / f"dpo-run-{seed}")
    dpo_s = time.time() - started
    dpo_run = work / f"dpo-run-{seed}"
    dpo_replies = replies(dpo_run, held)
    return {
        "seed": seed,
        "sft": {"exact_match_before": before, "exact_match_after": after, "steps": sft["steps"],
                "val_loss": sft["metrics"]["val_loss"], "val_perplexity": sft["metrics"]["val_perplexity"],
                "seconds": round(sft_s, 1), "example": {"question": question(held[0]), "reply": after_replies[0]}},
        "dpo": {"prefers_chosen_before": prefer_before, "prefers_chosen_after": preferences(dpo_run, held),
                "reward_accuracy_before": 0.0, "reward_accuracy_after": dpo["metrics"]["val_reward_accuracy"],
                "reward_margin_after": dpo["metrics"]["val_reward_margin"],
                "preferred_style_before": style_before,
                "preferred_style_after": sum(in_style(r) for r in dpo_replies) / len(held),
                "still_correct_before": sum(correct(r, t) for r, t in zip(after_replies, held)) / len(held),
                "still_correct_after": sum(correct(r, t) for r, t in zip(dpo_replies, held)) / len(held),
                "steps": dpo["steps"], "seconds": round(dpo_s, 1), "reference": dpo["reference"],
                "example": {"question": question(held[0]), "reply": dpo_replies[0]}},
    }


def main() -> None:
    from sft import cpu_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--dpo-lr", type=float, default=5e-4)
    parser.add_argument("--sft-weight", type=float, default=0.0, help="tlcli dpo --sft-weight")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in options.seeds.split(",")]:
            results.append(one_seed(seed, Path(tmp), options.dpo_lr, options.sft_weight))
            if not options.json:
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    keys = [("sft", "exact_match_before"), ("sft", "exact_match_after"), ("dpo", "prefers_chosen_before"),
            ("dpo", "prefers_chosen_after"), ("dpo", "reward_accuracy_after"), ("dpo", "preferred_style_before"),
            ("dpo", "preferred_style_after"), ("dpo", "still_correct_before"), ("dpo", "still_correct_after")]
    means = {f"{a}.{b}": round(statistics.mean(r[a][b] for r in results), 3) for a, b in keys}
    summary = {"cpu": cpu_name(), "seeds": results, "mean": means}
    if options.json:
        print(json.dumps(summary))
        return
    print(f"CPU: {summary['cpu']}")
    for name, value in means.items():
        print(f"{name:<32} {value:.3f}   per seed: {[r[name.split('.')[0]][name.split('.')[1]] for r in results]}")


if __name__ == "__main__":
    main()
