"""The engine against a plain PyTorch loop, and its schedule, accumulation and checkpoint mechanics."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlcli.engine.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tlcli.engine.loop import EpochBatches, fit
from tlcli.engine.params import ParamGroup, discriminative_groups, freeze_until, list_blocks
from tlcli.engine.schedule import lr_factor
from tlcli.engine.task import Task, TrainConfig


class TensorTask(Task):
    """A linear classifier on fixed tensors: small enough to replay exactly by hand."""

    def __init__(self, x, y, lr=0.1):
        self.x, self.y, self.lr = x, y, lr

    def describe(self):
        return {"model": "mlp"}

    def build_model(self):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(self.x.shape[1], 16), nn.Tanh(), nn.Linear(16, 3))

    def blocks(self, model):
        return list_blocks(model)

    def param_groups(self, model, blocks, include_frozen):
        return [ParamGroup("all", list(model.parameters()), self.lr, 0.0)]

    def train_dataset(self):
        task = self

        class Data(torch.utils.data.Dataset):
            def __len__(self):
                return len(task.x)

            def __getitem__(self, key):
                index, _seed = key
                return task.x[index], task.y[index]

        return Data()

    def val_dataset(self):
        return None

    def collate(self, items):
        return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])

    def batch_size_of(self, batch):
        return batch[0].shape[0]

    def training_step(self, model, batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    def validation_step(self, model, batch):
        raise AssertionError("no validation set")

    def export(self, model, run_dir, result):
        self.exported = {k: v.clone() for k, v in model.state_dict().items()}


def _data(n=40):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y


def _cfg(**kw):
    base = dict(epochs=3, batch_size=8, optimizer="sgd", scheduler="constant", device="cpu", precision="fp32",
                workers=0, monitor="val_accuracy", seed=3)
    return TrainConfig(**{**base, **kw})


def test_engine_matches_a_plain_pytorch_loop(tmp_path):
    x, y = _data()
    task = TensorTask(x, y)
    cfg = _cfg()
    fit(task, cfg, tmp_path / "run")

    model = task.build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sampler = EpochBatches(len(x), 8, cfg.seed)
    for epoch in range(3):
        for batch in sampler.batches(epoch):
            idx = [i for i, _ in batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(task.exported[key], value, rtol=0, atol=1e-6)


def test_accumulation_equals_one_big_batch(tmp_path):
    x, y = _data()
    small = TensorTask(x, y)
    fit(small, _cfg(batch_size=4, accumulate=2, epochs=1, optimizer="adamw"), tmp_path / "a")
    # The same samples in the same order, one batch of 8 per step: sampler order depends only on the seed.
    big = TensorTask(x, y)
    fit(big, _cfg(batch_size=8, accumulate=1, epochs=1, optimizer="adamw"), tmp_path / "b")
    for key in small.exported:
        torch.testing.assert_close(small.exported[key], big.exported[key], rtol=1e-5, atol=1e-6)


def test_epoch_batches_are_seeded_sharded_and_skip_on_resume():
    sampler = EpochBatches(10, 3, seed=5)
    first = sampler.batches(0)
    # 10 samples in batches of 3: the trailing batch of one is dropped (BatchNorm cannot train on it).
    assert [len(b) for b in first] == [3, 3, 3]
    assert len({i for b in first for i, _ in b}) == 9
    assert sampler.batches(0) == first and sampler.batches(1) != first
    sampler.set_epoch(0, skip=2)
    assert list(sampler) == first[2:]
    ranks = [EpochBatches(10, 2, seed=5, rank=r, world=2).batches(0) for r in range(2)]
    seen = [i for r in ranks for b in r for i, _ in b]
    # 5 samples a rank in batches of 2 (the trailing single one dropped): equal work, disjoint shards.
    assert len(ranks[0]) == len(ranks[1]) == 2
    assert len(seen) == len(set(seen)) == 8


def test_schedules():
    assert lr_factor("constant", 5, 100, 0) == 1.0
    assert lr_factor("cosine", 0, 100, 10) == pytest.approx(0.1)
    assert lr_factor("cosine", 10, 100, 10) == pytest.approx(1.0)
    assert lr_factor("cosine", 100, 100, 10) == pytest.approx(0.0)
    peak = lr_factor("onecycle", 30, 100, 0)
    assert peak == pytest.approx(1.0) and lr_factor("onecycle", 0, 100, 0) < 0.1
    assert lr_factor("onecycle", 99, 100, 0) < 0.01


def test_discriminative_lrs_and_no_decay_on_biases_and_norms():
    import torchvision

    model = torchvision.models.resnet18(num_classes=4)
    blocks = list_blocks(model)
    first = freeze_until(blocks, "layer2")
    groups = discriminative_groups(model, blocks, first, lr=1e-2, lr_decay=0.5, weight_decay=0.1)
    by_name = {g.name: g for g in groups}
    assert by_name["fc"].lr == pytest.approx(1e-2)
    assert by_name["layer4"].lr == pytest.approx(5e-3)
    assert by_name["layer3"].lr == pytest.approx(2.5e-3)
    assert "layer2" not in by_name and "conv1" not in by_name
    assert by_name["fc/no_decay"].weight_decay == 0.0 and by_name["fc"].weight_decay == 0.1
    no_decay_ids = {id(p) for g in groups if g.name.endswith("/no_decay") for p in g.params}
    assert id(model.fc.bias) in no_decay_ids and id(model.layer3[0].bn1.weight) in no_decay_ids
    assert id(model.layer3[0].conv1.weight) not in no_decay_ids
    everything = discriminative_groups(model, blocks, first, 1e-2, 0.5, 0.1, include_frozen=True)
    assert {"conv1", "layer1/no_decay"} <= {g.name for g in everything}


def test_torn_checkpoint_is_skipped(tmp_path):
    root = tmp_path / "checkpoints"
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_checkpoint(root, "step-00000002", model.state_dict(), opt.state_dict(), {"step": 2})
    torn = root / "step-00000004"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"half")
    found, skipped = latest_checkpoint(root)
    assert found.name == "step-00000002" and skipped == [torn]
    state = load_checkpoint(found)
    assert state["progress"] == {"step": 2}
    restored = torch.optim.AdamW(nn.Linear(3, 2).parameters())
    restored.load_state_dict(state["optimizer"])
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert json.loads((found / "state.json").read_text())["progress"]["step"] == 2
