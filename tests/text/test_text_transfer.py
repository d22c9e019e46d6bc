"""`tlcli text zeroshot / probe / predict / evaluate` on the real all-MiniLM-L6-v2 (offline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tlcli.classify import probe
from tlcli.cli.report import summary_problems
from tlcli.models.embedder import Embedder

LABELS = "sports,cooking,weather,computers,music"


def test_zeroshot_json_lines_in_order(cli, minilm_dir):
    result = cli("text", "zeroshot", "The striker scored twice in the second half", "-", "--labels", LABELS,
                 "--json", "--top-k", "2", input="Preheat the oven and grease the tin\nHeavy snow is expected tonight\n")
    assert result.exit_code == 0, result.stderr
    *lines, summary = result.json_lines()
    assert summary_problems(summary) == [] and summary["command"] == "text zeroshot" and summary["texts"] == 3
    assert [line["text"] for line in lines] == ["The striker scored twice in the second half",
                                                "Preheat the oven and grease the tin", "Heavy snow is expected tonight"]
    assert [line["label"] for line in lines] == ["sports", "cooking", "weather"]
    for line in lines:
        assert set(line) == {"text", "label", "score", "top"}
        assert len(line["top"]) == 2 and line["top"][0]["label"] == line["label"]
        assert line["top"][0]["score"] >= line["top"][1]["score"]


def test_zeroshot_bad_labels_and_template(cli):
    bad = cli("text", "zeroshot", "hello", "--labels", "one")
    assert bad.exit_code == 2 and "at least two" in bad.stderr
    bad = cli("text", "zeroshot", "hello", "--labels", "a,b", "--label-template", "no slot")
    assert bad.exit_code == 2 and "{}" in bad.stderr
    none = cli("text", "zeroshot", "--labels", "a,b")
    assert none.exit_code == 2 and "no texts" in none.stderr


def test_missing_model_offline_is_usage_error(cli, tmp_path):
    result = cli("text", "zeroshot", "hello", "--labels", "a,b", "--model", "nobody/no-such-model-xyz",
                 env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "nobody/no-such-model-xyz" in result.stderr
    result = cli("text", "zeroshot", "hello", "--labels", "a,b", "--model", str(tmp_path / "absent"))
    assert result.exit_code == 2 and "no such folder" in result.stderr


def test_embedding_cache_reused(tmp_path, monkeypatch, minilm_dir):
    monkeypatch.setenv("TLCLI_HOME", str(tmp_path))
    texts = ["a cached sentence", "another one", "a cached sentence"]
    first = Embedder().encode(texts)
    assert first.dtype == np.float32 and first.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    shards = list(Embedder().cache_folder.glob("*.safetensors"))
    assert len(shards) == 1 and len(list(Embedder().cache_folder.glob("*.json"))) == 1

    fresh = Embedder()
    monkeypatch.setattr(fresh, "_embed", lambda texts: pytest.fail(f"re-embedded {texts}"))
    np.testing.assert_array_equal(fresh.encode(texts), first)


def test_probe_run_folder_events_and_predict(cli, data_csv, minilm_dir):
    result = cli("text", "probe", data_csv, "--out", "probe-run", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary_problems(summary) == [] and summary["command"] == "text probe"
    assert summary["best"]["metric"] == "val_accuracy" and summary["best"]["value"] >= 0.9
    assert summary["metrics"]["val_accuracy"] == summary["best"]["value"]
    assert summary["train_texts"] + summary["val_texts"] == 275
    assert summary["val_texts"] == 55  # the option kit's one --val-split default, 0.2, stratified
    assert len(summary["classes"]) == 5
    files = {p.name for p in (Path("probe-run") / "model").iterdir()}
    assert files == {"model.safetensors", "labels.json", "model.json", "preprocessing.json"}
    meta = json.loads(open("probe-run/model/model.json").read())
    assert meta["kind"] == "text-probe" and meta["model"] == "all-MiniLM-L6-v2" and meta["num_classes"] == 5
    events = [json.loads(line) for line in Path("probe-run/events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("eval") == len(summary["sweep"]) == len(probe.WEIGHT_DECAYS)  # one per weight decay tried
    assert events[-1]["data"]["status"] == "finished"
    assert json.loads(Path("probe-run/metrics.json").read_text())["weight_decay"] == summary["weight_decay"]

    predicted = cli("text", "predict", "probe-run", "Whisk the eggs with sugar", "Reboot the router", "--json")
    assert predicted.exit_code == 0, predicted.stderr
    *lines, done = predicted.json_lines()
    assert summary_problems(done) == [] and done["command"] == "text predict" and done["texts"] == 2
    assert [line["label"] for line in lines] == ["cooking", "computers"]
    for line in lines:  # probabilities, best first, the contract's shape
        assert set(line) == {"text", "label", "score", "top"} and len(line["top"]) == 5
        assert line["top"][0] == {"label": line["label"], "score": line["score"]}
        assert sum(t["score"] for t in line["top"]) == pytest.approx(1.0, abs=1e-4)

    again = cli("text", "probe", data_csv, "--out", "probe-run")
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    assert json.loads(Path("probe-run/metrics.json").read_text()) == json.loads(json.dumps(summary))

    wrong = cli("text", "predict", ".", "hello")
    assert wrong.exit_code == 2 and "model.json" in wrong.stderr


def test_probe_usage_error_leaves_no_run_folder(cli, tmp_path):
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,label\na,x\nb,x\nc,x\n")
    result = cli("text", "probe", one_class, "--out", "nothing")
    assert result.exit_code == 2 and "at least two" in result.stderr
    assert not Path("nothing").exists() and not Path("runs").exists()


def test_probe_accuracy_matches_sklearn(few_shot_csv, minilm_dir, tmp_path, monkeypatch):
    """The shared probe (tlcli/classify/probe.py, what `text probe` fits) vs scikit-learn's logistic regression on the
    same embeddings: within 1 accuracy point."""
    from sklearn.linear_model import LogisticRegression

    from tlcli.classify import probe
    from tlcli.data.texts import read_labelled_texts

    monkeypatch.setenv("TLCLI_HOME", str(tmp_path))
    train, test = (read_labelled_texts(p) for p in few_shot_csv)
    classes = sorted({s.label for s in train})
    embedder = Embedder()
    train_x, test_x = embedder.encode([s.text for s in train]), embedder.encode([s.text for s in test])
    train_y = np.array([classes.index(s.label) for s in train])
    test_y = np.array([classes.index(s.label) for s in test])
    for decay in (1e-3, 1e-2, 1e-1):
        ours = probe.accuracy(test_x, test_y, *probe.fit(train_x, train_y, len(classes), decay))
        reference = LogisticRegression(C=1.0 / (decay * len(train_y)), max_iter=5000, tol=1e-8)
        theirs = reference.fit(train_x, train_y).score(test_x, test_y)
        assert abs(ours - theirs) <= 0.01, (decay, ours, theirs)
    assert ours >= 0.7


def test_command_modules_import_nothing_heavy():
    code = ("import sys, tlcli_text.plugin, tlcli_text.cli, tlcli_text.config; "
            "print([m for m in ('torch', 'transformers', 'sentence_transformers', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
