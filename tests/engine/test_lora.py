"""LoRA through the engine's seam: PEFT's numbers, a frozen base, merged equal to unmerged."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlcli.adapters.lora import apply_lora, default_targets, matching_modules, merge_lora, save_adapter
from tlcli.engine.loop import fit
from tlcli.engine.task import Task, TrainConfig
from tlcli.fields import LoRAOptions


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)

    def forward(self, x):
        return x + self.fc2(torch.tanh(self.fc1(x)))


class Net(nn.Module):
    def __init__(self, width=6, classes=3):
        super().__init__()
        self.stem = nn.Linear(5, width)
        self.blocks = nn.Sequential(Block(width), Block(width))
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class LoRAConfig(TrainConfig, LoRAOptions):
    pass


class NetTask(Task):
    def __init__(self, cfg, x, y):
        self.cfg, self.x, self.y = cfg, x, y

    def describe(self):
        return {"command": "test", "plugin": "test", "model": "net"}

    def build_model(self):
        torch.manual_seed(0)
        return Net()

    def heads(self, model):
        return ["head"]

    def train_dataset(self):
        x, y = self.x, self.y

        class Data(torch.utils.data.Dataset):
            def __len__(self):
                return len(x)

            def __getitem__(self, key):
                return x[key[0]], y[key[0]]

        return Data()

    def training_step(self, model, batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    def export(self, model, run_dir, result):
        self.trained = model


def _data(n=32):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def test_default_targets_are_the_block_linears_not_the_head_or_a_conv_stem():
    assert default_targets(Net(), exclude=["head"]) == ["blocks.0.fc1", "blocks.0.fc2", "blocks.1.fc1",
                                                        "blocks.1.fc2"]
    assert matching_modules(Net(), ["blocks.1.*"]) == ["blocks.1.fc1", "blocks.1.fc2"]
    assert matching_modules(Net(), ["fc2"], exclude=["blocks.0"]) == ["blocks.1.fc2"]
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, groups=4))
    assert default_targets(cnn) == ["0"]


def test_engine_trains_only_adapters_and_head(tmp_path):
    x, y = _data()
    cfg = LoRAConfig(epochs=2, batch_size=8, lr=0.05, scheduler="constant", device="cpu", precision="fp32",
                     workers=0, lora=2)
    task = NetTask(cfg, x, y)
    fit(task, cfg, tmp_path / "run")
    torch.manual_seed(0)
    before = Net()
    trained = task.trained.state_dict()
    for key, value in before.state_dict().items():
        lora_key = key.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        if key.startswith("head."):
            assert not torch.equal(trained[key], value), key  # the head trains in full
        elif lora_key in trained:
            assert torch.equal(trained[lora_key], value), key  # adapted layers' base weights are untouched
        else:
            assert torch.equal(trained[key], value), key  # the stem: frozen, not adapted
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in trained.items() if "lora_B" in k)
    head = sum(p.numel() for p in before.head.parameters())
    trainable = sum(p.numel() for p in task.trained.parameters() if p.requires_grad)
    assert trainable == head + 4 * 2 * (6 + 12)  # rank 2: A (2 x in) + B (out x 2) per adapted layer


def test_forward_and_backward_equal_peft_and_merge_equals_unmerged(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    torch.manual_seed(0)
    base = Net()
    ours = copy.deepcopy(base)
    targets = apply_lora(ours, 4, alpha=8, targets=default_targets(ours, ["head"]), keep_training=["head"])
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                                            modules_to_save=["head"]))
    # Same initialisation: copy our A and B (B nonzero so the adapters matter) into PEFT's.
    torch.manual_seed(1)
    for name, param in ours.named_parameters():
        if "lora_" in name:
            with torch.no_grad():
                param.normal_(std=0.2)
                theirs.get_parameter("base_model.model." + name).copy_(param)
    x, y = _data(8)
    loss_ours = F.cross_entropy(ours(x), y)
    loss_theirs = F.cross_entropy(theirs(x), y)
    loss_ours.backward(), loss_theirs.backward()
    assert torch.allclose(loss_ours, loss_theirs, atol=1e-6)
    for name, param in ours.named_parameters():
        if "lora_" in name:
            other = theirs.get_parameter("base_model.model." + name)
            assert torch.allclose(param.grad, other.grad, atol=1e-6), name
    # PEFT's format on disk: PeftModel.from_pretrained(base) rebuilds our outputs.
    save_adapter(ours, tmp_path / "adapter", 4, 8, 0.0, targets)
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "adapter")
    # (the head is not part of the adapter file: it is saved beside it as in any run)
    with torch.no_grad():
        h = ours.stem(x)
        assert torch.allclose(loaded.base_model.model.blocks(h), ours.blocks(h), atol=1e-6)
        merged = merge_lora(copy.deepcopy(ours))
        assert set(merged.state_dict()) == set(base.state_dict())
        assert torch.allclose(merged(x), ours(x), atol=1e-5)


def test_targets_matching_nothing_is_a_usage_error(tmp_path):
    from tlcli.console.errors import UsageError

    x, y = _data()
    cfg = LoRAConfig(epochs=1, batch_size=8, device="cpu", precision="fp32", workers=0, lora=2,
                     lora_targets="nothing_like_this")
    with pytest.raises(UsageError, match="matched nothing"):
        fit(NetTask(cfg, x, y), cfg, tmp_path / "run")
