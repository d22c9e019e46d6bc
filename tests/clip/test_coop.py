"""tlcli coop: learned prompts beat zero-shot where class names carry no signal; small checkpoints; reuse."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def test_coop_beats_zero_shot_and_prompts_are_reusable(cli, tiny_config, image_folder, model_args, json_lines):
    # A random-init model: the class names mean nothing to it, the pixels do.
    result = cli("coop", image_folder, "--n-ctx", "4", "--epochs", "25", "--lr", "0.01", "--val-split", "0.34",
                 "--json", "--out", "run", "-q", *model_args(tiny_config))
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    assert summary["status"] == "finished"
    assert summary["best"]["value"] >= summary["zeroshot_val_accuracy"] + 0.3
    assert summary["trainable_params"] == 4 * 64

    model_dir = Path("run/model")
    assert json.loads((model_dir / "model.json").read_text())["kind"] == "clip-coop"
    assert (model_dir / "prompt.safetensors").stat().st_size < 10_000
    assert all(f.stat().st_size < 100_000 for f in Path("run/checkpoints").rglob("*") if f.is_file())
    assert any(json.loads(line)["kind"] == "run_end" for line in Path("run/events.jsonl").read_text().splitlines())

    plain = cli("zeroshot", image_folder, "--eval", "--json", "--templates", "single", *model_args(tiny_config))
    learned = cli("zeroshot", image_folder, "--eval", "--json", "--prompt", "run", "--precision", "fp32")
    assert plain.exit_code == 0 and learned.exit_code == 0, learned.stderr
    plain_acc = json_lines(plain.stdout)[-1]["metrics"]["accuracy"]
    learned_acc = json_lines(learned.stdout)[-1]["metrics"]["accuracy"]
    assert learned_acc >= plain_acc + 0.3

    from PIL import Image

    from tlcli_clip.predictor import load_coop_predictor

    predictor = load_coop_predictor(model_dir, "cpu")
    paths = sorted((image_folder / "fish").iterdir())[:4]
    probs = predictor.predict(torch.stack([predictor.transform(Image.open(p).convert("RGB")) for p in paths]))
    assert probs.shape == (4, 3)
    assert (probs.argmax(dim=1) == 2).float().mean() >= 0.75


def test_init_phrase_and_class_specific(tiny_config, tmp_path, monkeypatch):
    from tlcli.models.clip import load_clip
    from tlcli_clip.coop import PromptedTextEncoder
    from tlcli_clip.text import build_zero_shot_head

    monkeypatch.setenv("TLCLI_HOME", str(tmp_path))
    clip = load_clip(str(tiny_config), "none", "cpu", "fp32")
    labels = ["cat", "dog"]
    encoder = PromptedTextEncoder(clip, labels, 16, False, init="a photo of a")
    assert encoder.n_ctx == 4 and tuple(encoder.ctx.shape) == (4, 64)
    # Initialised from "a photo of a", the prompt is exactly the template "a photo of a {}."
    with torch.no_grad():
        torch.testing.assert_close(encoder.text_features(), build_zero_shot_head(clip, labels, ["a photo of a {}."]),
                                   atol=1e-5, rtol=0)
    specific = PromptedTextEncoder(clip, labels, 3, True)
    assert tuple(specific.ctx.shape) == (2, 3, 64)
    # The engine keeps what the task declares frozen out of checkpoints: only the context is saved.
    from tlcli.engine.frozen import FrozenParts
    from tlcli_clip.coop import CoopTask

    frozen = FrozenParts(specific, CoopTask.frozen_modules(None, specific))
    assert list(frozen.trainable_state(specific)) == ["ctx"]
    assert sum(p.numel() for p in specific.parameters() if p.requires_grad) == 2 * 3 * 64
