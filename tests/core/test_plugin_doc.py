"""docs/plugins.md's example plugin, installed from the page's own code blocks and run as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _install_page_plugin(site: Path) -> None:
    """Write each ```python block that starts with `# PATH` to site/PATH, and an entry point as pip would."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    written = []
    for block in blocks:
        first = block.splitlines()[0]
        if first.startswith("# tlcli_classes/"):
            path = site / first[2:].split(":")[0].strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block, encoding="utf-8")
            written.append(path.name)
    assert sorted(written) == ["cli.py", "job.py", "plugin.py"], written
    (site / "tlcli_classes" / "__init__.py").write_text("")
    toml = re.search(r"```toml\n(# pyproject.toml.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S).group(1)
    entry = re.search(r'^(classes = ".*")$', toml, flags=re.M).group(1).replace('"', "")
    info = site / "tlcli_classes-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tlcli-classes\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[tlcli.plugins]\n{entry}\n")


def test_the_documented_plugin_installs_lists_and_runs(tmp_path):
    from PIL import Image

    site = tmp_path / "site"
    _install_page_plugin(site)
    for label, n in (("cat", 3), ("dog", 1)):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8)).save(tmp_path / "photos" / label / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}

    def tlcli(*args):
        return subprocess.run([sys.executable, "-m", "tlcli", *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=120)

    listed = tlcli("--help")
    assert "classes" in listed.stdout and "My tools" in listed.stdout, listed.stdout
    done = tlcli("classes", "photos", "--min-images", "2", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[:2] == [{"label": "cat", "images": 3}, {"label": "dog", "images": 1}]
    assert lines[-1]["command"] == "classes" and lines[-1]["images"] == 4 and lines[-1]["classes"] == 2
    assert "class dog has 1 images" in done.stderr
    bad = tlcli("classes", "photos", "--min-images", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
