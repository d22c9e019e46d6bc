"""The CLIP commands on tables: `probe` on a parquet and `zeroshot --eval` on a DatasetDict folder give what they
give on the class folder the table was made from (docs/data.md)."""

from __future__ import annotations

from support.tables import folder_rows, image_dataset


def test_probe_on_parquet_and_zeroshot_eval_on_a_dataset_dict_match_the_class_folder(
        cli, tiny_config, image_folder, model_args, json_lines, tmp_path):
    import datasets

    images, labels = folder_rows(image_folder)
    table = image_dataset(images, labels, label_names=["cat", "dog", "fish"])
    table.to_parquet(str(tmp_path / "data.parquet"))
    datasets.DatasetDict({"train": table.select(range(3)), "test": table}).save_to_disk(str(tmp_path / "dict"))

    args = ("--json", "--no-cache", *model_args(tiny_config))
    on_folder = cli("probe", image_folder, *args, "--out", tmp_path / "folder-run")
    on_table = cli("probe", tmp_path / "data.parquet", *args, "--out", tmp_path / "table-run")
    assert on_folder.exit_code == 0, on_folder.stderr
    assert on_table.exit_code == 0, on_table.stderr
    folder, table = json_lines(on_folder.stdout)[-1], json_lines(on_table.stdout)[-1]
    for key in ("train_images", "val_images", "metrics", "best", "weight_decay"):
        assert table[key] == folder[key], key

    zs = ("--eval", "--json", "--templates", "single", *model_args(tiny_config))
    on_folder = cli("zeroshot", image_folder, *zs)
    on_dict = cli("zeroshot", tmp_path / "dict", *zs)  # a dictionary's test split, as evaluate reads
    assert on_dict.exit_code == 0, on_dict.stderr
    assert json_lines(on_dict.stdout)[-1]["metrics"] == json_lines(on_folder.stdout)[-1]["metrics"]
