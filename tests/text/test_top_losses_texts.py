"""`tlcli evaluate --top-losses N` on a text run: the texts the model gets most wrong, against what `tlcli predict`
says of every text."""

from __future__ import annotations

import math

import pytest

from tlcli.data.texts import read_labelled_texts


def test_text_top_losses(cli, few_shot_csv, minilm_dir):
    train, test = few_shot_csv
    assert cli("text", "probe", train, "--val-split", "0.5", "--out", "probe", "--quiet").exit_code == 0
    samples = read_labelled_texts(test)
    evaluated = cli("evaluate", "probe", test, "--top-losses", "3", "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    *worst, summary = evaluated.json_lines()
    assert len(worst) == 3 and "accuracy" in summary["metrics"]

    predicted = cli("predict", "probe", *[s.text for s in samples], "-k", "5", "--json").json_lines()[:-1]
    losses = []
    for sample, line in zip(samples, predicted):
        scores = {t["label"]: t["score"] for t in line["top"]}
        losses.append((-math.log(scores[sample.label]), sample.text, sample.label, line["label"]))
    losses.sort(key=lambda item: -item[0])
    assert [r["loss"] for r in worst] == pytest.approx([item[0] for item in losses[:3]], abs=1e-4)
    for record, (loss, text, label, guess) in zip(worst, losses):
        assert (record["text"], record["true_label"], record["label"]) == (text, label, guess)
        assert record["loss"] == pytest.approx(-math.log(record["true_score"]), rel=1e-4)
