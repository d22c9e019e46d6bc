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


# --- PEFT's numbers on real architectures: a timm ViT, an open_clip tower, torch's MultiheadAttention ---------

def _tiny_vit():
    import timm

    torch.manual_seed(0)
    return timm.create_model("test_vit", num_classes=3, img_size=32).eval()


def _tiny_clip():
    import open_clip
    from open_clip import factory

    from support.clip import TINY_CONFIG

    factory._MODEL_CONFIGS["tiny-test-clip"] = dict(TINY_CONFIG)
    torch.manual_seed(0)
    return open_clip.create_model("tiny-test-clip").eval()


def _same_adapters(ours, theirs, prefix="base_model.model."):
    """Random A and B (B nonzero, so the adapters change the output) copied from ours into PEFT's model."""
    torch.manual_seed(1)
    count = 0
    for name, param in ours.named_parameters():
        if ".lora_" in name:
            with torch.no_grad():
                param.normal_(std=0.1)
                theirs.get_parameter(prefix + name).copy_(param)
            count += 1
    assert count


def _assert_equal_to_peft(ours, theirs, run, prefix="base_model.model."):
    out_ours, out_theirs = run(ours), run(theirs)
    out_ours.square().sum().backward()
    out_theirs.square().sum().backward()
    assert torch.allclose(out_ours, out_theirs, atol=1e-6, rtol=0)
    grads = 0
    for name, param in ours.named_parameters():
        if ".lora_" in name:
            other = theirs.get_parameter(prefix + name)
            assert torch.allclose(param.grad, other.grad, atol=1e-6, rtol=0), name
            assert param.grad.abs().sum() > 0, name  # every adapter is on the forward path
            grads += 1
    return grads


def test_timm_vit_equals_peft_forward_backward_merged_and_reloaded(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base = _tiny_vit()
    ours = copy.deepcopy(base)
    targets = apply_lora(ours, 4, alpha=8, targets=default_targets(ours, ["head"]), keep_training=["head"])
    assert targets[:4] == ["blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2"]
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    _same_adapters(ours, theirs)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert _assert_equal_to_peft(ours, theirs, lambda m: m(x)) == 2 * len(targets)
    save_adapter(ours, tmp_path / "adapter", 4, 8, 0.0, targets)
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "adapter").eval()
    with torch.no_grad():
        head_in = lambda m: m.forward_head(m.forward_features(x), pre_logits=True)  # noqa: E731  (no head)
        assert torch.allclose(head_in(loaded.base_model.model), head_in(ours), atol=1e-6, rtol=0)
        unmerged = ours(x)
        merged = merge_lora(ours)
        assert set(merged.state_dict()) == set(base.state_dict())
        assert torch.allclose(merged(x), unmerged, atol=1e-5, rtol=0)


def test_open_clip_tower_attention_is_adapted_through_in_proj_weight_as_peft_does(tmp_path):
    """open_clip's attention is nn.MultiheadAttention: q,k,v are one in_proj_weight parameter, adapted with
    PEFT's target_parameters; its out_proj (never called as a module) is never a target."""
    from peft import LoraConfig, PeftModel, get_peft_model

    from tlcli.adapters.lora import adapter_state

    visual = _tiny_clip().visual
    targets = default_targets(visual)
    assert "transformer.resblocks.0.attn" in targets and "transformer.resblocks.0.mlp.c_fc" in targets
    assert not any(t.endswith("out_proj") for t in targets)
    assert matching_modules(visual, ["out_proj"]) == []
    ours = copy.deepcopy(visual)
    apply_lora(ours, 2, alpha=4, targets=targets)
    linear = [t for t in targets if not t.endswith(".attn")]
    parameters = [f"{t}.in_proj_weight" for t in targets if t.endswith(".attn")]
    theirs = get_peft_model(copy.deepcopy(visual), LoraConfig(r=2, lora_alpha=4, target_modules=linear,
                                                              target_parameters=parameters))
    _same_adapters(ours, theirs)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    assert _assert_equal_to_peft(ours, theirs, lambda m: m(x)) == 2 * len(targets)
    # PEFT's format: the adapters load into a fresh tower through PEFT alone
    save_adapter(ours, tmp_path / "adapter", 2, 4, 0.0, targets)
    loaded = PeftModel.from_pretrained(copy.deepcopy(visual), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), ours(x), atol=1e-6, rtol=0)
        unmerged = ours(x)
        merged = merge_lora(ours)
        assert set(merged.state_dict()) == set(visual.state_dict())
        assert torch.allclose(merged(x), unmerged, atol=1e-5, rtol=0)
        assert not torch.equal(merged.transformer.resblocks[0].attn.in_proj_weight,
                               visual.transformer.resblocks[0].attn.in_proj_weight)
    assert set(adapter_state(theirs.base_model.model)) == set(adapter_state(loaded.base_model.model))


