"""The import rules of the design map, checked over the source (ast, nothing imported): the core never
imports a plugin, no plugin imports another, tlcli/ has no import circle, the lower layers never import
the command line or the dashboard, and no plugin prints or threads `json_output` (output is the Report's)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Packages of tlcli/ that only the command layer (and they themselves) may import.
TOP_LAYERS = ("tlcli.cli", "tlcli.tui")


def _module_name(path: Path) -> str:
    base = ROOT / "plugins" if path.is_relative_to(ROOT / "plugins") else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions (relative imports resolved)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _sources(folder: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / folder).rglob("*.py"))}


def test_the_core_never_imports_a_plugin_and_plugins_never_import_each_other():
    for name, path in _sources("tlcli").items():
        bad = sorted(m for m in _imports(path) if m.startswith("tlcli_"))
        assert not bad, f"{name} imports {bad}"
    for name, path in _sources("plugins").items():
        own = name.split(".")[0]
        bad = sorted({m.split(".")[0] for m in _imports(path) if m.startswith("tlcli_")} - {own})
        assert not bad, f"{name} imports another plugin: {bad}"


def test_lower_layers_never_import_the_command_line_or_the_dashboard():
    for name, path in _sources("tlcli").items():
        if name.startswith(TOP_LAYERS) or name == "tlcli.__main__":
            continue
        bad = sorted(m for m in _imports(path) if m.startswith(TOP_LAYERS) and m.split(".")[:2] != name.split(".")[:2])
        assert not bad, f"{name} (a lower layer) imports {bad}"


def test_no_import_circle_in_the_core():
    modules = _sources("tlcli")
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    # Tarjan's strongly connected components: any component of two or more modules is a circle.
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert circles == [], f"import circles in tlcli/: {circles}"


def test_no_plugin_prints_or_threads_json_output():
    for name, path in _sources("plugins").items():
        text = path.read_text(encoding="utf-8")
        assert "json_output" not in text, f"{name} mentions json_output: output belongs to the Report"
        calls = [node.lineno for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Name) and node.func.id == "print"]
        assert not calls, f"{name} calls print() at lines {calls}: use the Report"
