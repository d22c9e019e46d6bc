"""Special files named on the command line (/dev/zero, a FIFO) are skipped with a warning, never read: zeroshot
hung for ever on an explicit /dev/zero while hashing it for the feature cache."""

from __future__ import annotations

import os

import pytest

from tlcli.features.images import content_digest


def test_content_digest_never_reads_a_device_or_fifo(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert content_digest(fifo) is None
    assert content_digest("/dev/zero") is None


@pytest.mark.timeout(120)
def test_zeroshot_skips_dev_zero_and_a_fifo(cli, tiny_config, image_folder, model_args, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    image = next((image_folder / "cat").iterdir())
    result = cli("zeroshot", "/dev/zero", fifo, image, "--labels", "cat,dog", "--json", "--max-bad", "100%",
                 *model_args(tiny_config))
    assert result.exit_code == 0, result.stderr
    assert "not a regular file" in result.stderr and "/dev/zero" in result.stderr
    assert len(result.stdout.strip().splitlines()) == 2  # one record, then the summary


def test_skipped_special_files_count_in_the_max_bad_total(cli, tiny_config, image_folder, model_args, tmp_path):
    image = next((image_folder / "cat").iterdir())
    result = cli("zeroshot", "/dev/zero", image, "--labels", "cat,dog", *model_args(tiny_config))
    assert result.exit_code == 2 and "1 of 2 files could not be read" in result.stderr


def test_a_killed_writers_temporaries_are_swept_from_the_feature_cache(tmp_path, monkeypatch):
    import subprocess
    import sys

    import numpy as np

    from tlcli.features.images import FeatureCache

    monkeypatch.setenv("TLCLI_HOME", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    class Encoder:
        key, embed_dim, spec = "enc", 4, {"model": "x"}

    cache = FeatureCache(Encoder())
    digest = "ab" + "0" * 62
    folder = cache.root / "ab"
    folder.mkdir(parents=True)
    leftover = folder / f".{'cd' + '0' * 62}.npy.tmp-{dead.pid}"
    mine = folder / f".{'ef' + '0' * 62}.npy.tmp-{os.getpid()}"
    leftover.write_bytes(b"torn")
    mine.write_bytes(b"in progress")
    cache.put(digest, np.ones(4, dtype=np.float32))
    cache.flush()
    assert not leftover.exists() and mine.exists()
    assert cache.get(digest) is not None
