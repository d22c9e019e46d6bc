"""`tlcli runs` (list, show, compare, prune, export) and `tlcli plot`: on two tiny real finetunes (the flow a new
user follows), and on run folders made by hand where a state is hard to reach otherwise (failed, killed, held)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from support.runs import snapshot
from tlcli.cli.report import summary_problems
from tlcli.runs.events import read_events
from tlcli.runs.run import Run
from tlcli.runs.scalars import history, series

TINY = ["--model", "timm:test_resnet", "--pretrained", "none", "--image-size", "24", "--batch-size", "6",
        "--workers", "0", "--precision", "fp32", "--device", "cpu", "--quiet"]


def _tensorboard(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_two_finetunes_listed_compared_plotted_and_exported(cli, image_folder):
    """The issue's done-when, step by step, on two real runs."""
    a = cli("finetune", image_folder, *TINY, "--epochs", "3", "--lr", "0.003", "--report-to", "tensorboard,csv",
            "--out", "runs/a", "--json")
    b = cli("finetune", image_folder, *TINY, "--epochs", "2", "--out", "runs/b", "--json")
    assert a.exit_code == 0 and b.exit_code == 0, a.stderr + b.stderr

    listed = cli("runs", "--json")
    assert listed.exit_code == 0, listed.stderr
    *records, summary = listed.json_lines()
    assert not summary_problems(summary) and summary["command"] == "runs list" and summary["runs"] == 2
    assert [r["name"] for r in records] == ["b", "a"]  # newest first
    for record, trained in zip(records, (b, a)):
        final = trained.json_lines()[-1]
        assert record["command"] == "finetune" and record["status"] == "finished"
        assert record["best"] == final["best"] and record["steps"] == final["steps"]
        assert record["wall_s"] == final["wall_s"] and record["model"] == "timm:test_resnet"
        assert record["started"].startswith(time.strftime("%Y-"))
    assert cli("runs", "runs", "--json").json_lines() == listed.json_lines()  # `tlcli runs DIR`
    table = cli("runs").stdout
    assert table.splitlines()[0].split() == ["name", "command", "status", "best", "steps", "started", "wall", "model"]

    compared = cli("runs", "compare", "runs/a", "runs/b", "--json")
    assert compared.exit_code == 0, compared.stderr
    first, second, summary = compared.json_lines()
    assert summary["differences"] == ["epochs", "lr", "report_to"]
    assert first["config"] == {"epochs": 3, "lr": 0.003, "report_to": ["tensorboard", "csv"]}
    assert second["config"] == {"epochs": 2, "lr": 0.001, "report_to": []}
    assert first["metrics"] == a.json_lines()[-1]["metrics"]  # the last evaluation, side by side
    people = cli("runs", "compare", "runs/a", "runs/b").stdout
    assert any(line.split()[:3] == ["lr", "0.003", "0.001"] for line in people.splitlines()), people

    plotted = cli("plot", "runs/a", "runs/b", "--metric", "val_accuracy", "-o", "c.png")
    assert plotted.exit_code == 0, plotted.stderr
    assert Path("c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread("c.png").shape == (540, 900, 4)

    exported = cli("runs", "export", "runs/a", "--format", "tensorboard", "--out", "tb", "--json")
    assert exported.exit_code == 0, exported.stderr
    events = list(read_events(Path("runs/a/events.jsonl")))
    rows = history(events).rows
    read_back = _tensorboard(Path("tb"))
    assert set(read_back) == set(history(events).names) >= {"loss", "val_accuracy", "val_loss", "samples_per_s"}
    for name, points in read_back.items():
        assert points == [(step, float(np.float32(value))) for step, _, value, _ in series(rows, name)], name
    evals = [e for e in events if e["kind"] == "eval"]
    assert [v for _, v in read_back["val_accuracy"]] == [
        pytest.approx(e["data"]["metrics"]["val_accuracy"], rel=1e-6) for e in evals]
    assert read_back == _tensorboard(Path("runs/a/tensorboard"))  # what --report-to wrote while it trained
    assert cli("runs", "export", "runs/a", "--format", "csv", "--out", "a.csv").exit_code == 0
    assert Path("a.csv").read_bytes() == Path("runs/a/metrics.csv").read_bytes()

    shown = cli("runs", "show", "runs/a", "--json")
    *timeline, summary = shown.json_lines()
    assert summary["config"]["lr"] == 0.003 and summary["run"]["status"] == "finished"
    assert [e["kind"] for e in timeline][0] == "run_start" and timeline[-1]["kind"] == "run_end"
    assert sum(e["kind"] == "eval" for e in timeline) == 3
    assert "timeline" in cli("runs", "show", "runs/a").stdout


# --- run folders made by hand ---------------------------------------------------------------------------------

def _run(path, status: str | None, *, command="finetune", best=None, steps=4, config=None, when=None):
    """A run folder as Run writes it; ``status`` None: killed (no run_end); ``when``: its events' time."""
    run = Run.create(command, path, config=config or {"lr": 0.1})
    run.emit("run_start", {"command": command, "plugin": command, "model": "m"})
    for step in range(1, steps + 1):
        run.emit("metric", {"loss": 1.0 / step}, step)
    if best is not None:
        run.emit("eval", {"metrics": {"val_accuracy": best}, "monitor": "val_accuracy", "best": best,
                          "is_best": True}, steps)
    if status is not None:
        run.finish(status, {"status": status, "steps": steps})
    else:
        run.close()
        (Path(path) / ".lock").unlink(missing_ok=True)
    if when is not None:
        log = Path(path) / "events.jsonl"
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        log.write_text("".join(json.dumps({**line, "time": when}) + "\n" for line in lines))
    return Path(path)


HOLDER = textwrap.dedent("""
    import sys, time
    from tlcli.runs.run import Run
    run = Run.create("finetune", sys.argv[1], config={"lr": 0.1})
    run.emit("run_start", {"command": "finetune"})
    run.emit("run_end", {"status": "stopped"})  # what a run being resumed shows before its first event
    print("ready", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def held_run(tmp_path):
    """A run whose log says "stopped" while a live process holds its lock."""
    path = tmp_path / "runs" / "held"
    path.parent.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == "ready"
    yield path
    holder.kill()
    holder.wait()


def test_statuses_filters_and_sorting(cli, tmp_path, held_run):
    _run(tmp_path / "runs" / "done", "finished", best=0.9)
    _run(tmp_path / "runs" / "broken", "failed", command="distill")
    _run(tmp_path / "runs" / "halted", "stopped", best=0.5)
    _run(tmp_path / "runs" / "killed", None)
    _run(tmp_path / "runs" / "set" / "seed-1", "finished", best=0.7)  # a run inside a folder
    (tmp_path / "runs" / "hf-model").mkdir()
    (tmp_path / "runs" / "hf-model" / "config.json").write_text("{}")  # not a run: no marker, no events
    records = {r["name"]: r for r in cli("runs", "--json").json_lines()[:-1]}
    assert {n: r["status"] for n, r in records.items()} == {
        "done": "finished", "broken": "failed", "halted": "stopped", "killed": "interrupted", "set/seed-1": "finished",
        "held": "running"}
    assert records["done"]["best"] == {"metric": "val_accuracy", "value": 0.9, "step": 4}
    assert records["broken"]["command"] == "distill" and records["killed"]["steps"] == 4

    def names(*args):
        return [r["name"] for r in cli("runs", *args, "--json").json_lines()[:-1]]

    assert names("--status", "failed,interrupted", "--sort", "name") == ["broken", "killed"]
    assert names("--command", "distill") == ["broken"]
    assert names("--sort", "best")[:3] == ["done", "set/seed-1", "halted"]
    assert names("runs/set") == ["seed-1"]
    assert sorted(names("runs/set/seed-1")) == ["seed-1"]  # DIR may itself be a run


def test_group_default_and_usage_errors(cli, tmp_path):
    empty = cli("runs")  # no runs/ yet: nothing to list, not an error
    assert empty.exit_code == 0 and "no runs yet" in empty.stderr
    helped = cli("runs", "--help")
    assert helped.exit_code == 0 and all(w in helped.stdout for w in ("list", "show", "compare", "prune", "export"))
    for args, fragment in ((["runs", "nowhere"], "nowhere: no such folder"),
                           (["runs", "show", "."], "not a tlcli run folder"),
                           (["runs", "compare", "x", "y"], "x: no such run folder"),
                           (["runs", "--status", "lost"], "--status")):
        result = cli(*args)
        assert result.exit_code == 2 and fragment in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    _run(tmp_path / "runs" / "one", "finished")
    assert cli("runs", "compare", "runs/one").exit_code == 2


def test_compare_across_commands(cli, tmp_path):
    _run(tmp_path / "runs" / "ft", "finished", config={"lr": 0.1, "model": "resnet18", "freeze_until": None})
    _run(tmp_path / "runs" / "ds", "finished", command="distill", config={"lr": 0.1, "teacher": "runs/ft"})
    first, second, summary = cli("runs", "compare", "runs/ft", "runs/ds", "--json").json_lines()
    assert (first["command"], second["command"]) == ("finetune", "distill")
    assert summary["differences"] == ["model", "freeze_until", "teacher"]
    assert first["config"] == {"model": "resnet18", "freeze_until": None} and second["config"] == {"teacher": "runs/ft"}
    rows = {line.split()[0]: line.split()[1:] for line in cli("runs", "compare", "runs/ft", "runs/ds").stdout.splitlines()
            if line and not line.startswith("#")}
    assert rows["freeze_until"] == ["null", "-"] and rows["teacher"] == ["-", "runs/ft"]


def test_prune_lists_then_removes_only_its_own_ended_runs(cli, tmp_path, held_run):
    old = time.time() - 10 * 86400
    keep = [_run(tmp_path / "runs" / "done", "finished", when=old),
            _run(tmp_path / "runs" / "recent-failure", "failed"),
            _run(tmp_path / "runs" / "set", "finished")]
    _run(tmp_path / "runs" / "set" / "seed-1", "failed", when=old)  # part of its set: never removed alone
    gone = [_run(tmp_path / "runs" / "old-failure", "failed", when=old),
            _run(tmp_path / "runs" / "old-stop", "stopped", when=old)]
    foreign = tmp_path / "runs" / "lookalike"  # an events.jsonl that says "failed", but tlcli did not make it
    foreign.mkdir()
    (foreign / "events.jsonl").write_text(json.dumps({"time": old, "kind": "run_end", "step": 0,
                                                      "data": {"status": "failed"}}) + "\n")
    (foreign / "notes.txt").write_text("mine")
    before = snapshot(tmp_path / "runs")

    listed = cli("runs", "prune", "--status", "failed,stopped", "--older-than", "7d", "--json")
    assert listed.exit_code == 0, listed.stderr
    *records, summary = listed.json_lines()
    assert sorted(r["name"] for r in records) == ["old-failure", "old-stop"]
    assert summary["removed"] == 0 and summary["candidates"] == 2 and "pass --yes" in listed.stderr
    assert "lookalike: not removed" in listed.stderr
    assert snapshot(tmp_path / "runs") == before  # nothing touched without --yes

    removed = cli("runs", "prune", "--status", "failed,stopped", "--older-than", "7d", "--yes", "--json")
    assert removed.exit_code == 0, removed.stderr
    assert removed.json_lines()[-1]["removed"] == 2
    assert not any(p.exists() for p in gone)
    assert all(p.is_dir() for p in keep) and (tmp_path / "runs" / "set" / "seed-1").is_dir()
    assert (foreign / "notes.txt").read_text() == "mine" and held_run.is_dir()  # held: listed as running
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]  # nothing left aside


def test_export_refuses_what_it_did_not_write(cli, tmp_path):
    run = _run(tmp_path / "runs" / "r", "finished", best=0.5)
    assert cli("runs", "export", run, "--format", "csv").exit_code == 0
    again = cli("runs", "export", run, "--format", "csv")
    assert again.exit_code == 2 and "pass --overwrite" in again.stderr
    assert cli("runs", "export", run, "--format", "csv", "--overwrite").exit_code == 0
    Path("mine.csv").write_text("name,score\nx,1\n")
    refused = cli("runs", "export", run, "--format", "csv", "--out", "mine.csv", "--overwrite")
    assert refused.exit_code == 2 and "not a metrics export" in refused.stderr
    assert Path("mine.csv").read_text() == "name,score\nx,1\n"
    unknown = cli("runs", "export", run, "--format", "parquet")
    assert unknown.exit_code == 2 and "--format parquet: not a metrics sink; choose from csv, tensorboard" in unknown.stderr
    empty = _run(tmp_path / "runs" / "empty", "failed", steps=0)
    assert "no metric or eval events" in cli("runs", "export", empty, "--format", "tensorboard").stderr


def test_plot_in_the_terminal_and_its_errors(cli, tmp_path):
    _run(tmp_path / "runs" / "one", "finished", best=0.5, steps=6)
    _run(tmp_path / "runs" / "two", "finished", best=0.8, steps=3)
    drawn = cli("plot", "runs/one", "runs/two", "--metric", "loss")
    assert drawn.exit_code == 0, drawn.stderr
    assert "\x1b" not in drawn.stdout and "one" in drawn.stdout and "two" in drawn.stdout and "step" in drawn.stdout
    points = cli("plot", "runs/one", "runs/two", "-m", "loss", "--json").json_lines()
    assert [(p["run"], p["step"], p["value"]) for p in points[:-1]] == (
        [("one", s, pytest.approx(1 / s, rel=1e-5)) for s in range(1, 7)] + [("two", s, pytest.approx(1 / s, rel=1e-5)) for s in range(1, 4)])
    assert points[-1]["points"] == 9 and not summary_problems(points[-1])

    missing = cli("plot", "runs/one", "runs/two", "--metric", "val_los")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == "tlcli: error: --metric val_los: no run logs it; they log: loss, val_accuracy"
    assert cli("plot", "runs/one", "-o", "curves.svg").exit_code == 0  # default metric: the one it monitors
    assert "<svg" in Path("curves.svg").read_text()[:2000]
    Path("notes.png").write_text("not a picture")
    assert cli("plot", "runs/one", "-o", "notes.png").exit_code == 2
    assert Path("notes.png").read_text() == "not a picture"
    assert cli("plot", "runs/one", "-o", "curves.gif").exit_code == 2


def test_runs_on_a_terminal_escape_hostile_names(on_a_terminal, tmp_path):
    from support.terminal import assert_escaped

    name = "evil\x1b]52;c;ZXZpbA==\x07"
    _run(tmp_path / "runs" / name, "finished", best=0.5)
    screen = on_a_terminal("runs")
    assert_escaped(screen, "evil\\x1b]52")
    screen = on_a_terminal("plot", f"runs/{name}", "--metric", "loss")
    assert_escaped(screen, "evil\\x1b]52")


@pytest.mark.parametrize("answer, kept", [("n", True), ("y", False)])
def test_prune_asks_on_a_terminal(tmp_path, answer, kept):
    import shlex
    import shutil

    if shutil.which("script") is None:
        pytest.skip("needs script(1) for a pseudo-terminal")
    run = _run(tmp_path / "runs" / "broken", "failed")
    command = shlex.join([sys.executable, "-m", "tlcli", "runs", "prune", "--status", "failed"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TLCLI_HOME": str(tmp_path / "home")}
    done = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=tmp_path, env=env, input=answer + "\n",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    assert "Remove 1 run folder? [y/N]" in done.stdout
    assert run.is_dir() == kept
