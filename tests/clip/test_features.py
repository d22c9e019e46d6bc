"""Streaming image features: input order, cache hits and bad files mixed, rows out before the end."""

from __future__ import annotations

import numpy as np
import pytest


def test_stream_yields_in_input_order_as_batches_finish(tiny_config, image_folder, tmp_path, monkeypatch):
    from tlcli.data.bad_files import BadFiles
    from tlcli.models.clip import load_clip
    from tlcli.features.images import image_features, stream_image_features

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
    assert stats == {"cached": 3, "computed": 7, "damaged": 0} and len(bad) == 1
    assert seen[0][1] < len(calls)  # the first rows came out before the model had seen every batch
    full = image_features(clip, paths, BadFiles())
    assert full.kept == order and full.cached == 10


def test_split_preprocess_equals_open_clips_transform_bit_for_bit():
    """The decode threads run the PIL steps, the batch runs to-tensor + normalise: same bits as open_clip's
    whole transform per image, for each resize mode and for images smaller than the crop."""
    import torch
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from PIL import Image
    from torchvision.transforms import Compose, ToTensor

    from tlcli.models.clip import SplitPreprocess

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in
              [(240, 320), (300, 97), (40, 40), (224, 224), (17, 500)]]
    for resize_mode in ("shortest", "longest", "squash"):
        cfg = PreprocessCfg(size=(64, 48), mean=(0.2, 0.4, 0.6), std=(0.3, 0.25, 0.5), resize_mode=resize_mode,
                            interpolation="bicubic", fill_color=7)
        transform = image_transform_v2(cfg, is_train=False)
        split = SplitPreprocess.of(transform)
        assert split is not None, resize_mode
        expected = torch.stack([transform(image) for image in images])
        arrays = [split.per_image(image) for image in images]
        assert all(a.dtype == np.uint8 and a.shape == (64, 48, 3) for a in arrays)
        assert torch.equal(split.batch(arrays), expected), resize_mode
        assert torch.equal(split.normalise(split.stack(arrays), torch.device("cpu")), expected), resize_mode
    assert SplitPreprocess.of(Compose([ToTensor()])) is None  # another shape: the caller keeps the whole transform


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_split_preprocess_on_the_gpu_equals_open_clips_transform_bit_for_bit():
    """On a GPU the uint8 pixels are copied over and normalised there: still the same bits."""
    import torch
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from PIL import Image

    from tlcli.models.clip import SplitPreprocess

    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(240, 320), (50, 90)]]
    transform = image_transform_v2(PreprocessCfg(size=224), is_train=False)
    split = SplitPreprocess.of(transform)
    on_gpu = split.normalise(split.stack([split.per_image(image) for image in images]), torch.device("cuda"))
    assert on_gpu.device.type == "cuda" and on_gpu.is_contiguous()
    assert torch.equal(on_gpu.cpu(), torch.stack([transform(image) for image in images]))


def test_cache_writes_run_in_the_background_and_flush_waits_for_them_or_raises(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from tlcli.features.images import FeatureCache

    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))
    cache = FeatureCache(SimpleNamespace(key="model-key", spec={"model": "x"}, embed_dim=8))
    rows = {f"{i:064x}": np.full(8, i, dtype=np.float32) for i in range(50)}
    for digest, row in rows.items():
        cache.put(digest, row)
    cache.flush()
    assert all(np.array_equal(cache.get(digest), row) for digest, row in rows.items())

    (cache.root / "ab").write_text("a file where the entry's folder should be")
    cache.put("ab" + "0" * 62, rows["0" * 64])
    with pytest.raises(OSError):
        cache.flush()
    cache.flush()  # the error was reported once


def test_damaged_cache_rows_are_recomputed_and_reported(tiny_config, image_folder, tmp_path, monkeypatch, capsys):
    """A NaN row, a row of the wrong width and a torn file are never used: each is computed again (and
    rewritten), the run says so on stderr, and the features equal those of a clean cache."""
    from tlcli.data.bad_files import BadFiles
    from tlcli.features.images import FeatureCache, content_digest, image_features
    from tlcli.models.clip import load_clip

    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))
    clip = load_clip(str(tiny_config), "none", "cpu", "fp32")
    paths = sorted(image_folder.glob("*/*"))[:6]
    clean = image_features(clip, paths, BadFiles(), quiet=True)
    cache = FeatureCache(clip)
    entries = [cache._path(content_digest(p)) for p in paths[:3]]
    np.save(entries[0], np.full(clip.embed_dim, np.nan, dtype=np.float32))
    np.save(entries[1], np.zeros(clip.embed_dim + 1, dtype=np.float32))
    entries[2].write_bytes(entries[2].read_bytes()[:20])
    capsys.readouterr()

    again = image_features(clip, paths, BadFiles(), quiet=True)
    assert (again.cached, again.computed) == (3, 3)
    np.testing.assert_allclose(again.array, clean.array, rtol=0, atol=1e-6)
    assert "3 damaged entries" in capsys.readouterr().err
    healed = image_features(clip, paths, BadFiles(), quiet=True)  # the damaged entries were rewritten
    assert (healed.cached, healed.computed) == (6, 0)
