"""The text commands read labelled texts from a table (parquet with text/label) like the CSV they came from."""

from __future__ import annotations

from support.tables import text_dataset


def _rows(csv_path):
    import csv

    with open(csv_path, encoding="utf-8") as handle:
        return [(r["text"], r["label"]) for r in csv.DictReader(handle)]


def test_probe_and_evaluate_on_parquet_match_the_csv(cli, few_shot_csv, minilm_dir, tmp_path):
    train_csv, test_csv = few_shot_csv
    for name, csv_path in (("train", train_csv), ("test", test_csv)):
        texts, labels = zip(*_rows(csv_path))
        text_dataset(list(texts), list(labels), text_column="review", label_column="topic").to_parquet(
            str(tmp_path / f"{name}.parquet"))
    from_csv = cli("text", "probe", train_csv, "--out", tmp_path / "csv-run", "--json")
    from_table = cli("text", "probe", tmp_path / "train.parquet", "--text-column", "review", "--label-column",
                     "topic", "--out", tmp_path / "table-run", "--json")
    assert from_csv.exit_code == 0, from_csv.stderr
    assert from_table.exit_code == 0, from_table.stderr
    csv_summary, table_summary = from_csv.json_lines()[-1], from_table.json_lines()[-1]
    assert table_summary["metrics"] == csv_summary["metrics"]  # the same rows, the same split, the same probe
    assert table_summary["weight_decay"] == csv_summary["weight_decay"]

    on_csv = cli("evaluate", tmp_path / "table-run", test_csv, "--json")
    on_table = cli("evaluate", tmp_path / "table-run", tmp_path / "test.parquet", "--text-column", "review",
                   "--label-column", "topic", "--json")
    assert on_table.exit_code == 0, on_table.stderr
    assert on_table.json_lines()[-1]["metrics"] == on_csv.json_lines()[-1]["metrics"]

    missing = cli("text", "probe", tmp_path / "train.parquet", "--out", tmp_path / "nothing")
    assert missing.exit_code == 2
    line, = missing.stderr.strip().splitlines()
    assert "no text column" in line and "its columns: review, topic" in line and "--text-column" in line
