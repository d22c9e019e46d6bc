"""A fresh `rag search` / `text zeroshot` process runs the encoder itself: no sentence-transformers, no
transformers on the query path (they cost seconds to import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("sentence_transformers", "transformers", "torch._dynamo")  # dynamo drags in sympy: seconds


def run_in_fresh_process(args: list[str], cwd, home) -> dict:
    code = ("import json, sys\n"
            "from tlcli.cli import main\n"
            "try:\n"
            f"    main({args!r})\n"
            "except SystemExit as done:\n"
            "    code = done.code\n"
            "else:\n"
            "    code = 0\n"
            f"print(json.dumps({{'code': code, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n")
    env = {**os.environ, "TLCLI_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_dense_search_imports_neither_sentence_transformers_nor_transformers(small_copy, tmp_path):
    result = run_in_fresh_process(["rag", "search", "striped animals", "--mode", "hybrid", "--json"], small_copy,
                                  tmp_path / "home")
    assert result == {"code": 0, "heavy": []}


def test_text_zeroshot_imports_neither(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("the striker scored twice\nrain all week\n", encoding="utf-8")
    result = run_in_fresh_process(["text", "zeroshot", "--input", str(texts), "--labels", "sport,weather", "--json"], tmp_path,
                                  tmp_path / "home")
    assert result == {"code": 0, "heavy": []}
