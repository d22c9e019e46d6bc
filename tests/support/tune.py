"""Helpers for the sft/dpo tests: tiny random GPT-2s from configs, examples, JSON Lines files."""

from __future__ import annotations

import json
from pathlib import Path


def gpt2(tokenizer, seed: int = 0, n_embd: int = 32):
    """A random GPT-2 without dropout (dropout would make two forwards differ)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=n_embd, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=tokenizer.cls_token_id,
                        eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(config)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


CHATS = [
    [{"role": "user", "content": "what is 12 + 34?"}, {"role": "assistant", "content": "46"}],
    [{"role": "system", "content": "answer in words"}, {"role": "user", "content": "two plus two"},
     {"role": "assistant", "content": "four"}],
    [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi, how can i help?"},
     {"role": "user", "content": "say bye"}, {"role": "assistant", "content": "bye"}],
    [{"role": "user", "content": "name a colour"}, {"role": "assistant", "content": "blue is a colour"}],
]

PAIRS = [
    {"prompt": [{"role": "user", "content": "what is 12 + 34?"}],
     "chosen": [{"role": "assistant", "content": "the answer is 46."}],
     "rejected": [{"role": "assistant", "content": "46"}]},
    {"prompt": [{"role": "system", "content": "be polite"}, {"role": "user", "content": "open the door"}],
     "chosen": [{"role": "assistant", "content": "of course, opening it now"}],
     "rejected": [{"role": "assistant", "content": "no"}]},
    {"prompt": [{"role": "user", "content": "two plus two"}],
     "chosen": [{"role": "assistant", "content": "four"}],
     "rejected": [{"role": "assistant", "content": "five, or maybe six"}]},
]
