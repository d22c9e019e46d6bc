import pytest

from tlcli.plugin import Plugin
from tlcli.registry import LoadedPlugin, Plugins


@pytest.mark.parametrize("model, expected", [
    ("resnet50", ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]),
    ("efficientnet_b0", [f"features.{i}" for i in range(9)] + ["classifier"]),
])
def test_layers_lists_blocks_in_order(cli, model, expected):
    result = cli("layers", model, "--json")
    assert result.exit_code == 0, result.stderr
    rows = result.json_lines()[:-1]
    assert [r["name"] for r in rows] == expected
    assert all(r["params"] > 0 and r["trainable"] for r in rows)


def test_layers_of_transformers_split_their_stacks(cli):
    vit = [r["name"] for r in cli("layers", "vit_b_16", "--json").json_lines()[:-1]]
    assert vit[:3] == ["class_token", "conv_proj", "encoder.pos_embedding"]
    assert "encoder.layers.encoder_layer_11" in vit and vit[-1] == "heads"
    clip = [r["name"] for r in cli("layers", "clip:ViT-B-32", "--json").json_lines()[:-1]]
    assert "visual.transformer.resblocks.0" in clip and clip[-2:] == ["visual.proj", "head"]


def test_layers_and_finetune_accept_the_same_clip_block_names(cli):
    """Every name `layers clip:...` lists is a block of the model `finetune --model clip:...` builds; the
    tower-relative name (transformer.resblocks.8) is accepted by both too."""
    from tlcli.engine.params import block_name, freeze_until, list_blocks
    from tlcli.models.vision import build_vision_model

    listed = [r["name"] for r in cli("layers", "clip:ViT-B-32", "--json").json_lines()[:-1]]
    blocks = list_blocks(build_vision_model("clip:ViT-B-32", "none", num_classes=5).model)  # as FinetuneTask does
    assert listed == [b.name for b in blocks]
    freeze_until(blocks, block_name(blocks, "transformer.resblocks.8"))
    frozen = [b.name for b in blocks if not b.trainable]
    assert frozen[-1] == "visual.transformer.resblocks.8"
    preview = cli("layers", "clip:ViT-B-32", "--freeze-until", "transformer.resblocks.8", "--json").json_lines()[:-1]
    assert [r["name"] for r in preview if not r["trainable"]] == frozen


def test_layers_freeze_preview_and_unknown_model(cli):
    rows = cli("layers", "resnet18", "--freeze-until", "layer2", "--json").json_lines()[:-1]
    assert [r["trainable"] for r in rows] == [False, False, False, False, True, True, True]
    unknown = cli("layers", "resnet17")
    assert unknown.exit_code == 2 and "resnet18" in unknown.stderr


def test_help_lists_every_command_with_a_purpose(cli):
    text = cli("--help").stdout
    for command in ("finetune", "layers", "predict", "evaluate", "plugins", "monitor"):
        assert command in text


def test_a_plugin_that_fails_to_register_is_reported_not_fatal(cli, monkeypatch):
    import tlcli.registry as registry

    def broken(app):
        raise RuntimeError("boom")

    real = registry.load_plugins()
    fake = Plugins(real.loaded + [LoadedPlugin(Plugin(name="broken", register_commands=broken), "x", "1")],
                   real.failed)
    monkeypatch.setattr(registry, "load_plugins", lambda: fake)
    result = cli("plugins", "--json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in result.json_lines()[:-1]}
    assert rows["broken"]["status"] == "failed" and "boom" in rows["broken"]["error"]
    assert rows["finetune"]["status"] == "ok"
    assert cli("layers", "resnet18", "--json").exit_code == 0


def test_layers_lora_targets_match_what_finetune_adapts(cli, tmp_path):
    """`layers --lora-targets` lists the modules `finetune --lora` adapts (the new head never), and the
    adapter parameters PEFT adds at the rank."""
    rows = cli("layers", "timm:test_vit", "--lora-targets", "default", "--json").json_lines()
    modules, summary = rows[:-1], rows[-1]
    assert [r["name"] for r in modules[:4]] == ["blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1",
                                                "blocks.0.mlp.fc2"]
    assert len(modules) == 24 and summary["rank"] == 8 and summary["heads"] == ["head"]
    assert modules[0]["adapts"] == "linear 64->192" and modules[0]["adapter_params"] == 8 * (64 + 192)
    globbed = cli("layers", "timm:test_vit", "--lora-targets", "blocks.5.*,patch_embed.proj", "--lora", "2",
                  "--json").json_lines()[:-1]
    assert [r["name"] for r in globbed] == ["patch_embed.proj", "blocks.5.attn.qkv", "blocks.5.attn.proj",
                                            "blocks.5.mlp.fc1", "blocks.5.mlp.fc2"]
    assert globbed[0]["adapts"].startswith("conv 3->64")
    # torch's MultiheadAttention: q,k,v through in_proj_weight; its out_proj is never a target
    vit = cli("layers", "vit_b_16", "--lora-targets", "default", "--json").json_lines()[:-1]
    assert vit[0] == {"name": "encoder.layers.encoder_layer_0.self_attention",
                      "adapts": "q,k,v (in_proj_weight 2304x768)", "params": 2362368, "adapter_params": 8 * 3072}
    assert [r["name"] for r in vit[1:3]] == ["encoder.layers.encoder_layer_0.mlp.0",
                                             "encoder.layers.encoder_layer_0.mlp.3"]
    assert not any("out_proj" in r["name"] or r["name"].startswith("heads") for r in vit)
    cnn = cli("layers", "resnet18", "--lora-targets", "default", "--json").json_lines()[:-1]
    assert cnn[0]["name"] == "conv1" and all("3x3" in r["adapts"] or "7x7" in r["adapts"] for r in cnn)
    none = cli("layers", "resnet18", "--lora-targets", "nothing_here")
    assert none.exit_code == 2 and "matches" in none.stderr and len(none.stderr.strip().splitlines()) == 1
    rank_alone = cli("layers", "resnet18", "--lora", "4")
    assert rank_alone.exit_code == 2 and "--lora-targets" in rank_alone.stderr
