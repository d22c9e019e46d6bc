"""`--feature-loss` (FitNets hint): the loss, where its gradients go, what is checkpointed and exported, the cache."""

from __future__ import annotations

import json

import pytest
import torch
from support.distill import PRE, TinyTeacher
from support.distill import decoded_images as _decoded
from support.distill import tiny_student as _student
from safetensors.torch import load_file

from tlcli.engine.loop import fit
from tlcli.runs.run import Run
from tlcli_distill.config import DistillConfig
from tlcli_distill.loss import distillation_loss, feature_loss
from tlcli_distill.job import teacher_logits, teacher_outputs
from tlcli_distill.task import DistillTask
from tlcli_distill.teacher_cache import TeacherCache


def test_feature_loss_equals_a_hand_written_mean_squared_error():
    regressed = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    teacher = torch.tensor([[0.5, -1.0, 0.5], [2.0, 1.0, 1.0]])
    squares = [(r - t) ** 2 for row_r, row_t in zip(regressed.tolist(), teacher.tolist()) for r, t in zip(row_r, row_t)]
    expected = sum(squares) / len(squares)  # (0.25 + 1 + 0 + 4 + 4 + 4) / 6
    assert feature_loss(regressed, teacher).item() == pytest.approx(expected) == pytest.approx(13.25 / 6)


def _cfg(**overrides):
    base = dict(data="x", teacher="tiny", student="tiny", augment="none", epochs=1, batch_size=4, workers=0,
                device="cpu", precision="fp32", lr=0.05, feature_loss=True, feature_weight=0.5)
    return DistillConfig(**{**base, **overrides})


def test_training_step_adds_the_weighted_hint_and_only_student_and_regressor_get_gradients():
    teacher = TinyTeacher().eval()  # as the engine keeps it (its dropout would differ between two passes)
    cfg = _cfg(augment="light")  # the teacher runs on the view: its features come from the live pass
    task = DistillTask(cfg, teacher.labels, teacher, _decoded(4, labelled=True), None, None, None, PRE, _student,
                       feature_width=4)
    model = task.build_model()
    assert model.head == "4" and tuple(model.regressor.weight.shape) == (4, 4)
    batch = task.collate([task.train_dataset()[(i, 10 + i)] for i in range(4)])
    students, views, _, _, labels = batch
    loss = task.training_step(model, batch)

    with torch.no_grad():  # the reference, written out
        teacher_logits, teacher_features = teacher(views, with_features=True)
        hint = model.regressor(model.student[:4](students))
        expected = (distillation_loss(model.student(students), teacher_logits, labels, cfg.temperature, cfg.alpha)
                    + 0.5 * ((hint - teacher_features) ** 2).mean())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)

    loss.backward()
    assert model.regressor.weight.grad is not None and model.regressor.weight.grad.abs().sum() > 0
    assert model.student[0].weight.grad.abs().sum() > 0
    assert all(p.requires_grad for p in teacher.parameters())  # not frozen here: no_grad alone must keep it out
    assert all(p.grad is None for p in teacher.parameters())


def test_regressor_is_checkpointed_and_trained_but_not_exported(tmp_path):
    teacher = TinyTeacher()
    train = _decoded(8, labelled=True)
    logits, features = (torch.randn(8, 3, generator=torch.Generator().manual_seed(0)),
                        torch.randn(8, 4, generator=torch.Generator().manual_seed(1)))
    cfg = _cfg(epochs=2, save_every=1)
    with Run.create("distill", tmp_path / "run", plugin="distill", config=cfg.model_dump()) as run:
        task = DistillTask(cfg, teacher.labels, teacher, train, None, logits, None, PRE, _student, run=run,
                           train_features=features, feature_width=4)
        torch.manual_seed(0)
        initial = task.build_model().regressor.weight.detach().clone()
        torch.manual_seed(0)
        result = fit(task, cfg, run)
    assert result.status == "finished" and result.steps == 4
    checkpoint = max((tmp_path / "run" / "checkpoints").glob("step-*"))
    saved = load_file(str(next(checkpoint.glob("model*.safetensors"))))
    assert {"regressor.weight", "regressor.bias"} <= set(saved)  # a resume continues the regressor too
    assert not torch.equal(saved["regressor.weight"], initial)  # it trained
    exported = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert set(exported) == set(_student().state_dict())  # no regressor.* (nor student.*) keys


