"""The README a newcomer reads and the documentation site: short, in sync, no broken links."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def quickstart(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    found = re.search(r"<!-- quickstart -->\n```bash\n(.*?)```\n<!-- end quickstart -->", text, flags=re.S)
    assert found, f"{path.name} has no quick start block"
    return found.group(1)


def test_readme_is_short_and_starts_with_a_command():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines (at most 250: move detail into docs/)"
    first = next(i for i, line in enumerate(lines, 1) if line.startswith(("tlcli ", "make ")))
    assert first <= 40, f"the first command is on line {first}"
    assert any(line.startswith("tlcli ") for line in lines[:40])
    assert "pip install -e ." in "\n".join(lines)


def test_readme_and_docs_quick_starts_are_the_same():
    assert quickstart(README) == quickstart(ROOT / "docs" / "quickstart.md")


def test_readme_links_point_at_files_that_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets
    missing = [t for t in targets if not t.startswith("http") and not (ROOT / t).exists()]
    assert missing == [], missing


def test_every_top_level_command_has_a_row_and_a_page():
    from tlcli.cli import build_command

    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Commands"):text.index("## Conventions")]
    for name in build_command().commands:
        assert re.search(rf"`tlcli {re.escape(name)}[` ]", table), f"the README's command table lacks {name}"


@pytest.mark.skipif(not (ROOT / "examples" / "digits_transfer" / "results-fp32.json").is_file(),
                    reason="the five-seed digits results are not committed yet (issue 25): the README says so")
def test_readme_states_what_the_digits_example_printed():
    """The headline numbers are the ones in the committed results of examples/digits_transfer/run.py."""
    text = README.read_text(encoding="utf-8")
    page = (ROOT / "docs" / "examples" / "digits_transfer.md").read_text(encoding="utf-8")
    for name in ("results-fp32.json", "results-bf16.json"):
        summary = json.loads((ROOT / "examples" / "digits_transfer" / name).read_text())["summary"]
        assert summary["seeds"] >= 5
        for arm in ("transfer", "scratch"):
            figure = f"{summary[arm + '_mean']:.3f} ± {summary[arm + '_std']:.3f}"
            assert figure in page, f"docs/examples/digits_transfer.md lacks {arm} {figure} ({name})"
            if name == "results-fp32.json":
                assert figure in text, f"README.md lacks {arm} {figure} ({name})"
        assert f"{summary['transfer_wins']} of {summary['seeds']}" in page


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="the docs extra is not installed")
def test_the_site_builds_strict(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "cli" / "index.html").is_file()


# A results placeholder left by whoever started a benchmark: a SHOUTED_NAME in prose (outside code, not an
# environment variable or a path's part such as $TLCLI_HOME or RUN_DIR/).
_PLACEHOLDER = re.compile(r"(?<![$:\w/])[A-Z][A-Z0-9]*_[A-Z0-9_]+\b(?![/\w])")


def test_no_page_keeps_a_results_placeholder():
    """A page promising measured figures must hold them (or say plainly that they were not measured)."""
    pages = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = []
    for page in pages:
        if page.name == "cli.md":  # generated from the commands' help, which names its metavariables
            continue
        prose = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        prose = re.sub(r"`[^`]*`", "", prose)
        found += [f"{page.relative_to(ROOT)}: {match.group(0)}" for match in _PLACEHOLDER.finditer(prose)]
    assert not found, f"placeholders where results belong: {found}"
