"""tlcli zeroshot against open_clip's own computation, on a tiny random model."""

from __future__ import annotations

import time

import pytest
import torch



def _reference_images(model, paths):
    import open_clip
    from PIL import Image

    preprocess = open_clip.image_transform(model.visual.image_size, is_train=False)
    return torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])


def test_single_template_equals_open_clip(cli, tiny_config, tiny_weights, image_folder, model_args, json_lines,
                                         reference_model):
    labels = ["cat", "dog", "fish"]
    result = cli("zeroshot", image_folder, "--labels", ",".join(labels), "--templates", "single", "--json",
                 "--top-k", "3", *model_args(tiny_config, tiny_weights))
    assert result.exit_code == 0, result.stderr
    records = json_lines(result.stdout)[:-1]
    assert len(records) == 36
    model, tokenizer = reference_model
    paths = [r["path"] for r in records]
    with torch.no_grad():
        image = model.encode_image(_reference_images(model, paths), normalize=True)
        text = model.encode_text(tokenizer([f"a photo of a {c}." for c in labels]), normalize=True)
        expected = (model.logit_scale.exp() * image @ text.T).softmax(dim=-1)
    for row, record in enumerate(records):
        got = {t["label"]: t["score"] for t in record["top"]}
        for j, name in enumerate(labels):
            assert got[name] == pytest.approx(float(expected[row, j]), abs=1e-5)
        assert record["label"] == labels[int(expected[row].argmax())]


def test_ensemble_equals_build_zero_shot_classifier(tiny_config, tiny_weights, tmp_path, monkeypatch,
                                                   reference_model):
    import open_clip

    from tlcli.models.clip import load_clip
    from tlcli_clip.text import build_zero_shot_head, resolve_templates

    monkeypatch.setenv("TLCLI_HOME", str(tmp_path))
    labels = ["cat", "dog", "goldfish"]
    clip = load_clip(str(tiny_config), str(tiny_weights), "cpu", "fp32")
    head = build_zero_shot_head(clip, labels, resolve_templates("ensemble"))
    model, tokenizer = reference_model
    expected = open_clip.build_zero_shot_classifier(model, tokenizer, labels, open_clip.OPENAI_IMAGENET_TEMPLATES)
    assert head.shape == (3, 32)
    torch.testing.assert_close(head, expected.T, atol=1e-5, rtol=0)
    cached = build_zero_shot_head(clip, labels, resolve_templates("ensemble"))  # from the text cache
    torch.testing.assert_close(cached, head)


def test_eval_threshold_and_bad_files(cli, tiny_config, image_folder, tmp_path, model_args, json_lines):
    result = cli("zeroshot", image_folder, "--eval", "--json", "--templates", "single", *model_args(tiny_config))
    assert result.exit_code == 0, result.stderr
    lines = json_lines(result.stdout)
    summary = lines[-1]
    assert summary["command"] == "zeroshot" and summary["images"] == 36
    metrics = summary["metrics"]
    assert set(metrics) >= {"accuracy", "top5_accuracy", "mean_recall", "per_class", "confusion"}
    assert metrics["top5_accuracy"] == 1.0 and sum(map(sum, metrics["confusion"])) == 36
    assert set(metrics["per_class"]) == {"cat", "dog", "fish"}
    assert sum(c["support"] for c in metrics["per_class"].values()) == 36
    assert all("truth" in line for line in lines[:-1])

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    good = sorted((image_folder / "cat").iterdir())[:3]
    listing = "\n".join(str(p) for p in [*good, broken]) + "\n"
    result = cli("zeroshot", "-", "--labels", "cat,dog", "--threshold", "0.99", "--json", "--max-bad", "50%",
                 "--templates", "single", *model_args(tiny_config), input=listing)
    assert result.exit_code == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r["label"] for r in records[:-1]] == ["unknown"] * 3 and records[-1]["images"] == 3
    assert "broken.jpg" in result.stderr and "Traceback" not in result.stderr


