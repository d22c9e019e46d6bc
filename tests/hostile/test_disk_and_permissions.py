"""A full disk, a read-only or unwritable folder, a NUL byte in a path: one line naming the fix, nothing
half-written left behind, never a traceback.

Tests run as root here, and root ignores chmod; so "read-only" is a real read-only tmpfs where mounting is
allowed (EROFS holds for root too), and a patched call raising EACCES/EROFS/ENOSPC everywhere else."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest
import typer

import tlcli.cli as tlcli_cli
from tlcli.console.errors import UsageError


def checkpoint_args():
    import torch

    return {"model_state": {"w": torch.arange(6.0)}, "optimizer_state": None,
            "progress": {"step": 1}}


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".tmp-"))


def test_a_full_disk_during_a_checkpoint_leaves_no_temporary_folder(tmp_path, monkeypatch):
    from tlcli.engine import checkpoint

    root = tmp_path / "checkpoints"
    checkpoint.save_checkpoint(root, "step-00000001", **checkpoint_args(), keep_prefix="step-")
    real_write = checkpoint._write_json

    def full_disk(path, data):
        if path.name == "state.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "_write_json", full_disk)
    for _ in range(3):  # every retry: still nothing leaks
        with pytest.raises(OSError) as raised:
            checkpoint.save_checkpoint(root, "step-00000002", **checkpoint_args(), keep_prefix="step-")
        assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(root / "step-00000002")
        assert leftovers(root) == []
    assert checkpoint.is_complete(root / "step-00000001")  # the previous checkpoint is intact
    assert not (root / "step-00000002").exists()


def test_safetensors_reporting_a_full_disk_becomes_an_oserror(tmp_path, monkeypatch):
    from tlcli.engine import checkpoint

    def save_file(tensors, path):
        Path(path).write_bytes(b"partial")
        raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    with pytest.raises(OSError) as raised:
        checkpoint.save_checkpoint(tmp_path, "step-00000005", **checkpoint_args())
    assert raised.value.errno == errno.ENOSPC
    assert leftovers(tmp_path) == []


def test_leftovers_of_an_earlier_process_are_removed_on_the_next_checkpoint(tmp_path):
    from tlcli.engine import checkpoint

    (tmp_path / ".tmp-step-00000003-99999").mkdir()
    (tmp_path / ".tmp-step-00000003-99999" / "model.safetensors").write_bytes(b"x")
    checkpoint.save_checkpoint(tmp_path, "step-00000004", **checkpoint_args())
    assert leftovers(tmp_path) == [] and checkpoint.is_complete(tmp_path / "step-00000004")


def test_a_real_full_disk_during_a_checkpoint(small_disk):
    import torch

    from tlcli.engine import checkpoint

    big = {"w": torch.zeros(200_000)}  # 800 kB on a 256 kB disk
    with pytest.raises(OSError) as raised:
        checkpoint.save_checkpoint(small_disk, "step-00000001", big, None, {"step": 1})
    assert raised.value.errno == errno.ENOSPC
    assert os.listdir(small_disk) == []  # nothing left, so the next try has the whole disk


def test_an_atomic_write_on_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch):
    from tlcli.runs import paths

    real_fsync = os.fsync
    monkeypatch.setattr(paths.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(OSError) as raised:
        paths.atomic_write_text(tmp_path / "metrics.json", "{}")
    monkeypatch.setattr(paths.os, "fsync", real_fsync)
    assert raised.value.filename == str(tmp_path / "metrics.json")
    assert os.listdir(tmp_path) == []


# ---- read-only TLCLI_HOME and --out ------------------------------------------------------------------------

def test_a_read_only_tlcli_home_is_one_line_naming_the_variable(read_only_dir, monkeypatch):
    from tlcli.runs.paths import cache_dir

    monkeypatch.setenv("TLCLI_HOME", str(read_only_dir / "home"))
    with pytest.raises(UsageError, match=r"TLCLI_HOME .*read-only file system.*set TLCLI_HOME to a writable folder"):
        cache_dir("features")


def test_an_unwritable_tlcli_home_patched(tmp_path, monkeypatch):
    from tlcli.runs import paths

    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))

    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(paths.Path, "mkdir", denied)
    with pytest.raises(UsageError, match="permission denied.*set TLCLI_HOME to a writable folder"):
        paths.cache_dir("features")


def fake_command_app(body):
    """The real root CLI's error handling around one command that runs ``body``."""
    app = typer.Typer()

    @app.command()
    def job(out: Path = typer.Option(None)) -> None:
        body(out)

    @app.command()
    def other() -> None:
        pass

    return app


