"""One Run for every image command: refusal of a used --out, the lock, no folder after a usage error,
--overwrite only once the new run started, --resume of a finished run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.runs import snapshot


def test_out_onto_a_non_empty_folder_is_refused_and_left_untouched(cli, image_folder, clip_args, tmp_path):
    mine = tmp_path / "mine"
    (mine / "model").mkdir(parents=True)
    (mine / "config.json").write_text('{"my": "settings"}')
    (mine / "model" / "weights.bin").write_bytes(b"precious")
    before = snapshot(mine)
    for command in (["probe", image_folder, *clip_args], ["compare", image_folder, "--shots", "1", "--no-coop", *clip_args],
                    ["coop", image_folder, "--epochs", "1", *clip_args]):
        result = cli(*command, "--out", mine)
        assert result.exit_code == 2, result.stderr
        assert "--overwrite" in result.stderr and "--resume" in result.stderr
        assert snapshot(mine) == before
    # --overwrite replaces runs only: a folder without a run's config.json/events.jsonl is still refused
    (mine / "config.json").unlink()
    before = snapshot(mine)
    result = cli("probe", image_folder, *clip_args, "--out", mine, "--overwrite")
    assert result.exit_code == 2 and "not a tlcli run folder" in result.stderr
    assert snapshot(mine) == before


def test_a_second_process_on_a_run_folder_is_refused(cli, image_folder, clip_args, tmp_path):
    run = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from tlcli.runs.run import Run\n"
        f"run = Run.create('coop', {str(run)!r}, config={{'data': 'x'}})\n"
        "run.start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        before = snapshot(run)
        overwrite = cli("probe", image_folder, *clip_args, "--out", run, "--overwrite")
        assert overwrite.exit_code == 2 and "in use" in overwrite.stderr
        resume = cli("coop", "--resume", run)
        assert resume.exit_code == 2 and "in use" in resume.stderr
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()


def test_usage_errors_found_after_the_folder_was_made_leave_no_folder(cli, image_folder, clip_args, tmp_path):
    one_class = tmp_path / "one"
    (one_class / "cat").mkdir(parents=True)
    for image in sorted((image_folder / "cat").iterdir())[:4]:
        (one_class / "cat" / image.name).write_bytes(image.read_bytes())
    cases = [
        ["probe", one_class, *clip_args],
        ["compare", one_class, "--shots", "1", *clip_args],
        ["coop", one_class, "--epochs", "1", *clip_args],
        ["finetune", image_folder, "--model", "resnet18", "--pretrained", "none", "--freeze-until", "layer9",
         "--image-size", "32", "--workers", "0", "--quiet"],
    ]
    for args in cases:
        result = cli(*args)
        assert result.exit_code == 2, (args[0], result.stderr)
        assert "Traceback" not in result.stderr
        assert not Path("runs").exists() or not any(Path("runs").iterdir()), (args[0], list(Path("runs").iterdir()))


def test_overwrite_replaces_a_run_only_after_the_new_one_started(cli, image_folder, clip_args, tmp_path):
    run = tmp_path / "run"
    first = cli("probe", image_folder, *clip_args, "--weight-decay", "0.1", "--out", run, "--json")
    assert first.exit_code == 0, first.stderr
    before = snapshot(run)
    one_class = tmp_path / "one"
    (one_class / "cat").mkdir(parents=True)
    for image in sorted((image_folder / "cat").iterdir())[:4]:
        (one_class / "cat" / image.name).write_bytes(image.read_bytes())
    failed = cli("probe", one_class, *clip_args, "--out", run, "--overwrite")
    assert failed.exit_code == 2
    assert snapshot(run) == before  # the old run is back, byte for byte
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]  # nothing left aside
    second = cli("probe", image_folder, *clip_args, "--weight-decay", "0.01", "--out", run, "--overwrite", "--json")
    assert second.exit_code == 0, second.stderr
    assert json.loads((run / "config.json").read_text())["weight_decay"] == 0.01
    assert json.loads((run / "metrics.json").read_text())["weight_decay"] == 0.01


def test_resume_of_a_finished_run_changes_nothing(cli, image_folder, clip_args, tmp_path):
    run = tmp_path / "coop"
    done = cli("coop", image_folder, "--epochs", "2", "--n-ctx", "2", "--out", run, "--tui", *clip_args)
    assert done.exit_code == 0, done.stderr
    # --tui without a terminal: no dashboard, and the plain progress lines are still there (nohup logs)
    assert "--tui ignored" in done.stderr and "training" in done.stderr and "epoch 1" in done.stderr
    before = snapshot(run)
    again = cli("coop", "--resume", run)
    assert again.exit_code == 0
    assert "already finished" in again.stderr
    assert snapshot(run) == before


def test_resume_takes_the_same_rule_in_every_command(cli, tmp_path):
    """A flag that would change the result is refused on --resume (coop used to ignore it silently);
    speed and display flags are accepted."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    for command in ("coop", "finetune"):
        changed = cli(command, "--resume", run, "--lr", "0.5")
        assert changed.exit_code == 2 and "--lr" in changed.stderr, changed.stderr
        data = cli(command, str(run / "elsewhere"), "--resume", run)
        assert data.exit_code == 2 and "drop" in data.stderr


def test_events_of_probe_and_compare(cli, image_folder, clip_args, tmp_path):
    from tlcli.runs.events import read_events

    probe = cli("probe", image_folder, *clip_args, "--weight-decay", "0.1", "--out", tmp_path / "p")
    assert probe.exit_code == 0, probe.stderr
    kinds = [e["kind"] for e in read_events(tmp_path / "p" / "events.jsonl")]
    assert kinds[0] == "run_start" and "eval" in kinds and kinds[-1] == "run_end"
    compare = cli("compare", image_folder, *clip_args, "--shots", "1", "--no-coop", "--templates", "single",
                  "--out", tmp_path / "c")
    assert compare.exit_code == 0, compare.stderr
    events = list(read_events(tmp_path / "c" / "events.jsonl"))
    assert events[0]["kind"] == "run_start" and events[-1]["kind"] == "run_end"
    assert [e["data"]["method"] for e in events if e["kind"] == "eval"] == ["zeroshot", "probe", "probe+zeroshot-init"]
    assert events[-1]["data"]["status"] == "finished"
