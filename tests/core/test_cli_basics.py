import subprocess
import sys


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    assert "plugins" in result.stdout


def test_plugins_json_lists_builtin_finetune(cli):
    result = cli("plugins", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in result.json_lines()}
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
