"""`tlcli text compare`: every row of the ladder on one held-out split (a tiny random BERT, --quick budgets)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tlcli.cli.report import summary_problems


@pytest.fixture(scope="module")
def topics_csv(tmp_path_factory, rows):
    """12 rows of each of the 5 topics of examples/text_transfer."""
    path = tmp_path_factory.mktemp("topics") / "data.csv"
    by_label: dict[str, list[str]] = {}
    for text, label in rows:
        by_label.setdefault(label, []).append(text)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((text, label) for label, texts in sorted(by_label.items()) for text in texts[:12])
    return path


def test_the_ladder_on_one_held_out_split(cli, tiny_bert_dir, topics_csv):
    result = cli("text", "compare", topics_csv, "--model", tiny_bert_dir, "--quick", "--shots", "2,4",
                 "--seeds", "0,1", "--ranks", "2,4", "--device", "cpu", "--precision", "fp32", "--out", "ladder",
                 "--json")
    assert result.exit_code == 0, result.stderr
    *records, summary = result.json_lines()
    assert summary_problems(summary) == [] and summary["command"] == "text compare"
    assert summary["status"] == "finished" and summary["test_texts"] == 5 * 4  # 30% of 12 per class, held out
    rows = [(r["row"], r["shots"]) for r in records]
    assert rows == [("zero-shot", None)] + [(name, shots) for shots in (2, 4) for name in (
        "probe", "soft prompt", "LoRA r=2", "LoRA r=4", "full fine-tuning")]
    assert records == summary["results"]
    by_row = {(r["row"], r["shots"]): r for r in records}
    for (name, shots), row in by_row.items():
        assert 0.0 <= row["accuracy"] <= 1.0 and row["wall_s"] >= 0 and row["peak_mb"] is not None
        if shots is not None:  # one accuracy per seed, their mean and std
            assert row["seeds"] == [0, 1] and len(row["accuracies"]) == 2
            assert row["accuracy"] == pytest.approx(sum(row["accuracies"]) / 2, abs=1e-5)
    params = {name: by_row[(name, 2)]["trainable_params"] for name in
              ("probe", "soft prompt", "LoRA r=2", "LoRA r=4", "full fine-tuning")}
    assert params["probe"] == 5 * 32 + 5
    assert params["soft prompt"] == 20 * 32 + 5 * 32 + 5  # 20 virtual tokens + head
    assert params["LoRA r=4"] == 2 * params["LoRA r=2"] - (5 * 32 + 5)  # adapters double, the head stays
    assert params["full fine-tuning"] > 30522 * 32  # every encoder weight (the pooler excepted) and the head
    events = [json.loads(line) for line in Path("ladder/events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events].count("eval") == len(records)


def test_usage_errors(cli, topics_csv):
    bad = cli("text", "compare", topics_csv, "--methods", "probe,magic")
    assert bad.exit_code == 2 and "--methods" in bad.stderr
    bad = cli("text", "compare", topics_csv, "--val-split", "0")
    assert bad.exit_code == 2 and "--val-split" in bad.stderr
    bad = cli("text", "compare", topics_csv, "--shots", "0")
    assert bad.exit_code == 2 and "--shots" in bad.stderr


def test_k_shot_draws_per_class_and_per_seed():
    from tlcli.data.texts import TextSample
    from tlcli.data.labelled import k_shot

    samples = [TextSample(f"{label} {i}", label) for label in ("a", "b") for i in range(10)] + [TextSample("c 0", "c")]
    drawn = k_shot(samples, 3, seed=0)
    assert sorted(s.label for s in drawn) == ["a"] * 3 + ["b"] * 3 + ["c"]  # a class with fewer gives all it has
    assert drawn == k_shot(samples, 3, seed=0) and drawn != k_shot(samples, 3, seed=1)
    assert set(k_shot(samples, 3, seed=0)) <= set(k_shot(samples, 20, seed=0)) == set(samples)
