"""Streaming image features: input order, cache hits and bad files mixed, rows out before the end."""

from __future__ import annotations

import numpy as np


def test_stream_yields_in_input_order_as_batches_finish(tiny_config, image_folder, tmp_path, monkeypatch):
    from tlcli.data.bad_files import BadFiles
    from tlcli.models.clip import load_clip
    from tlcli_clip.features import image_features, stream_image_features

    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))
    clip = load_clip(str(tiny_config), "none", "cpu", "fp32")
    paths = sorted(image_folder.glob("*/*"))[:10]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths = paths[:3] + [broken] + paths[3:]
    image_features(clip, paths[5:8], BadFiles())  # cache three paths in the middle

    calls = []
    original = clip.encode_images
    monkeypatch.setattr(clip, "encode_images", lambda batch: calls.append(len(batch)) or original(batch))
    bad, stats, seen = BadFiles(), {}, []
    for indices, rows in stream_image_features(clip, paths, bad, batch_size=2, workers=1, stats=stats):
        assert rows.shape == (len(indices), clip.embed_dim) and rows.dtype == np.float32
        seen.append((list(indices), len(calls)))
    order = [i for chunk, _ in seen for i in chunk]
    assert order == [i for i in range(len(paths)) if i != 3]  # input order, the broken file skipped
    assert stats == {"cached": 3, "computed": 7} and len(bad) == 1
    assert seen[0][1] < len(calls)  # the first rows came out before the model had seen every batch
    full = image_features(clip, paths, BadFiles())
    assert full.kept == order and full.cached == 10