def test_usage_errors(cli, tiny_config, image_folder, model_args):
    result = cli("zeroshot", image_folder, *model_args(tiny_config))
    assert result.exit_code == 2 and "--labels" in result.stderr
    result = cli("zeroshot", image_folder, "--labels", "cat,dog", "--model", "ViT-B-99")
    assert result.exit_code == 2 and "ViT-B" in result.stderr
    result = cli("zeroshot", image_folder, "--labels", "cat,dog", "--model", str(tiny_config))
    assert result.exit_code == 2 and "--pretrained" in result.stderr


def test_offline_without_cached_weights_fails_fast(cli, image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/clip either
    started = time.time()
    result = cli("zeroshot", image_folder, "--labels", "cat,dog", "--model", "ViT-B-32",
                 "--pretrained", "laion2b_s34b_b79k")
    assert time.time() - started < 10
    assert result.exit_code == 2, result.stderr
    assert "not cached" in result.stderr and "--pretrained FILE" in result.stderr
    result = cli("zeroshot", image_folder, "--labels", "cat,dog", "--model", "hf-hub:nobody/nothing")
    assert result.exit_code == 2 and "local-dir:" in result.stderr


def test_bf16_on_the_cpu_uses_packed_kernels_and_agrees_with_open_clip(tiny_config, tiny_weights, tmp_path,
                                                                       monkeypatch, reference_model, image_folder):
    import torch.nn.functional as F

    from tlcli.models.clip import load_clip
    from tlcli.models.packed import ClassTokenOnlyBlock, PackedLinear, packing_available

    if not packing_available(torch.device("cpu"), torch.bfloat16):
        pytest.skip("no oneDNN bf16 packed linear here")
    monkeypatch.setenv("TLCLI_HOME", str(tmp_path))
    clip = load_clip(str(tiny_config), str(tiny_weights), "cpu", "bf16")
    fp32 = load_clip(str(tiny_config), str(tiny_weights), "cpu", "fp32")
    assert clip.spec["kernels"] == "onednn-packed" and fp32.spec["kernels"] == "default"
    assert clip.key != fp32.key  # separate feature caches
    assert any(isinstance(m, PackedLinear) for m in clip.model.visual.modules())
    assert isinstance(clip.model.visual.transformer.resblocks[-1], ClassTokenOnlyBlock)
    model, _ = reference_model
    paths = sorted(image_folder.glob("*/*"))[:8]
    images = _reference_images(model, paths)
    with torch.no_grad():
        expected = model.encode_image(images)
    got = clip.encode_images(images)
    assert (1 - F.cosine_similarity(got, expected)).max() < 2e-3


def test_zeroshot_on_cached_features_and_labels_imports_neither_torch_nor_open_clip(
        cli, tiny_config, tiny_weights, image_folder, model_args, json_lines, tmp_path):
    """A second zeroshot over the same images and labels reads image features, label embeddings and the
    logit scale from the cache: same lines, in a fraction of a second instead of ~7 s of imports."""
    import os
    import subprocess
    import sys

    from tlcli.hardware import no_gpu_possible

    if not no_gpu_possible():
        pytest.skip("GPU device nodes present: device 'auto' has to ask torch")
    args = ["zeroshot", str(image_folder), "--labels", "cat,dog,fish", "--json", "--eval",
            *map(str, model_args(tiny_config, tiny_weights))]
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('LOADED', 'torch' in sys.modules, 'open_clip' in sys.modules,"
            " file=sys.stderr))\n"
            f"sys.argv[1:] = {args!r}\n"
            "from tlcli.cli import main\n"
            "main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "TLCLI_PLUGINS": "clip"})
    assert done.returncode == 0, done.stderr
    assert "LOADED False False" in done.stderr
    again, before = json_lines(done.stdout), json_lines(first.stdout)
    assert [r for r in again if "path" in r] == [r for r in before if "path" in r]
    assert again[-1]["cached"] == 36 and again[-1]["metrics"] == before[-1]["metrics"]
