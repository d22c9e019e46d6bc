"""The tools: a calculator that never evaluates code, a folder reader that never leaves its folder."""

from __future__ import annotations

import os

import pytest

from tlcli.console.errors import UsageError
from tlcli_agents.tools import ToolError, build_toolbox
from tlcli_agents.tools.calculator import evaluate
from tlcli_agents.tools.files import MAX_READ_BYTES, ConfinedFolder


@pytest.mark.parametrize("expression", ["17 * 23 + 4", "2 ** 10 - 1", "(1 + 2) * 3 / 4", "7 // 2 + 7 % 3",
                                        "-3 ** 2", "1e3 + 0.5", "abs(-4) + max(1, 2, 3)"])
def test_calculator_agrees_with_python(expression):
    assert evaluate(expression) == eval(expression)  # the reference, on trusted input only


def test_calculator_math_functions_and_constants():
    assert evaluate("sqrt(2) * sqrt(2)") == pytest.approx(2)
    assert evaluate("cos(pi)") == pytest.approx(-1)
    assert evaluate("log(e)") == pytest.approx(1)


@pytest.mark.parametrize("expression", ["__import__('os').system('true')", "open('x')", "x + 1", "(1).real",
                                        "[1, 2]", "lambda: 1", "9 ** 9 ** 9", "2 ** 5000", "'a' * 3",
                                        "sqrt(x=4)", "1 if 1 else 2"])
def test_calculator_refuses_everything_else(expression):
    with pytest.raises(ToolError):
        evaluate(expression)


def test_calculator_errors_are_messages():
    box = build_toolbox(["calculator"])
    assert box.call(["calculator"], "calculator", {"expression": "1/0"}) == ("error: division by zero", False)
    text, ok = box.call(["calculator"], "calculator", {"expr": "1"})
    assert not ok and "expression" in text


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "shared"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("inside")
    (root / "sub" / "b.txt").write_text("deeper")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", root / "link-out.txt")
    os.symlink(root / "a.txt", root / "link-in.txt")
    os.symlink(tmp_path, root / "dir-out")
    return root


def test_files_reads_inside_the_folder(folder):
    shared = ConfinedFolder(folder)
    assert shared.read("a.txt") == "inside" and shared.read("sub/b.txt") == "deeper"
    assert shared.read("sub/../a.txt") == "inside" and shared.read("link-in.txt") == "inside"


@pytest.mark.parametrize("path", ["../secret.txt", "sub/../../secret.txt", "link-out.txt", "dir-out/secret.txt"])
def test_files_escape_is_refused(folder, path):
    with pytest.raises(ToolError, match="outside the folder"):
        ConfinedFolder(folder).read(path)


def test_files_absolute_paths_are_refused(folder, tmp_path):
    with pytest.raises(ToolError, match="relative"):
        ConfinedFolder(folder).read(str(tmp_path / "secret.txt"))


def test_files_listing_hides_links_out_and_reads_are_capped(folder):
    shared = ConfinedFolder(folder)
    assert shared.listing(".").split("\n") == ["a.txt", "link-in.txt", "sub/"]
    (folder / "big.txt").write_text("x" * (MAX_READ_BYTES + 10))
    text = shared.read("big.txt")
    assert text.startswith("x" * MAX_READ_BYTES) and "truncated" in text


def test_files_through_the_toolbox_answers_escapes_as_errors(folder):
    box = build_toolbox([f"files:{folder}"])
    text, ok = box.call(["files"], "read_file", {"path": "../secret.txt"})
    assert not ok and "outside" in text and "outside\n" not in text


def test_bad_tool_specs_are_usage_errors(tmp_path):
    for spec in ["calculatorx", "files:", f"files:{tmp_path / 'missing'}", "calculator:3"]:
        with pytest.raises(UsageError):
            build_toolbox([spec])


def test_rag_without_the_rag_plugin_says_so(monkeypatch):
    monkeypatch.setenv("TLCLI_PLUGINS", "agents")
    from tlcli.registry import load_plugins

    load_plugins.cache_clear()
    try:
        with pytest.raises(UsageError, match="install or enable the rag plugin"):
            build_toolbox(["rag:./index"])
    finally:
        load_plugins.cache_clear()


def test_plugin_tools_come_through_the_registry(monkeypatch):
    """A plugin's tool factory (Plugin.tools) is found by name and its tools run under the allow-list."""
    import tlcli.registry as registry

    class Plugins:
        def tool_for(self, kind):
            return "math:sqrt" if kind == "notrag" else None

    monkeypatch.setattr(registry, "load_plugins", lambda: Plugins())
    import math as math_module

    class Made:
        name, description, parameters = "root", "square root", {"type": "object"}

        def run(self, arguments):
            return str(math_module.sqrt(arguments["x"]))

    monkeypatch.setattr(math_module, "sqrt_factory", lambda arg: [Made()], raising=False)
    monkeypatch.setattr(Plugins, "tool_for", lambda self, kind: "math:sqrt_factory" if kind == "notrag" else None)
    box = build_toolbox(["notrag:whatever"])
    assert box.call(["notrag"], "root", {"x": 9}) == ("3.0", True)
    assert box.call(["calculator"], "root", {"x": 9})[1] is False


def test_failing_or_huge_tool_results_are_messages(monkeypatch):
    from tlcli_agents.tools import MAX_RESULT_CHARS, Tool, ToolBox

    def boom(arguments):
        raise RuntimeError("index is corrupt")

    box = ToolBox()
    box.add(Tool("boom", "rag", "fails", {"type": "object"}, boom))
    box.add(Tool("big", "rag", "floods", {"type": "object"}, lambda a: "x" * (MAX_RESULT_CHARS + 5)))
    assert box.call(["rag"], "boom", {}) == ("error: boom failed (RuntimeError: index is corrupt)", False)
    text, ok = box.call(["rag"], "big", "{}")
    assert ok and len(text) < MAX_RESULT_CHARS + 100 and text.endswith(f"of {MAX_RESULT_CHARS + 5}]")


def test_recorded_toolbox_serves_results_and_remakes_refusals():
    from tlcli_agents.tools import RecordedToolBox

    def tool(name, content, ok, group):
        return {"kind": "message", "data": {"agent": "a", "role": "tool", "tool_name": name, "content": content,
                                            "ok": ok, **({"tool_group": group} if group else {})}}

    events = [tool("calculator", "395", True, "calculator"),
              tool("read_file", "error: tool 'read_file' is not allowed for this role; tools you may call: "
                   "calculator", False, "files"),
              tool("read_file", "the number is 395", True, "files"),
              tool("lookup", "error: lookup failed (RuntimeError: down)", False, "mcp"),
              tool("shell", "error: tool 'shell' does not exist; tools you may call: calculator", False, None)]
    box = RecordedToolBox(events)
    assert set(box.tools) == {"calculator", "read_file", "lookup"}
    assert box.call(["calculator"], "calculator", {"expression": "1"}) == ("395", True)
    text, ok = box.call(["calculator"], "read_file", {"path": "x"})
    assert not ok and "not allowed for this role" in text
    assert box.call(["files"], "read_file", {"path": "x"}) == ("the number is 395", True)  # not the refusal
    assert box.call(["mcp"], "lookup", {}) == ("error: lookup failed (RuntimeError: down)", False)
    text, ok = box.call(["calculator"], "shell", {})
    assert not ok and "does not exist" in text
    text, ok = box.call(["calculator"], "calculator", {})
    assert not ok and "no further result" in text
