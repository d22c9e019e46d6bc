"""The engine keeps the teacher frozen: eval mode, no gradient, weights bit-identical, out of checkpoints."""

from __future__ import annotations

import torch
from support.distill import PRE, TinyTeacher
from support.distill import decoded_images as _decoded
from support.distill import tiny_student as _student

from tlcli.engine.loop import fit
from tlcli.runs.run import Run
from tlcli_distill.config import DistillConfig
from tlcli_distill.task import DistillTask
from tlcli_distill.teacher_cache import TeacherCache

class Spy:
    """After every optimizer step: the teacher is in eval mode and no teacher parameter has a gradient."""

    def __init__(self, task):
        self.task, self.checked = task, 0

    def on_step_end(self, **_):
        teacher = self.task.teacher
        assert not teacher.training and not any(m.training for m in teacher.modules())
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
        self.checked += 1


def test_teacher_stays_frozen_in_eval_mode_on_augmented_views(tmp_path):
    teacher = TinyTeacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    cfg = DistillConfig(unlabelled="x", teacher="tiny", student="tiny", augment="light", epochs=2, batch_size=4,
                        workers=0, device="cpu", precision="fp32", lr=0.05, log_every=1)
    val = _decoded(6, labelled=True)
    val_logits = torch.randn(6, 3)
    with Run.create("distill", tmp_path / "run", plugin="distill", config=cfg.model_dump()) as run:
        task = DistillTask(cfg, teacher.labels, teacher, _decoded(12, labelled=False), val, None, val_logits, PRE,
                           _student, run=run)
        spy = Spy(task)
        result = fit(task, cfg, run, callbacks=[spy])
    assert result.status == "finished" and spy.checked == result.steps == 6
    assert teacher.calls >= 6 and teacher.modes_seen == {False}
    for key, value in teacher.state_dict().items():  # BatchNorm statistics included
        assert torch.equal(value, before[key]), key
    from safetensors.torch import load_file

    checkpoint = next((tmp_path / "run" / "checkpoints").glob("step-*"))
    saved = load_file(str(next(checkpoint.glob("model*.safetensors"))))
    assert saved and not any(k.startswith("teacher.") for k in saved)  # the teacher is not checkpointed
    exported = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert set(exported) == set(_student().state_dict())  # the student's own names


def test_clean_views_use_cached_outputs_and_never_run_the_teacher_while_training(tmp_path, monkeypatch):
    from tlcli_distill.job import teacher_logits

    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))
    teacher = TinyTeacher()
    train = _decoded(9, labelled=True)
    for i, image in enumerate(train.images):  # the cache is keyed by file content
        train.paths[i] = tmp_path / f"img{i}.png"
        image.save(train.paths[i])
    stats: dict = {}
    first = teacher_logits(teacher, train, TeacherCache(teacher.key, {}, 3), torch.device("cpu"), 4, stats)
    assert stats == {"cached": 0, "computed": 9} and teacher.calls == 3
    stats = {}
    second = teacher_logits(teacher, train, TeacherCache(teacher.key, {}, 3), torch.device("cpu"), 4, stats)
    assert stats == {"cached": 9, "computed": 0} and teacher.calls == 3  # the second run hit the cache
    assert torch.equal(first, second)
    other = TinyTeacher()
    other.key = "another-teacher"
    stats = {}
    teacher_logits(other, train, TeacherCache(other.key, {}, 3), torch.device("cpu"), 4, stats)
    assert stats["computed"] == 9  # another teacher never reads these entries

    cfg = DistillConfig(data="x", teacher="tiny", student="tiny", augment="none", epochs=1, batch_size=4,
                        workers=0, device="cpu", precision="fp32")
    calls = teacher.calls
    with Run.create("distill", tmp_path / "run", plugin="distill", config=cfg.model_dump()) as run:
        task = DistillTask(cfg, teacher.labels, teacher, train, None, first, None, PRE, _student, run=run)
        fit(task, cfg, run)
    assert teacher.calls == calls
