"""Fixtures for sft/dpo: tiny random GPT-2s from configs with the bundled BERT tokenizer. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """tlcli.llm.tiny's model: 2 layers, 64 wide, the real 30522-token WordPiece tokenizer."""
    from tlcli.llm.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def tokenizer(tiny_lm_dir):
    """The tiny model's tokenizer, prepared as sft/dpo prepare it (end-of-text token, plain template)."""
    from transformers import AutoConfig, AutoTokenizer

    from tlcli_tune.chat import prepare_tokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    assert prepare_tokenizer(tok, AutoConfig.from_pretrained(tiny_lm_dir)) == "plain"
    return tok