def test_whole_clip_both_towers_names_peft_would_confuse_are_saved_exactly(tmp_path):
    """The text tower's transformer.resblocks.0.mlp.c_fc is a suffix of the image tower's
    visual.transformer.resblocks.0.mlp.c_fc: PEFT's list matching would adapt both, so the saved config
    names the chosen modules by an anchored expression, and PEFT rebuilds exactly those."""
    import json

    from peft import PeftModel

    from tlcli.adapters.lora import adapted_modules

    clip = _tiny_clip()
    ours = copy.deepcopy(clip)
    text_only = matching_modules(ours, ["c_fc"])
    text_only = [t for t in text_only if not t.startswith("visual.")]
    apply_lora(ours, 2, targets=text_only)
    assert adapted_modules(ours) == text_only
    save_adapter(ours, tmp_path / "adapter", 2, 4, 0.0, text_only)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert isinstance(config["target_modules"], str) and config["target_modules"].startswith("^(?:")
    loaded = PeftModel.from_pretrained(copy.deepcopy(clip), tmp_path / "adapter")
    assert adapted_modules(loaded.base_model.model) == text_only
    # a parameter target cannot be anchored: PEFT would widen it, which is refused
    with pytest.raises(ValueError, match="also adapt visual.transformer"):
        apply_lora(copy.deepcopy(clip), 2, targets=["transformer.resblocks.0.attn"])


def test_torch_transformer_layer_defaults_and_dropout_on_attention_is_refused():
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    assert default_targets(layer) == ["self_attn", "linear1", "linear2"]
    with pytest.raises(ValueError, match="--lora-dropout"):
        apply_lora(copy.deepcopy(layer), 2, dropout=0.1)
    assert matching_modules(layer, ["default", "norm1"]) == ["self_attn", "linear1", "linear2"]  # norms: not adaptable
    assert matching_modules(layer, ["linear*"]) == ["linear1", "linear2"]


def test_checkpoints_hold_adapters_and_head_not_the_frozen_base(tmp_path):
    from safetensors.torch import load_file

    x, y = _data()
    cfg = LoRAConfig(epochs=1, batch_size=8, lr=0.05, scheduler="constant", device="cpu", precision="fp32",
                     workers=0, lora=2)
    fit(NetTask(cfg, x, y), cfg, tmp_path / "run")
    [folder] = [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith("step-")]
    keys = set(load_file(str(folder / "model.safetensors")))
    assert keys == {"head.weight", "head.bias"} | {f"blocks.{b}.{fc}.lora_{ab}.default.weight" for b in (0, 1)
                                                   for fc in ("fc1", "fc2") for ab in "AB"}
    state = __import__("json").loads((folder / "state.json").read_text())
    assert len(state["progress"]["frozen_digest"]) == 64


def test_resume_refuses_a_base_that_changed(tmp_path):
    from tlcli.console.errors import UsageError

    x, y = _data()
    cfg = LoRAConfig(epochs=2, max_steps=2, batch_size=8, device="cpu", precision="fp32", workers=0, lora=2)
    fit(NetTask(cfg, x, y), cfg, tmp_path / "run")

    class OtherBase(NetTask):
        def build_model(self):
            torch.manual_seed(5)  # other base weights than the run trained on
            return Net()

    with pytest.raises(UsageError, match="frozen base weights"):
        fit(OtherBase(cfg, x, y), cfg.model_copy(update={"max_steps": 4}), tmp_path / "run", resume=True)