@pytest.fixture
def run_main(monkeypatch, capsys):
    def run(body, *args):
        monkeypatch.setattr(tlcli_cli, "build_app", lambda: fake_command_app(body))
        with pytest.raises(SystemExit) as done:
            tlcli_cli.main(["job", *args])
        captured = capsys.readouterr()
        return done.value.code, captured.err
    return run


def write_a_run(out):
    from tlcli.runs.run import Run

    with Run.create("job", out) as run:
        run.start()


def test_a_read_only_out_folder_is_one_line(read_only_dir, run_main):
    code, err = run_main(write_a_run, "--out", str(read_only_dir))  # exists, empty, on a read-only disk
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "read-only file system" in err and str(read_only_dir) in err and "--out" in err
    code, err = run_main(write_a_run, "--out", str(read_only_dir / "new"))
    assert code == 2 and "cannot create the run folder" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "no space left on device: {path}; free some space, or pass --out a folder on a disk with room, "
                   "and run again"),
    (errno.EACCES, "permission denied: {path}; check its permissions, or for outputs pass --out a folder that "
                   "you can write"),
    (errno.EROFS, "read-only file system: {path}; pass --out a folder on a writable disk"),
])
def test_an_oserror_escaping_a_command_is_one_line_exit_2(run_main, tmp_path, code, words):
    path = tmp_path / "run" / "model.safetensors"

    def body(out):
        raise OSError(code, os.strerror(code), str(path))

    exit_code, err = run_main(body)
    assert exit_code == 2
    assert err == f"tlcli: error: {words.format(path=path)}\n"


def test_errors_under_tlcli_home_point_at_tlcli_home(run_main, tmp_path, monkeypatch):
    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))

    def body(out):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "home" / "features" / "x"))

    exit_code, err = run_main(body)
    assert exit_code == 2 and "set TLCLI_HOME to a folder on a disk with room" in err


def test_a_native_library_full_disk_error_is_one_line(run_main):
    def body(out):
        raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")

    exit_code, err = run_main(body)
    assert exit_code == 2 and err.startswith("tlcli: error: no space left on device;")


def test_an_oserror_with_only_a_message_keeps_it(run_main):
    def body(out):
        raise OSError("cannot identify image file 'x.jpg'")

    exit_code, err = run_main(body)
    assert exit_code == 2
    assert err == "tlcli: error: cannot identify image file 'x.jpg'; run again with --debug for the details\n"


def test_other_exceptions_still_show_their_traceback(monkeypatch):
    def body(out):
        raise RuntimeError("a bug")

    monkeypatch.setattr(tlcli_cli, "build_app", lambda: fake_command_app(body))
    with pytest.raises(RuntimeError, match="a bug"):
        tlcli_cli.main(["job"])


def test_debug_shows_the_oserror(monkeypatch):
    def body(out):
        raise OSError(errno.ENOSPC, "No space left on device", "x")

    monkeypatch.setattr(tlcli_cli, "build_app", lambda: fake_command_app(body))
    monkeypatch.setenv("TLCLI_DEBUG", "0")  # main() sets it to 1; monkeypatch puts the old state back
    with pytest.raises(OSError):
        tlcli_cli.main(["job", "--debug"])


# ---- a NUL byte in a path from stdin -------------------------------------------------------------------------

def test_a_nul_byte_in_a_path_from_stdin_is_skipped_and_named(tmp_path):
    from tlcli.data.sources import expand_paths

    good = tmp_path / "a.jpg"
    good.write_bytes(b"\xff\xd8")
    stdin = io.BytesIO(f"{good}\n{tmp_path}/b\0.jpg\n".encode())
    paths, bad = expand_paths(["-"], stdin=io.TextIOWrapper(stdin))
    assert paths == [good]
    assert [b.reason for b in bad] == ["NUL byte in the path"]
    assert str(bad[0]).endswith("b\\x00.jpg: NUL byte in the path")


def test_an_io_error_on_one_entry_skips_it_and_names_it(tmp_path, monkeypatch):
    from tlcli.data import walk

    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"x")

    class Failing:
        """A DirEntry whose type cannot be read (EIO from a failing disk or a stale mount)."""

        def __init__(self, entry):
            self.name, self.path = entry.name, entry.path

        def is_symlink(self):
            raise OSError(errno.EIO, "Input/output error")

    real_classify = walk._classify
    monkeypatch.setattr(walk, "_classify", lambda entry, path, *rest: real_classify(
        Failing(entry) if entry.name == "a.jpg" else entry, path, *rest))
    found, bad = walk.walk_image_files(tmp_path)
    assert found == [tmp_path / "b.jpg"]
    assert [(b.path.name, b.reason) for b in bad] == [("a.jpg", "unreadable (input/output error)")]
