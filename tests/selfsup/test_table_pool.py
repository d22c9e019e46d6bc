"""`pseudolabel --unlabelled TABLE`: every row is in the pool; a row's known label is kept as its truth (for the
report only), like an image in a class folder of the pool."""

from __future__ import annotations

from support.tables import folder_rows, image_dataset


def test_a_table_pool_keeps_known_labels_as_truth_and_every_row(colour_data, tmp_path, monkeypatch):
    from tlcli.data.bad_files import BadFiles
    from tlcli.data.decoded import UNLABELLED
    from tlcli.data.tables import Columns
    from tlcli_selfsup.pseudolabel import _unlabelled_with_truth

    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))
    images, labels = folder_rows(colour_data)  # 3 classes x 6
    ids = [int(label[-1]) for label in labels]
    ids[0] = -1  # no label: still in the pool
    image_dataset(images, ids, label_names=["class_0", "class_1", "class_2"]).to_parquet(str(tmp_path / "pool.parquet"))
    pre = {"resize": 16, "crop": 16, "mean": [0.5] * 3, "std": [0.5] * 3}
    pool = _unlabelled_with_truth(str(tmp_path / "pool.parquet"), ["class_1", "class_2"], pre, BadFiles(), 0,
                                  Columns())
    assert len(pool) == 18
    assert pool.labels == [UNLABELLED] * 6 + [0] * 6 + [1] * 6  # class_0 is not a class of the model
