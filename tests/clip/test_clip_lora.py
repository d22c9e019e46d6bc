"""`tlcli coop --lora` (CLIP-LoRA): adapters on q,k,v of both towers, the zero-shot classifier kept; PEFT's
format on open_clip's own names; merge into a CLIP probe; compare's clip-lora row."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def test_clip_lora_learns_loads_with_peft_and_merges(cli, tiny_config, tiny_weights, image_folder, model_args,
                                                     json_lines, reference_model):
    from peft import PeftModel
    from PIL import Image

    from tlcli_clip.lora import load_lora_predictor
    from tlcli_clip.predictor import load_probe_predictor

    result = cli("coop", image_folder, "--lora", "2", "--epochs", "15", "--lr", "0.01", "--val-split", "0.34",
                 "--json", "--out", "run", "-q", *model_args(tiny_config, tiny_weights))
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    assert summary["method"] == "clip-lora" and summary["lora"] == {"rank": 2, "alpha": 4.0, "dropout": 0.0}
    # q,k,v of the 2 blocks of each tower: a rank-2 LoRA on the fused (192 x 64) in_proj_weight
    assert summary["trainable_params"] == 4 * 2 * (64 + 192)
    # random weights: class names mean nothing to the model, the pixels do
    assert summary["best"]["value"] >= summary["zeroshot_val_accuracy"] + 0.3

    model_dir = Path("run/model")
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["kind"] == "clip-lora" and meta["lora"]["root"] == "clip"
    assert meta["lora"]["targets"] == ["visual.transformer.resblocks.0.attn", "visual.transformer.resblocks.1.attn",
                                       "transformer.resblocks.0.attn", "transformer.resblocks.1.attn"]
    assert not (model_dir / "model.safetensors").exists()  # nothing trained in full: the adapters are all
    assert all(f.stat().st_size < 200_000 for f in Path("run/checkpoints").rglob("*") if f.is_file())

    predictor = load_lora_predictor(model_dir)
    paths = sorted(p for p in image_folder.rglob("*") if p.is_file())[::6]
    batch = torch.stack([predictor.transform(Image.open(p).convert("RGB")) for p in paths])
    probs, embedding = predictor.predict_with_features(batch)
    # PEFT alone, on open_clip's own model with the run's weights: the same image embedding and classifier
    model, tokenizer = reference_model
    import copy

    peft_model = PeftModel.from_pretrained(copy.deepcopy(model), model_dir / "adapter").eval()
    with torch.no_grad():
        clip = peft_model.base_model.model
        image = clip.encode_image(batch)
        text = clip.encode_text(tokenizer([f"a photo of a {c}." for c in ["cat", "dog", "fish"]]))
        logits = clip.logit_scale.exp() * torch.nn.functional.normalize(image, dim=-1) @ \
            torch.nn.functional.normalize(text, dim=-1).T
    assert torch.allclose(image, embedding, atol=1e-5, rtol=0)
    assert torch.allclose(logits.softmax(dim=1), probs, atol=1e-5, rtol=0)

    evaluated = cli("evaluate", "run", image_folder, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    merged = cli("merge", "run", "--out", "merged", "--json")
    assert merged.exit_code == 0, merged.stderr
    merged_meta = json.loads(Path("merged/model/model.json").read_text())
    assert merged_meta["kind"] == "clip-probe" and merged_meta["pretrained"] == "clip.safetensors"
    assert torch.allclose(load_probe_predictor(Path("merged/model")).predict(batch), probs, atol=1e-5, rtol=0)
    again = cli("evaluate", "merged", image_folder, "--json")
    assert (json_lines(again.stdout)[-1]["metrics"]["accuracy"]
            == json_lines(evaluated.stdout)[-1]["metrics"]["accuracy"])


def test_lora_refuses_context_options(cli, tiny_config, image_folder, model_args):
    result = cli("coop", image_folder, "--lora", "2", "--n-ctx", "4", "--out", "run", *model_args(tiny_config))
    assert result.exit_code == 2 and "--n-ctx" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_coop_lora_lr_defaults_to_the_papers(cli, tiny_config, image_folder, model_args):
    import tomllib

    shown = cli("coop", image_folder, "--lora", "2", "--print-config", *model_args(tiny_config))
    assert shown.exit_code == 0, shown.stderr
    assert tomllib.loads(shown.stdout)["lr"] == 2e-4
    plain = cli("coop", image_folder, "--print-config", *model_args(tiny_config))
    assert tomllib.loads(plain.stdout)["lr"] == 2e-3


def test_compare_adds_a_clip_lora_row(cli, tiny_config, image_folder, model_args, json_lines):
    result = cli("compare", image_folder, "--shots", "3", "--no-coop", "--lora", "2", "--lora-epochs", "2", "--json",
                 "--templates", "single", "--out", "cmp", *model_args(tiny_config))
    assert result.exit_code == 0, result.stderr
    rows = json_lines(result.stdout)[:-1]
    assert [(r["method"], r["shots"]) for r in rows] == [("zeroshot", None), ("probe", 3),
                                                         ("probe+zeroshot-init", 3), ("clip-lora", 3)]
    assert rows[-1]["trainable_params"] == 4 * 2 * (64 + 192)
    assert (Path(rows[-1]["run_dir"]) / "model" / "adapter" / "adapter_config.json").is_file()
