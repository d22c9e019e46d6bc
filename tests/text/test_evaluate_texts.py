"""`tlcli evaluate` and `tlcli predict` on text runs (text probe, prompt-tune classify): the output contract's metrics,
checked against scikit-learn on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest

from tlcli.data.texts import read_labelled_texts

SMALL_TUNE = ["--virtual-tokens", "4", "--max-length", "24", "--batch-size", "10", "--epochs", "2", "--quiet",
              "--device", "cpu", "--precision", "fp32", "--init-text", "topic of the sentence"]


def _check_against_sklearn(report: dict, gold: list[str], predicted: list[str], labels: list[str]) -> None:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_score, recall_score

    assert report["n"] == len(gold)
    metrics = report["metrics"]  # the summary's layout: the four metrics under "metrics"
    assert metrics["accuracy"] == pytest.approx(accuracy_score(gold, predicted), abs=1e-6)
    assert metrics["mean_recall"] == pytest.approx(recall_score(gold, predicted, labels=labels, average="macro"),
                                                   abs=1e-6)
    assert set(metrics["per_class"]) == set(labels)
    precisions = precision_score(gold, predicted, labels=labels, average=None, zero_division=0)
    recalls = recall_score(gold, predicted, labels=labels, average=None, zero_division=0)
    for label, precision, recall in zip(labels, precisions, recalls):
        entry = metrics["per_class"][label]
        assert entry["precision"] == pytest.approx(precision, abs=1e-6)
        assert entry["recall"] == pytest.approx(recall, abs=1e-6)
        assert entry["support"] == gold.count(label)
    assert np.array_equal(np.array(report["confusion"]), confusion_matrix(gold, predicted, labels=labels))
    assert metrics["top5_accuracy"] == 1.0  # five classes: the true one is always among the top five


def test_text_probe_evaluate_and_predict(cli, few_shot_csv, minilm_dir):
    train, test = few_shot_csv
    trained = cli("text", "probe", train, "--val-split", "0.5", "--out", "probe", "--json")
    assert trained.exit_code == 0, trained.stderr
    labels = trained.json_lines()[-1]["classes"]

    predicted = cli("text", "predict", "probe", "--input", test, "--json")
    assert predicted.exit_code == 0, predicted.stderr
    evaluated = cli("evaluate", "probe", test, "--json", "--confusion", "confusion.svg")
    assert evaluated.exit_code == 0, evaluated.stderr
    report = evaluated.json_lines()[-1]
    gold = [s.label for s in read_labelled_texts(test)]
    _check_against_sklearn(report, gold, [line["label"] for line in predicted.json_lines()[:-1]], labels)
    assert report["metrics"]["accuracy"] >= 0.7
    assert open("confusion.svg").read().startswith("<svg")

    piped = cli("predict", "probe", "-", "--json", "-k", "2", input="Whisk the eggs\n\nReboot the router\n")
    assert [(line["label"], len(line["top"])) for line in piped.json_lines()[:-1]] == [("cooking", 2), ("computers", 2)]


def test_prompt_tune_classify_run_evaluates(cli, few_shot_csv, minilm_dir):
    train, test = few_shot_csv
    trained = cli("prompt-tune", train, *SMALL_TUNE, "--out", "tuned", "--json")
    assert trained.exit_code == 0, trained.stderr
    labels = trained.json_lines()[-1]["classes"]
    predicted = cli("prompt-tune", "predict", "tuned", "--input", test, "--json")
    evaluated = cli("evaluate", "tuned", test, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    gold = [s.label for s in read_labelled_texts(test)]
    _check_against_sklearn(evaluated.json_lines()[-1], gold,
                           [line["label"] for line in predicted.json_lines()[:-1]], labels)


def test_evaluate_refuses_unknown_labels(cli, few_shot_csv, minilm_dir, tmp_path):
    train, _ = few_shot_csv
    assert cli("text", "probe", train, "--val-split", "0.5", "--out", "probe").exit_code == 0
    other = tmp_path / "other.csv"
    other.write_text("text,label\nA quiet evening,poetry\n")
    result = cli("evaluate", "probe", other)
    assert result.exit_code == 2 and "poetry" in result.stderr
