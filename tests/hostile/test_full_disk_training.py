"""A training run whose checkpoint hits a full disk: one line, exit 2, the run marked failed, nothing
half-written left in checkpoints/, and a second try leaks nothing either."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import typer

import tlcli.cli as tlcli_cli


def tiny_task():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from tlcli.engine.params import ParamGroup, list_blocks
    from tlcli.engine.task import Task

    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 4, generator=g)
    y = (x[:, 0] > 0).long()

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, key):
            return x[key[0]], y[key[0]]

    class Tiny(Task):
        def describe(self):
            return {"model": "linear"}

        def build_model(self):
            return nn.Sequential(nn.Linear(4, 2))

        def blocks(self, model):
            return list_blocks(model)

        def param_groups(self, model, blocks, include_frozen):
            return [ParamGroup("all", list(model.parameters()), 0.1, 0.0)]

        def train_dataset(self):
            return Data()

        def val_dataset(self):
            return None

        def collate(self, items):
            return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])

        def batch_size_of(self, batch):
            return batch[0].shape[0]

        def training_step(self, model, batch):
            return F.cross_entropy(model(batch[0]), batch[1])

        def export(self, model, run_dir, result):
            pass

    return Tiny()


def train(out: Path) -> None:
    from tlcli.engine.callbacks import standard_callbacks
    from tlcli.engine.loop import fit
    from tlcli.engine.task import TrainConfig
    from tlcli.runs.run import Run

    cfg = TrainConfig(epochs=2, batch_size=8, optimizer="sgd", scheduler="constant", device="cpu",
                      precision="fp32", workers=0, seed=0)
    with Run.create("job", out) as run:
        fit(tiny_task(), cfg, run, standard_callbacks(run, "job", "test", quiet=True))


@pytest.fixture
def full_disk_at_checkpoints(monkeypatch):
    from tlcli.engine import checkpoint

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_json", full)


def test_a_checkpoint_on_a_full_disk_ends_the_run_with_one_line(tmp_path, monkeypatch, capsys,
                                                               full_disk_at_checkpoints):
    app = typer.Typer()

    @app.command()
    def job(out: Path = typer.Option(...)) -> None:
        train(out)

    @app.command()
    def other() -> None:
        pass

    monkeypatch.setattr(tlcli_cli, "build_app", lambda: app)
    for attempt in ("first", "second"):
        with pytest.raises(SystemExit) as done:
            tlcli_cli.main(["job", "--out", str(tmp_path / attempt)])
        err = capsys.readouterr().err
        assert done.value.code == 2, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"tlcli: error: no space left on device: {tmp_path / attempt}/checkpoints/step-")
        assert "free some space" in err
        checkpoints = tmp_path / attempt / "checkpoints"
        assert [p.name for p in checkpoints.iterdir() if p.name.startswith(".tmp-")] == []
        events = [json.loads(line) for line in (tmp_path / attempt / "events.jsonl").read_text().splitlines()]
        assert events[-1]["kind"] == "run_end" and events[-1]["data"]["status"] == "failed"
