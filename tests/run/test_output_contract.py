"""Every image command's --json lines against one schema (ARCHITECTURE.md, "Output contract").

Classifier lines: {"path", "label", "score", "top": [{"label", "score"}, ...]}; metrics: accuracy,
top5_accuracy, mean_recall, per_class {label: {precision, recall, support}}; valid JSON (no NaN); none of
the old names (acc1, top1, mean_per_class_recall, [[label, p]] pairs)."""

from __future__ import annotations

import json

import pytest

from tlcli.cli.report import summary_problems

OLD_NAMES = {"acc1", "acc5", "top1", "mean_per_class_recall", "confusion_matrix"}


def _strict_json(line: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in a --json line: not valid JSON")

    return json.loads(line, parse_constant=refuse)


def check_classifier_line(record: dict) -> None:
    assert isinstance(record["path"], str)
    assert isinstance(record["label"], str) and isinstance(record["score"], float)
    assert 0.0 <= record["score"] <= 1.0
    top = record["top"]
    assert isinstance(top, list) and top
    for entry in top:
        assert set(entry) == {"label", "score"}, entry
        assert isinstance(entry["label"], str) and 0.0 <= entry["score"] <= 1.0
    scores = [entry["score"] for entry in top]
    assert scores == sorted(scores, reverse=True)
    assert top[0]["score"] == record["score"]
    assert record["label"] in (top[0]["label"], "unknown")


def check_metrics(metrics: dict) -> None:
    for name in ("accuracy", "top5_accuracy", "mean_recall"):
        assert isinstance(metrics[name], float) and 0.0 <= metrics[name] <= 1.0, name
    assert isinstance(metrics["per_class"], dict) and metrics["per_class"]
    for label, figures in metrics["per_class"].items():
        assert isinstance(label, str)
        assert set(figures) == {"precision", "recall", "support"}
        assert isinstance(figures["support"], int)
        assert figures["recall"] is None or 0.0 <= figures["recall"] <= 1.0


def check_line(line: str) -> tuple[int, int]:
    """Check one --json line; returns how many classifier records and metrics objects it held."""
    record = _strict_json(line)
    assert isinstance(record, dict)
    counts = [0, 0]

    def walk(value):
        if isinstance(value, dict):
            assert not (OLD_NAMES & set(value)), sorted(OLD_NAMES & set(value))
            if "top" in value and "path" in value:
                check_classifier_line(value)
                counts[0] += 1
            if "per_class" in value or "accuracy" in value and "mean_recall" in value:
                check_metrics(value)
                counts[1] += 1
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(record)
    return counts[0], counts[1]


def check_output(stdout: str) -> tuple[int, int]:
    totals = [0, 0]
    for line in stdout.splitlines():
        if line.strip():
            classifiers, metrics = check_line(line)
            totals[0] += classifiers
            totals[1] += metrics
    return totals[0], totals[1]


@pytest.mark.slow
def test_every_image_command_writes_the_contract(cli, image_folder, clip_args, tmp_path):
    from tlcli.data.sources import load_labelled

    images = len(load_labelled(image_folder))
    runs = {}

    def run(*args, expect: tuple[int | None, int | None]):
        result = cli(*args, "--json")
        assert result.exit_code == 0, (args[0], result.stderr)
        classifiers, metrics = check_output(result.stdout)
        last = json.loads(result.stdout.splitlines()[-1])  # every command ends with its summary
        assert summary_problems(last) == [] and last["command"] == args[0], (args[0], last)
        if expect[0] is not None:
            assert classifiers == expect[0], (args[0], classifiers)
        if expect[1] is not None:
            assert metrics == expect[1], (args[0], metrics)
        return result

    run("zeroshot", image_folder, "--labels", "cat,dog,fish", "--templates", "single", "-k", "2", *clip_args,
        expect=(images, 0))
    run("zeroshot", image_folder, "--eval", "--templates", "single", *clip_args, expect=(images, 1))
    for command, extra in (("probe", ["--weight-decay", "0.1"]), ("coop", ["--epochs", "1", "--n-ctx", "2"])):
        runs[command] = tmp_path / command
        run(command, image_folder, *clip_args, *extra, "--out", runs[command], expect=(0, None))
    run("compare", image_folder, "--shots", "1", "--no-coop", "--templates", "single", *clip_args, expect=(0, None))
    runs["finetune"] = tmp_path / "finetune"
    run("finetune", image_folder, "--model", "resnet18", "--pretrained", "none", "--image-size", "32", "--epochs", "1",
        "--workers", "0", "--precision", "fp32", "--device", "cpu", "--out", runs["finetune"], expect=(0, None))
    for name, folder in runs.items():
        run("predict", folder, image_folder, "--top-k", "2", "--device", "cpu", expect=(images, 0))
        report = run("evaluate", folder, image_folder, "--device", "cpu", expect=(0, 1))
        assert json.loads(report.stdout.splitlines()[-1])["n"] == images, name


def test_the_checker_catches_the_old_shapes():


    with pytest.raises(AssertionError):
        check_line(json.dumps({"path": "a.jpg", "label": "cat", "score": 0.9, "top": [["cat", 0.9]]}))
    with pytest.raises(AssertionError):
        check_line(json.dumps({"acc1": 0.5, "per_class": []}))
    with pytest.raises(AssertionError):
        check_line('{"path": "a.jpg", "label": "cat", "score": NaN, "top": []}')
