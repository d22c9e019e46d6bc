"""End to end through the command line, tiny model, few steps."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from tlcli.cli.report import summary_problems

TINY = ["--model", "timm:test_resnet", "--image-size", "24", "--precision", "fp32", "--workers", "0"]


SLOW = pytest.mark.slow  # a minute or more on a busy 2-core machine


@pytest.mark.parametrize("task", ["rotation", pytest.param("jigsaw", marks=SLOW), pytest.param("simclr", marks=SLOW),
                                  pytest.param("mae", marks=SLOW)])
def test_pretrain_exports_a_backbone_finetune_loads_without_missing_keys(cli, colour_data, task, tmp_path):
    done = cli("pretrain", colour_data, "--task", task, *TINY, "--max-steps", "2", "--batch-size", "6",
               "--val", colour_data, "--out", "pre", "--json", "--quiet")
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["status"] == "finished" and summary["task"] == task
    assert summary_problems(summary) == []
    assert summary["best"]["metric"] == "knn_accuracy" and 0.0 <= summary["best"]["value"] <= 1.0
    assert summary["metrics"]["knn_accuracy"] == summary["best"]["value"]  # one evaluation: the last is the best

    meta = json.loads((tmp_path / "pre/model/model.json").read_text())
    assert meta["kind"] == "backbone" and meta["pretext_task"] == task
    exported = load_file(str(tmp_path / "pre/model/model.safetensors"))
    assert not any(k.startswith(("head.", "backbone.", "fc.")) for k in exported)  # own names, heads dropped

    from tlcli.models.vision import build_vision_model, load_backbone_weights

    built = build_vision_model("timm:test_resnet", "none", num_classes=3)
    own = {k for k in built.model.state_dict() if not k.startswith("fc.")}
    assert set(exported) == own  # no missing and no unexpected keys
    report = load_backbone_weights(built.model, exported, built.head_names)
    assert report["loaded"] == len(own)

    events = [json.loads(line) for line in (tmp_path / "pre/events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "metric" and e["data"]["loss"] > 0 for e in events)
    assert any(e["kind"] == "eval" and "knn_accuracy" in e["data"]["metrics"] for e in events)

    done = cli("finetune", colour_data, "--weights", "pre", *TINY, "--max-steps", "1", "--batch-size", "6",
               "--out", "ft", "--json", "--quiet")
    assert done.exit_code == 0, done.stderr
    layers = cli("layers", "pre", "--json")
    assert layers.exit_code == 0 and json.loads(layers.stdout.splitlines()[0])["name"] == "conv1"


def test_pretrain_refuses_bad_input(cli, colour_data, tmp_path):
    assert cli("pretrain", tmp_path / "missing", "--task", "rotation").exit_code == 2
    assert cli("pretrain", colour_data, "--task", "colour").exit_code == 2
    done = cli("pretrain", colour_data, "--task", "jigsaw", "--model", "timm:test_resnet", "--image-size", "9")
    assert done.exit_code == 2 and "jigsaw" in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@SLOW
def test_pseudolabel_rounds_respect_threshold_and_cap(cli, colour_data, tmp_path):
    assert cli("finetune", colour_data, *TINY, "--pretrained", "none", "--max-steps", "3", "--batch-size", "6",
               "--out", "start", "--json", "--quiet").exit_code == 0
    done = cli("pseudolabel", colour_data, "--unlabelled", colour_data, "--from", "start", "--threshold", "0.0",
               "--per-class-cap", "2", "--rounds", "2", *TINY[2:], "--max-steps", "1", "--batch-size", "6",
               "--out", "pl", "--json", "--quiet")
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary_problems(summary) == []
    rounds = summary["rounds"]
    assert summary["best"] == {"metric": "val_accuracy", "value": rounds[-1]["val_accuracy"], "step": None}
    assert summary["metrics"]["round"] == rounds[-1]["round"]
    assert rounds[0]["round"] == 0 and rounds[0]["kept"] == 0
    for entry in rounds[1:]:
        # threshold 0 keeps every image, so the cap decides: at most 2 per class
        assert 1 <= entry["kept"] <= 2 * 3
        assert entry["kept_accuracy"] is not None and 0 <= entry["kept_accuracy"] <= 1
    events = [json.loads(line) for line in (tmp_path / "pl/events.jsonl").read_text().splitlines()]
    stages = {e["stage"] for e in events}
    assert {"round-0", "round-1"} <= stages
    assert (tmp_path / "pl/model/model.json").exists()
    assert cli("evaluate", "pl", colour_data, "--json").exit_code == 0

    # a threshold no prediction reaches keeps nothing: the first round adds nothing and the run stops
    done = cli("pseudolabel", colour_data, "--unlabelled", colour_data, "--from", "start", "--threshold", "1.0",
               *TINY[2:], "--max-steps", "1", "--out", "none", "--json", "--quiet")
    assert done.exit_code == 0, done.stderr
    assert [r["round"] for r in json.loads(done.stdout.splitlines()[-1])["rounds"]] == [0]


@SLOW
def test_finetune_domain_adapt_over_seeds(cli, colour_data, tmp_path):
    done = cli("finetune", colour_data, "--domain-adapt", colour_data, "--seeds", "1,2", *TINY, "--pretrained",
               "none", "--max-steps", "2", "--batch-size", "6", "--out", "dann", "--json", "--quiet")
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary_problems(summary) == []
    assert [r["seed"] for r in summary["seeds"]] == [1, 2]
    assert [r["run_dir"] for r in summary["seeds"]] == ["dann/seed-1", "dann/seed-2"]
    values = [r["best"]["value"] for r in summary["seeds"]]
    assert summary["mean"] == pytest.approx(sum(values) / 2, abs=1e-6)
    assert summary["std"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5, abs=1e-6)
    assert json.loads((tmp_path / "dann/seed-1/metrics.json").read_text())["best"] == summary["seeds"][0]["best"]
    exported = load_file(str(tmp_path / "dann/seed-1/model/model.safetensors"))
    assert not any(k.startswith(("domain.", "classifier.")) for k in exported)  # the classifier's own names
    assert cli("evaluate", "dann/seed-1", colour_data, "--json").exit_code == 0
    assert cli("finetune", colour_data, "--seeds", "1,x").exit_code == 2


@pytest.mark.parametrize("task", ["rotation", "jigsaw", "simclr", "mae"])
def test_every_task_exports_exactly_the_backbones_own_keys(colour_data, task, tmp_path):
    """Without training: the pretext model's export holds every backbone tensor under the name a fresh
    classifier of the same architecture uses, and nothing of the pretext head."""
    from tlcli.data.bad_files import BadFiles
    from tlcli.models.vision import build_vision_model
    from tlcli_selfsup.config import PretrainConfig
    from tlcli_selfsup.images import preprocessing_for, unlabelled_images
    from tlcli_selfsup.pretrain_task import PretrainTask

    cfg = PretrainConfig(data=[str(colour_data)], task=task, model="timm:test_resnet", image_size=24)
    pre = preprocessing_for(cfg.model, "none", 24)
    task_ = PretrainTask(cfg, unlabelled_images(cfg.data, pre, BadFiles(), 0), None, pre, run=None)
    model = task_.build_model()
    assert sum(p.numel() for p in model.head.parameters()) > 0
    task_.export(model, tmp_path, None)
    exported = load_file(str(tmp_path / "model/model.safetensors"))
    classifier = build_vision_model("timm:test_resnet", "none", num_classes=5)
    own = {k for k in classifier.model.state_dict() if not k.startswith(tuple(h + "." for h in classifier.head_names))}
    assert set(exported) == own
    for key, value in model.backbone.state_dict().items():
        assert exported[key].equal(value)
