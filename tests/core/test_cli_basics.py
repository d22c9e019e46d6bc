import subprocess
import sys


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    assert "plugins" in result.stdout


def test_plugins_json_lists_builtin_finetune(cli):
    result = cli("plugins", "--json")
    assert result.exit_code == 0
    *records, summary = result.json_lines()
    assert summary["command"] == "plugins" and summary["failed"] == 0
    rows = {row["name"]: row for row in records}
    assert rows["finetune"]["status"] == "ok"
    assert rows["finetune"]["distribution"] == "tlcli"


def test_unknown_option_is_one_line_exit_2(cli):
    result = cli("plugins", "--no-such-option")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no-such-option" in result.stderr


def test_help_imports_no_heavy_library():
    code = (
        "import sys; from tlcli.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'open_clip', 'transformers', 'sentence_transformers', 'textual', 'numpy')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stderr, done.stderr


def test_a_real_process_skips_torch_teardown_but_keeps_output_and_exit_codes(tmp_path):
    """With torch loaded, main() leaves by os._exit after flushing: every JSON line still reaches a
    redirected stdout, atexit handlers run, and error exit codes are kept."""
    out = tmp_path / "layers.jsonl"
    with open(out, "w") as handle:
        done = subprocess.run([sys.executable, "-m", "tlcli", "layers", "resnet18", "--json"], stdout=handle,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert len(lines) > 5 and all(line.startswith("{") for line in lines)
    code = ("import atexit, sys; import torch; from tlcli.cli import main\n"
            "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
            "sys.argv[1:] = ['layers', 'no_such_model']\n"
            "main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "tlcli: error:" in done.stderr and "atexit ran" in done.stderr


def test_reader_leaving_the_pipe_is_not_an_error():
    """`tlcli ... | head`: stdout's reader is gone before the command writes; exit 0, no traceback
    (Click alone would exit 1)."""
    process = subprocess.Popen([sys.executable, "-m", "tlcli", "layers", "resnet18", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # torch takes a second to import: the reader leaves before any output
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert b"Traceback" not in stderr
