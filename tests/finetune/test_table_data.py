"""`tlcli finetune` / `evaluate` / `predict` on tables (parquet, a save_to_disk folder, hf:NAME) train and score
like the class folder they were made from (docs/data.md)."""

from __future__ import annotations

import json

from support.tables import BROKEN_PNG, folder_rows, image_dataset, put_in_hf_cache

CLASSES = ["class_0", "class_1", "class_2"]


def _fast():
    return ["--model", "resnet18", "--pretrained", "none", "--image-size", "32", "--batch-size", "8", "--workers",
            "0", "--precision", "fp32", "--max-steps", "1", "--quiet", "--json"]


def _trained(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return result.json_lines()[-1]


def test_parquet_and_saved_dataset_train_and_evaluate_like_the_class_folder(cli, colour_data, tmp_path):
    images, labels = folder_rows(colour_data)
    image_dataset(images, labels, image_column="img", label_names=CLASSES).to_parquet(str(tmp_path / "data.parquet"))
    with_broken = image_dataset(images + [BROKEN_PNG], labels + ["class_1"], label_names=CLASSES)
    with_broken.save_to_disk(str(tmp_path / "saved"))

    folder = _trained(cli("finetune", colour_data, *_fast(), "--out", tmp_path / "folder-run"))
    table = _trained(cli("finetune", tmp_path / "data.parquet", "--image-column", "img", *_fast(),
                         "--out", tmp_path / "table-run"))
    assert table["classes"] == folder["classes"] == CLASSES
    assert (table["train_images"], table["val_images"]) == (folder["train_images"], folder["val_images"]) == (30, 6)
    assert json.loads((tmp_path / "table-run" / "model" / "labels.json").read_text()) == CLASSES
    assert json.loads((tmp_path / "table-run" / "config.json").read_text())["image_column"] == "img"

    saved = _trained(cli("finetune", tmp_path / "saved", *_fast(), "--out", tmp_path / "saved-run"))
    assert saved["classes"] == CLASSES and saved["train_images"] + saved["val_images"] == 36
    assert [entry["reason"] for entry in saved["bad_files"]] == ["truncated file"]  # decoded, found bad, skipped
    assert saved["bad_files"][0]["path"].endswith("/000036.png")  # the row number names the file

    scored = cli("evaluate", tmp_path / "table-run", tmp_path / "data.parquet", "--image-column", "img", "--json")
    metrics = _trained(scored)["metrics"]
    assert sum(row["support"] for row in metrics["per_class"].values()) == 36
    predicted = cli("predict", tmp_path / "table-run", tmp_path / "data.parquet", "--image-column", "img", "--json")
    *records, summary = predicted.json_lines()
    assert predicted.exit_code == 0 and summary["predicted"] == len(records) == 36


def test_a_missing_column_is_one_line_listing_the_columns(cli, colour_data, tmp_path):
    images, labels = folder_rows(colour_data)
    image_dataset(images, labels, image_column="img", label_names=CLASSES).to_parquet(str(tmp_path / "data.parquet"))
    result = cli("finetune", tmp_path / "data.parquet", "--image-column", "photo", *_fast(), "--out", tmp_path / "run")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no column 'photo' (--image-column); its columns: img, label" in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_hf_dataset_not_cached_is_exit_2_with_the_fix(cli, tmp_path):
    empty = tmp_path / "empty-hf-cache"
    empty.mkdir()
    result = cli("finetune", "hf:someone/beans", *_fast(), "--out", tmp_path / "run",
                 env={"HF_DATASETS_CACHE": str(empty)})
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "hf:someone/beans is not in the local Hugging Face datasets cache" in lines[0]
    assert "datasets.load_dataset('someone/beans').save_to_disk('DIR')" in lines[0] and "pass DIR" in lines[0]


def test_cached_hf_dataset_trains_with_its_validation_split(cli, colour_data, tmp_path):
    images, labels = folder_rows(colour_data)
    full = image_dataset(images, labels, label_names=CLASSES)
    cache = tmp_path / "hf-cache"
    put_in_hf_cache({"train": full, "validation": full.select(range(0, 36, 4))}, cache, "someone/colours")
    result = cli("finetune", "hf:someone/colours", *_fast(), "--out", tmp_path / "run",
                 env={"HF_DATASETS_CACHE": str(cache)})
    summary = _trained(result)
    assert summary["classes"] == CLASSES and (summary["train_images"], summary["val_images"]) == (36, 9)
    assert "the dataset's validation split" in result.stderr
