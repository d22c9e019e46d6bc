"""Careless-user cases on the image commands: one line and exit 2, never a traceback or a silent wrong
result."""

from __future__ import annotations

import json


def test_evaluate_confusion_into_a_missing_folder_is_one_line_before_any_work(cli, tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "model.json").write_text(json.dumps({"kind": "image-classifier"}))
    result = cli("evaluate", run, tmp_path, "--confusion", tmp_path / "nowhere" / "c.svg")
    assert result.exit_code == 2
    assert "nowhere" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_huge_image_size_is_refused_from_the_memory_it_needs(cli, image_folder, tmp_path):
    result = cli("finetune", image_folder, "--model", "resnet18", "--pretrained", "none", "--image-size", "100000",
                 "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "--image-size 100000" in result.stderr and "GiB" in result.stderr
    assert not (tmp_path / "run").exists()


def test_labels_differing_only_by_spaces_are_one_class_with_a_warning(cli, image_folder, clip_args, tmp_path):
    manifest = tmp_path / "data.csv"
    rows = []
    for name in ("cat", "dog"):
        for i, image in enumerate(sorted((image_folder / name).iterdir())):
            rows.append(f"{image},{name}{' ' if i % 2 else ''}")
    manifest.write_text("\n".join(['path,label', *[f'{p},"{label}"' for p, label in (r.split(",") for r in rows)]]))
    result = cli("probe", manifest, *clip_args, "--weight-decay", "0.1", "--json", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["classes"] == ["cat", "dog"]
    assert "'cat '" in result.stderr and "'dog '" in result.stderr and "spaces" in result.stderr


def test_shots_above_what_a_class_has_are_reported_as_used(cli, image_folder, clip_args, tmp_path):
    result = cli("probe", image_folder, *clip_args, "--shots", "50", "--weight-decay", "0.1", "--json",
                 "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    shots = json.loads(result.stdout.splitlines()[-1])["shots"]
    assert shots["asked"] == 50 and shots["max_per_class"] < 50
    assert shots["classes_short"] == ["cat", "dog", "fish"]
    assert "--shots 50" in result.stderr


def test_max_bad_as_a_percentage_in_a_config_file(cli, image_folder, tmp_path):
    config = tmp_path / "opts.toml"
    config.write_text('max_bad = "5%"\nmodel = "resnet18"\npretrained = "none"\nimage-size = 32\nepochs = 1\n'
                      'workers = 0\nbatch-size = 8\n')
    result = cli("finetune", image_folder, "--config", config, "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["max_bad"] == 0.05


def test_a_pickled_weights_file_is_refused_without_advising_weights_only_false(cli, image_folder, clip_args,
                                                                             tiny_config, tmp_path):
    """torch's own refusal says to re-run with weights_only=False, which would run the file's code: tlcli
    says to convert the weights to safetensors instead, for backbones and CLIP weights alike."""
    from fractions import Fraction

    import torch

    weights = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "note": Fraction(1, 3)}, weights)  # not loadable weights_only
    finetune = cli("finetune", image_folder, "--model", "resnet18", "--weights", weights, "--image-size", "32",
                   "--out", tmp_path / "run")
    clip = cli("zeroshot", image_folder, "--labels", "cat,dog", "--model", tiny_config, "--pretrained", weights,
               "--device", "cpu", "--precision", "fp32")
    for result in (finetune, clip):
        assert result.exit_code == 2, result.stderr
        assert "weights_only" not in result.stderr and "Traceback" not in result.stderr
        assert "safetensors" in result.stderr
