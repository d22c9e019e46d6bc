"""`tlcli distill` end to end: a run teacher and a tiny random CLIP teacher, the cache, predict/evaluate."""

from __future__ import annotations

import json

import pytest

from support.distill import make_images


def _student():
    return ["--student", "timm:lcnet_035", "--pretrained", "none", "--image-size", "32", "--batch-size", "8",
            "--workers", "0", "--precision", "fp32", "--device", "cpu", "--quiet", "--json"]


def test_usage_errors_exit_2_before_any_work(cli, colour_data, teacher_run, tmp_path):
    assert cli("distill", colour_data, *_student()).exit_code == 2  # no --teacher
    assert cli("distill", "--teacher", teacher_run, *_student()).exit_code == 2  # no images
    result = cli("distill", colour_data, "--teacher", teacher_run, "--alpha", "1.5", *_student())
    assert result.exit_code == 2
    result = cli("distill", "--unlabelled", colour_data, "--teacher", "clip:ViT-B-32", *_student())
    assert result.exit_code == 2 and "--labels" in result.stderr
    assert not list(tmp_path.glob("runs/*"))  # no run folder was left behind


def test_labels_the_teacher_does_not_know_are_refused(cli, tmp_path, teacher_run):
    data = make_images(tmp_path / "other", per_class=2, seed=3)
    (data / "red").rename(data / "purple")
    result = cli("distill", data, "--teacher", teacher_run, *_student(), "--out", tmp_path / "run")
    assert result.exit_code == 2 and "purple" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_run_teacher_second_run_hits_the_cache_and_the_student_predicts(cli, colour_data, colour_val, teacher_run,
                                                                        tmp_path):
    args = ["distill", colour_data, "--teacher", teacher_run, "--val", colour_val, *_student(), "--epochs", "2"]
    first = cli(*args, "--out", tmp_path / "one")
    assert first.exit_code == 0, first.stderr
    one = first.json_lines()[-1]
    assert one["status"] == "finished"
    assert one["teacher_outputs"] == {"cached": 0, "computed": 24 + 12, "seconds": one["teacher_outputs"]["seconds"],
                                      "training": "cached (clean views)"}
    assert one["labelled_images"] == 24 and one["val_images"] == 12 and one["alpha"] == 0.7
    assert one["teacher"]["params"] > 0 and one["student"]["params"] > 0
    assert one["teacher"]["infer_samples_per_s"] > 0 and one["student"]["infer_samples_per_s"] > 0
    assert one["command"] == "distill" and one["best"]["metric"] == "val_accuracy"
    second = cli(*args, "--out", tmp_path / "two").json_lines()[-1]
    assert second["teacher_outputs"]["cached"] == 36 and second["teacher_outputs"]["computed"] == 0
    assert second["teacher"]["val_accuracy"] == one["teacher"]["val_accuracy"]

    meta = json.loads((tmp_path / "two" / "model" / "model.json").read_text())
    assert meta["kind"] == "image-classifier" and meta["model"] == "timm:lcnet_035"
    predicted = cli("predict", tmp_path / "two", colour_val, "--json", "--device", "cpu")
    assert predicted.exit_code == 0, predicted.stderr
    assert len(predicted.json_lines()) == 12 + 1  # the records, then the summary
    report = cli("evaluate", tmp_path / "two", colour_val, "--json", "--device", "cpu").json_lines()[-1]
    assert report["metrics"]["accuracy"] == pytest.approx(second["student"]["val_accuracy"], abs=1e-5)  # summaries: 6 digits


@pytest.mark.slow
def test_clip_teacher_with_no_labels_at_all(cli, unlabelled, colour_val, tiny_clip, tmp_path):
    result = cli("distill", "--unlabelled", unlabelled, "--teacher", f"clip:{tiny_clip}", "--teacher-pretrained",
                 "none", "--labels", "blue,green,red", "--templates", "single", "--val", colour_val, *_student(),
                 "--epochs", "1", "--augment", "light", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary["labelled_images"] == 0 and summary["unlabelled_images"] == 24
    assert summary["alpha"] == 1.0  # no labels: pure soft targets
    assert summary["classes"] == ["blue", "green", "red"]
    assert summary["teacher_outputs"]["training"] == "on the fly (augmented views)"
    assert summary["teacher_outputs"]["computed"] == 12  # only the val images' clean views are cached
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    start = json.loads((tmp_path / "run" / "events.jsonl").read_text().splitlines()[0])
    assert start["kind"] == "run_start" and start["data"]["command"] == "distill"