def test_cache_keeps_features_apart_from_logits_only_entries_and_rereads_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))
    teacher = TinyTeacher()
    images = _decoded(6, labelled=True)
    for i, image in enumerate(images.images):  # the cache is keyed by file content
        images.paths[i] = tmp_path / f"img{i}.png"
        image.save(images.paths[i])
    plain_stats: dict = {}
    plain = teacher_logits(teacher, images, TeacherCache(teacher.key, {}, 3), torch.device("cpu"), 4, plain_stats)
    assert plain_stats == {"cached": 0, "computed": 6}

    stats: dict = {}
    logits, features = teacher_outputs(teacher, images, TeacherCache(teacher.key, {}, 3, features=4),
                                       torch.device("cpu"), 4, stats)
    assert stats == {"cached": 0, "computed": 6}  # the logits-only entries were not read as rows with features
    assert features.shape == (6, 4) and torch.allclose(logits, plain)
    with torch.no_grad():
        teacher.eval()
        expected = teacher(torch.stack([teacher.transform(im) for im in images.images]), with_features=True)[1]
    assert torch.allclose(features, expected, atol=1e-6)

    calls, stats = teacher.calls, {}
    again = teacher_outputs(teacher, images, TeacherCache(teacher.key, {}, 3, features=4), torch.device("cpu"), 4, stats)
    assert stats == {"cached": 6, "computed": 0} and teacher.calls == calls  # the second run hit the cache
    assert torch.equal(again[0], logits) and torch.equal(again[1], features)
    stats = {}
    teacher_logits(teacher, images, TeacherCache(teacher.key, {}, 3), torch.device("cpu"), 4, stats)
    assert stats == {"cached": 6, "computed": 0}  # and the plain entries are still there, untouched


def test_feature_weight_without_feature_loss_is_a_usage_error(cli, colour_data, teacher_run, tmp_path):
    result = cli("distill", colour_data, "--teacher", teacher_run, "--feature-weight", "2", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "--feature-loss" in result.stderr
    assert not (tmp_path / "r").exists()


def _student_args():
    return ["--student", "timm:lcnet_035", "--pretrained", "none", "--image-size", "32", "--batch-size", "8",
            "--workers", "0", "--precision", "fp32", "--device", "cpu", "--quiet", "--json"]


@pytest.mark.slow
def test_feature_loss_end_to_end_caches_features_and_exports_a_plain_student(cli, colour_data, colour_val,
                                                                              teacher_run, tmp_path):
    args = ["distill", colour_data, "--teacher", teacher_run, "--val", colour_val, *_student_args(), "--epochs", "1",
            "--feature-loss"]
    first = cli(*args, "--out", tmp_path / "one")
    assert first.exit_code == 0, first.stderr
    one = first.json_lines()[-1]
    assert one["status"] == "finished" and one["feature_weight"] == 1.0
    assert one["teacher_outputs"]["computed"] == 36
    second = cli(*args, "--feature-weight", "2", "--out", tmp_path / "two")
    assert second.exit_code == 0, second.stderr
    two = second.json_lines()[-1]
    assert two["teacher_outputs"]["cached"] == 36 and two["teacher_outputs"]["computed"] == 0
    assert two["feature_weight"] == 2.0

    exported = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    assert not any("regressor" in key for key in exported)
    meta = json.loads((tmp_path / "two" / "model" / "model.json").read_text())
    assert meta["kind"] == "image-classifier"
    predicted = cli("predict", tmp_path / "two", colour_val, "--json", "--device", "cpu")
    assert predicted.exit_code == 0, predicted.stderr
    assert len(predicted.json_lines()) == 12 + 1  # the records, then the summary


@pytest.mark.slow
def test_clip_teacher_features_are_its_image_embedding(cli, unlabelled, colour_val, tiny_clip, tmp_path):
    from tlcli_distill.teachers import ClipZeroShotTeacher

    teacher = ClipZeroShotTeacher(str(tiny_clip), "none", ["blue", "green", "red"], "single", use_cache=False)
    assert teacher.feature_width() == teacher.visual.output_dim
    result = cli("distill", "--unlabelled", unlabelled, "--teacher", f"clip:{tiny_clip}", "--teacher-pretrained",
                 "none", "--labels", "blue,green,red", "--templates", "single", "--val", colour_val,
                 *_student_args(), "--epochs", "1", "--feature-loss", "--augment", "light", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary["status"] == "finished" and summary["feature_weight"] == 1.0
    assert summary["teacher_outputs"]["training"] == "on the fly (augmented views)"
