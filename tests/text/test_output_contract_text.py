"""The text commands' --json lines against the same output contract as the image commands
(tests/run/test_output_contract.py holds the one schema; text lines name their input `text`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tlcli.cli.report import summary_problems


def _contract():
    path = Path(__file__).resolve().parent.parent / "run" / "test_output_contract.py"
    spec = importlib.util.spec_from_file_location("tlcli_test_output_contract", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_image_shape(record: dict, probabilities: bool) -> dict:
    """A text line in the image line's shape, so one schema checks both: `text` stands where `path` does.
    Zero-shot text scores are cosine similarities (the README says so): their range is not checked."""
    assert isinstance(record.pop("text"), str) and "path" not in record
    if not probabilities:
        record = {**record, "score": 0.5, "top": [{**t, "score": 0.5} for t in record["top"]]}
        record["top"][0]["score"] = record["score"]
    return {"path": "", **record}


def test_text_commands_write_the_contract(cli, few_shot_csv, minilm_dir):
    contract = _contract()
    train, test = few_shot_csv
    zeroshot = cli("text", "zeroshot", "The striker scored twice", "Whisk the eggs", "--labels",
                   "sports,cooking,weather", "--json")
    assert zeroshot.exit_code == 0, zeroshot.stderr
    *lines, summary = zeroshot.json_lines()
    assert len(lines) == 2 and summary_problems(summary) == []
    for line in lines:
        contract.check_classifier_line(_as_image_shape(line, probabilities=False))

    probe = cli("text", "probe", train, "--val-split", "0.5", "--out", "probe", "--json")
    assert probe.exit_code == 0, probe.stderr
    predicted = cli("predict", "probe", "Reboot the router", "Sunny spells later", "--json", "-k", "3")
    assert predicted.exit_code == 0, predicted.stderr
    for line in predicted.json_lines()[:-1]:
        assert len(line["top"]) == 3
        contract.check_classifier_line(_as_image_shape(line, probabilities=True))

    evaluated = cli("evaluate", "probe", test, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    classifiers, metrics = contract.check_output(evaluated.stdout)
    assert metrics >= 1
