"""Where `tlcli export` writes and what it refuses: files it did not write are never replaced, bad --out values
and unexportable models are one line and exit 2, crash leftovers are cleared; `tlcli predict` on files that
are not tlcli exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.runs import snapshot


@pytest.fixture
def run(tmp_path) -> Path:
    """A small image classifier in the fine-tuning layout (what `tlcli finetune` and `tlcli distill` write)."""
    import timm
    import torch

    from tlcli.runs.artifacts import write_model

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=3)
    folder = tmp_path / "run"
    write_model(folder / "model", kind="image-classifier", plugin="finetune", tensors=model.state_dict(),
                labels=["cat", "dog", "fish"], model="timm:test_resnet",
                preprocessing={"resize": 36, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
                               "interpolation": "bilinear"})
    (folder / "config.json").write_text("{}")
    return folder


def _one_line_error(result, *words):
    assert result.exit_code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tlcli: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_files_tlcli_did_not_write_are_never_replaced(cli, run, tmp_path):
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(b"my own model, not tlcli's")
    _one_line_error(cli("export", run, "--out", mine), "mine.onnx", "was not written by tlcli")
    assert mine.read_bytes() == b"my own model, not tlcli's"
    assert not (tmp_path / "mine.onnx.json").exists()

    # Not a tlcli sidecar beside the file: refused too, nothing written.
    (tmp_path / "other.onnx.json").write_text('{"someone": "else"}')
    _one_line_error(cli("export", run, "--out", tmp_path / "other.onnx"), "other.onnx.json")
    assert not (tmp_path / "other.onnx").exists()
    assert (tmp_path / "other.onnx.json").read_text() == '{"someone": "else"}'

    # A TorchScript path that is someone's zip (or pickle): refused.
    (tmp_path / "theirs.pt").write_bytes(b"PK\x03\x04 not really")
    _one_line_error(cli("export", run, "--format", "torchscript", "--out", tmp_path / "theirs.pt"), "theirs.pt")

    # A tokenizer folder no tlcli metadata names: refused before anything is loaded.
    (tmp_path / "t.onnx.tokenizer").mkdir()
    _one_line_error(cli("export", run, "--out", tmp_path / "t.onnx"), "t.onnx.tokenizer")


def test_reexport_replaces_its_own_files(cli, run):
    first = cli("export", run, "--json")
    assert first.exit_code == 0, first.stderr
    assert first.json_lines()[-1]["replaced"] is False
    again = cli("export", run, "--json", "--dynamic-batch")
    assert again.exit_code == 0, again.stderr
    assert again.json_lines()[-1]["replaced"] is True
    meta = json.loads((run / "export" / "model.onnx.json").read_text())
    assert meta["dynamic_batch"] is True
    assert meta["files"]["sha256"] == __import__("hashlib").sha256((run / "export" / "model.onnx").read_bytes()).hexdigest()
    assert sorted(p.name for p in (run / "export").iterdir()) == ["model.onnx", "model.onnx.json"]


def test_bad_out_values_and_inputs_are_one_line(cli, run, tmp_path):
    before = snapshot(run)
    _one_line_error(cli("export", run, "--out", tmp_path / "model.pt"), "--out", ".onnx")
    _one_line_error(cli("export", run, "--format", "torchscript", "--out", tmp_path / "m.onnx"), ".pt")
    _one_line_error(cli("export", run, "--out", tmp_path / "missing" / "m.onnx"), "does not exist")
    (tmp_path / "folder.onnx").mkdir()
    _one_line_error(cli("export", run, "--out", tmp_path / "folder.onnx"), "folder")
    _one_line_error(cli("export", run, "--format", "tflite"), "--format")
    _one_line_error(cli("export", tmp_path / "nothing-here"), "model.json")
    assert snapshot(run) == before  # nothing written into the run

    exported = cli("export", run)
    assert exported.exit_code == 0, exported.stderr
    _one_line_error(cli("export", run / "export" / "model.onnx"), "already an exported file")


def test_a_predictor_without_export_module_is_refused(cli, run, monkeypatch):
    from tlcli_finetune.predictor import ImageClassifierPredictor

    monkeypatch.delattr(ImageClassifierPredictor, "export_module")
    _one_line_error(cli("export", run), "image-classifier", "cannot be exported")
    assert not (run / "export").exists()


def test_an_unsupported_operator_is_exit_2_with_clean_stdout(run, tmp_path):
    """A model with an op ONNX has no form for: one line naming it, no graph dump on stdout (torch's
    exporter prints the whole graph there on failure), nothing written."""
    code = f"""
import sys, torch
from tlcli_finetune.predictor import ImageClassifierPredictor
from tlcli.export.spec import image_exportable

class Bessel(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
    def forward(self, x):
        return torch.special.i0(self.inner(x))

ImageClassifierPredictor.export_module = lambda self: image_exportable(Bessel(self.model), self.labels,
                                                                        self.preprocessing)
from tlcli.cli import main
main(["export", {str(run)!r}, "--json", "--quiet"])
"""
    env = {**os.environ, "TLCLI_HOME": str(tmp_path / "home"), "TLCLI_PLUGINS": "finetune"}
    env.pop("TLCLI_DEBUG", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be exported to ONNX" in lines[0] and "aten::i0" in lines[0], done.stderr
    assert "--format torchscript" in lines[0]
    assert not (run / "export" / "model.onnx").exists() and not (run / "export" / "model.onnx.json").exists()


def test_crash_leftovers_are_removed_by_the_next_export(cli, run):
    folder = run / "export"
    folder.mkdir()
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    leftovers = [folder / f".model.onnx.tmp-{dead}", folder / f".model.onnx.json.tmp-{dead}"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    (folder / f".model.onnx.tokenizer.tmp-{dead}").mkdir()
    assert cli("export", run).exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "model.onnx.json"]


def test_predict_refuses_what_it_cannot_run(cli, run, tmp_path):
    from support.clip import make_images

    images = make_images(tmp_path / "images", per_class=1)
    _one_line_error(cli("predict", run, images, "--backend", "onnxruntime"), "tlcli export")
    foreign = tmp_path / "foreign.onnx"
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["pixels"], ["logits"])], "g",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph), str(foreign))
    _one_line_error(cli("predict", foreign, images), "not a file `tlcli export` wrote")
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    _one_line_error(cli("predict", tmp_path / "junk.onnx", images), "not a readable ONNX file")
    (tmp_path / "notes.txt").write_text("hello")
    _one_line_error(cli("predict", tmp_path / "notes.txt", images), "not a run folder")

    assert cli("export", run, "--format", "torchscript").exit_code == 0
    _one_line_error(cli("predict", run / "export" / "model.pt", images, "--backend", "onnxruntime"),
                    "--backend torch")
