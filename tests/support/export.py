"""Exported files against their runs: `tlcli predict` on both, ONNX Runtime and TorchScript logits."""

from __future__ import annotations

from pathlib import Path

import pytest


def predictions(cli, source, *inputs, extra=()) -> list[dict]:
    result = cli("predict", source, *inputs, "--json", "--device", "cpu", "-k", "10", *extra)
    assert result.exit_code == 0, result.stderr
    *lines, summary = result.json_lines()
    assert summary["command"] == "predict" and summary["status"] == "finished"
    return lines


def assert_same_predictions(run_lines: list[dict], file_lines: list[dict], tolerance: float = 1e-4) -> None:
    """The same inputs, the same top-1 labels, every class probability within ``tolerance``."""
    assert len(run_lines) == len(file_lines) > 0
    for ours, theirs in zip(run_lines, file_lines):
        assert set(ours) == set(theirs)
        assert ours.get("path", ours.get("text")) == theirs.get("path", theirs.get("text"))
        assert ours["label"] == theirs["label"]
        run_scores = {t["label"]: t["score"] for t in ours["top"]}
        file_scores = {t["label"]: t["score"] for t in theirs["top"]}
        assert run_scores.keys() == file_scores.keys()
        for label, score in run_scores.items():
            assert file_scores[label] == pytest.approx(score, abs=tolerance)


def image_batch(predictor, paths) -> "torch.Tensor":
    """The images as the run's predictor preprocesses them (N, 3, H, W)."""
    import torch

    from tlcli.data.images import load_image

    return torch.stack([predictor.transform(load_image(p)) for p in paths])


def onnx_logits(path: Path, *arrays):
    """ONNX Runtime's output for NumPy inputs (one run of the whole batch), with its input names."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(["logits"], dict(zip(names, arrays)))[0]


def torchscript_logits(path: Path, *tensors):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks TorchScript deprecated
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(*tensors).numpy()


def onnx_input_shapes(path: Path) -> dict[str, list]:
    """Each graph input's shape: numbers for fixed axes, names for dynamic ones."""
    import onnx

    model = onnx.load(str(path))
    return {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
