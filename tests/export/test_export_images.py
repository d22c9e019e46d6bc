"""`tlcli export` of image classifiers: a fine-tuned run, a distilled student (the fine-tuning layout), and
CLIP probe, CoOp and visual-prompt runs on a tiny CLIP. Each file's logits against the run's own network
(ONNX Runtime within 1e-4, TorchScript within 1e-5), and `tlcli predict FILE` against `tlcli predict RUN`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tlcli.cli.report import summary_problems
from support.export import (
    assert_same_predictions, image_batch, onnx_input_shapes, onnx_logits, predictions, torchscript_logits,
)

CPU = ["--device", "cpu"]


def _export(cli, run, *args) -> dict:
    result = cli("export", run, "--json", *args)
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary["command"] == "export" and summary["status"] == "finished"
    assert summary_problems(summary) == []
    return summary


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_finetune_run_to_onnx_and_torchscript(cli, image_folder, tmp_path):
    from tlcli.cli.predict import load_run_predictor

    trained = cli("finetune", image_folder, "--model", "timm:test_resnet", "--pretrained", "none", "--image-size",
                  "32", "--batch-size", "8", "--workers", "0", "--precision", "fp32", "--epochs", "1", "--out", "run",
                  "--quiet", *CPU)
    assert trained.exit_code == 0, trained.stderr

    onnx_summary = _export(cli, "run")
    file = Path("run/export/model.onnx")
    assert onnx_summary["file"] == str(file) and file.is_file() and onnx_summary["replaced"] is False
    assert onnx_summary["max_abs_diff"] < 1e-4 and onnx_summary["checked_with"].startswith("onnxruntime")
    assert onnx_input_shapes(file) == {"pixels": [1, 3, 32, 32]}  # no --dynamic-batch: a batch of one
    sidecar = json.loads(Path("run/export/model.onnx.json").read_text())
    pre = json.loads(Path("run/model/preprocessing.json").read_text())
    assert sidecar["labels"] == json.loads(Path("run/model/labels.json").read_text())
    assert sidecar["preprocessing"] == {k: pre[k] for k in ("resize", "crop", "mean", "std", "interpolation")}
    assert sidecar["source"]["kind"] == "image-classifier" and sidecar["files"]["sha256"]

    import onnx

    props = {p.key: p.value for p in onnx.load(str(file)).metadata_props}
    assert json.loads(props["labels"]) == sidecar["labels"]
    assert json.loads(props["preprocessing"]) == sidecar["preprocessing"] and props["modality"] == "image"

    ts_summary = _export(cli, "run", "--format", "torchscript", "--dynamic-batch")
    assert ts_summary["file"] == "run/export/model.pt" and ts_summary["max_abs_diff"] < 1e-5

    # Logits: the run's own network (what `tlcli predict run` runs) against each file, on real images.
    predictor = load_run_predictor(Path("run"), "cpu")
    batch = image_batch(predictor, _images(image_folder)[:5])
    with torch.no_grad():
        expected = predictor.model(batch).numpy()
    onnx_rows = np.concatenate([onnx_logits(file, row[None].numpy()) for row in batch])
    assert np.abs(onnx_rows - expected).max() < 1e-4
    assert np.abs(torchscript_logits(Path("run/export/model.pt"), batch) - expected).max() < 1e-5

    # predict and evaluate on the files: the same lines as on the run.
    on_run = predictions(cli, "run", image_folder)
    assert_same_predictions(on_run, predictions(cli, file, image_folder))
    assert_same_predictions(on_run, predictions(cli, file, image_folder, extra=["--backend", "onnxruntime"]))
    assert_same_predictions(on_run, predictions(cli, "run/export/model.pt", image_folder), tolerance=1e-5)
    run_eval = cli("evaluate", "run", image_folder, "--json", *CPU).json_lines()[-1]
    file_eval = cli("evaluate", file, image_folder, "--json", *CPU).json_lines()[-1]
    assert file_eval["metrics"] == run_eval["metrics"]
    assert Path("run/export/model-confusion.svg").read_text().startswith("<svg")


def test_distilled_student_exports_with_a_dynamic_batch(cli, image_folder, tmp_path):
    """`tlcli distill` writes its student (mobilenet_v3_small by default) in the fine-tuning layout; a random
    one with moved BatchNorm statistics stands in for a trained one."""
    from tlcli.cli.predict import load_run_predictor
    from tlcli.models.vision import IMAGENET_MEAN, IMAGENET_STD, build_vision_model
    from tlcli.runs.artifacts import write_model

    torch.manual_seed(0)
    student = build_vision_model("mobilenet_v3_small", "none", num_classes=3).model
    for module in student.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    write_model(tmp_path / "student" / "model", kind="image-classifier", plugin="distill",
                tensors=student.state_dict(), labels=["cat", "dog", "fish"], model="mobilenet_v3_small",
                preprocessing={"resize": 72, "crop": 64, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                               "interpolation": "bilinear"})

    summary = _export(cli, "student", "--dynamic-batch", "--out", "student.onnx")
    assert summary["dynamic_batch"] is True and summary["inputs"][0]["shape"] == ["batch", 3, 64, 64]
    assert onnx_input_shapes(Path("student.onnx")) == {"pixels": ["batch", 3, 64, 64]}
    predictor = load_run_predictor(Path("student"), "cpu")
    batch = image_batch(predictor, _images(image_folder)[:7])
    with torch.no_grad():
        expected = predictor.model(batch).numpy()
    assert np.abs(onnx_logits(Path("student.onnx"), batch.numpy()) - expected).max() < 1e-4  # a batch of 7

    _export(cli, "student", "--format", "torchscript", "--out", "student.pt")
    assert np.abs(torchscript_logits(Path("student.pt"), batch) - expected).max() < 1e-5

    on_run = predictions(cli, "student", image_folder)
    assert_same_predictions(on_run, predictions(cli, "student.onnx", image_folder))
    assert_same_predictions(on_run, predictions(cli, "student.pt", image_folder), tolerance=1e-5)


def _clip_args(tiny_clip):
    return ["--model", str(tiny_clip), "--pretrained", "none", "--precision", "fp32", *CPU, "--quiet"]


@pytest.mark.parametrize("method", ["probe", "coop", "vprompt"])
def test_clip_runs_export_tower_and_head_as_one_graph(cli, image_folder, tiny_clip, method):
    extra = {"probe": [], "coop": ["--n-ctx", "2", "--epochs", "1"],
             "vprompt": ["--pad", "4", "--epochs", "1", "--templates", "single", "--batch-size", "8"]}[method]
    trained = cli(method, image_folder, *_clip_args(tiny_clip), *extra, "--out", "run")
    assert trained.exit_code == 0, trained.stderr

    summary = _export(cli, "run", "--dynamic-batch")
    assert summary["max_abs_diff"] < 1e-4
    meta = json.loads(Path("run/export/model.onnx.json").read_text())
    # open_clip's eval transform for this tower, in model/ terms: resize the short side, crop, normalise.
    assert meta["preprocessing"]["resize"] == meta["preprocessing"]["crop"] == 32
    assert meta["preprocessing"]["interpolation"] == "bicubic"
    assert meta["source"]["kind"] == f"clip-{method}"

    # The same lines from the file (eval_transform from the metadata) as from the run (open_clip's transform).
    assert_same_predictions(predictions(cli, "run", image_folder),
                            predictions(cli, "run/export/model.onnx", image_folder))


def test_clip_preprocessing_from_metadata_is_open_clips_transform(tiny_clip, image_folder):
    from tlcli.data.decoded import eval_transform
    from tlcli.data.images import load_image
    from tlcli.models.clip import load_clip

    clip = load_clip(str(tiny_clip), "none", "cpu", "fp32")
    rebuilt = eval_transform(clip.eval_preprocessing())
    for path in _images(image_folder)[:6]:
        image = load_image(path)
        assert torch.equal(rebuilt(image), clip.preprocess(image))
