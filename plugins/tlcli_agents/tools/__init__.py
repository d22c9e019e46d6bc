"""Tools the agents may call, built from ``--tools`` specs, and the per-role allow-list that guards them.

A tool is a name, a description, a JSON schema for its arguments and a function ``arguments -> text``.
``--tools calculator,files:DIR,rag:DIR,mcp:COMMAND#a,b`` decides which tools exist in a run; a role's
``tools`` list in the team file decides which of them that role may call. A call to anything else is
refused and not run, whatever the model (or a document it read) says.

Tools from other plugins (``rag:DIR``) come through the plugin surface: ``Plugin.tools = {"rag":
"module:factory"}``; ``factory(arg: str)`` returns a list of objects with ``name``, ``description``,
``parameters`` (JSON schema) and ``run(arguments: dict) -> str`` (or one such object). No plugin module
is imported by name.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from tlcli.console.errors import UsageError

TOOL_SPECS = "calculator, files:DIR, rag:DIR, mcp:COMMAND#TOOL,TOOL"
MAX_RESULT_CHARS = 20_000  # what one tool result may put into the conversation


@dataclass(frozen=True)
class Tool:
    name: str
    group: str  # the --tools kind it came from: calculator, files, rag, mcp
    description: str
    parameters: dict
    run: Callable[[dict], str]

    def schema(self) -> dict:
        """The OpenAI ``tools`` entry for native tool calls."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


class ToolError(Exception):
    """A tool refused or failed; its message goes back to the model, the run goes on."""


@dataclass
class ToolBox:
    tools: dict[str, Tool] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def add(self, tool: Tool) -> None:
        if tool.name in self.tools:
            raise UsageError(f"two tools are named {tool.name!r} ({self.tools[tool.name].group} and "
                             f"{tool.group}); give each --tools kind once")
        self.tools[tool.name] = tool

    def allowed(self, allow_list: list[str]) -> list[Tool]:
        """The tools a role may call: those named in its list, or whose group is named."""
        names = set(allow_list)
        return [t for t in self.tools.values() if t.name in names or t.group in names]

    def call(self, allow_list: list[str], name: str, arguments: Any) -> tuple[str, bool]:
        """Run a call if the role may make it: (text for the model, ok). Never raises for the model's
        mistakes: unknown or refused tools, bad arguments and tool failures come back as text."""
        permitted = {t.name: t for t in self.allowed(allow_list)}
        if name not in permitted:
            why = "is not allowed for this role" if name in self.tools else "does not exist"
            offer = ", ".join(permitted) or "none"
            return f"error: tool {name!r} {why}; tools you may call: {offer}", False
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as error:
                return f"error: the arguments of {name} are not valid JSON ({error}); send a JSON object", False
        if not isinstance(arguments, dict):
            return f"error: the arguments of {name} must be a JSON object, got {type(arguments).__name__}", False
        try:
            text = str(permitted[name].run(arguments))
        except ToolError as error:
            return f"error: {error}", False
        except (TypeError, ValueError, KeyError) as error:
            return f"error: {name} could not use these arguments ({type(error).__name__}: {error})", False
        except Exception as error:  # a plugin's or server's tool failing is the model's news, not a crash
            return f"error: {name} failed ({type(error).__name__}: {error})", False
        if len(text) > MAX_RESULT_CHARS:
            text = text[:MAX_RESULT_CHARS] + f"\n[truncated: the first {MAX_RESULT_CHARS} characters of {len(text)}]"
        return text, True

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers.clear()


class RecordedToolBox(ToolBox):
    """The tools of a recording, answering with the recorded results in the recorded order (per tool name);
    nothing is run. A role's allow-list still decides, so a changed team shows up as a refusal."""

    def __init__(self, events: list[dict]):
        super().__init__()
        self.results: dict[str, deque] = {}
        self.grouped = False
        for event in events:
            data = event.get("data") if isinstance(event, dict) else None
            if not isinstance(data, dict) or event.get("kind") != "message" or data.get("role") != "tool":
                continue
            name = data.get("tool_name")
            if not isinstance(name, str) or not name:
                continue  # the solver's own feedback on a malformed call: it makes that again
            group = data.get("tool_group")
            content = str(data.get("content") or "")
            # ToolBox.call's own refusals are made again by the allow-list check, not served from the queue.
            refused = not data.get("ok") and content.startswith(f"error: tool {name!r} ")
            if not refused:
                self.results.setdefault(name, deque()).append((content, bool(data.get("ok"))))
            unknown = refused and content.startswith(f"error: tool {name!r} does not exist")
            if not unknown and name not in self.tools:  # a tool of the run (it may have failed or been refused)
                self.grouped |= isinstance(group, str)
                self.tools[name] = Tool(name, group if isinstance(group, str) else name, "recorded",
                                        {"type": "object", "properties": {}}, lambda arguments: "")

    def allowed(self, allow_list: list[str]) -> list[Tool]:
        if not self.grouped and any(entry not in self.tools for entry in allow_list):
            # A recording without tool groups and a role naming a group (files, mcp): it may call any of them.
            return list(self.tools.values())
        return super().allowed(allow_list)

    def call(self, allow_list: list[str], name: str, arguments: Any) -> tuple[str, bool]:
        if name not in {t.name for t in self.allowed(allow_list)}:
            return super().call(allow_list, name, arguments)  # the same refusal text as a live run
        queue = self.results.get(name)
        if not queue:
            return (f"error: the recording has no further result of {name}; replay with --tools to run the tools "
                    "for real"), False
        return queue.popleft()


BUILTIN_TOOL_NAMES = ("calculator", "files", "mcp", "read_file", "list_files")


def check_team_tools(team, box: ToolBox) -> None:
    """Every name in a role's ``tools`` list must be a tool or group this run has, a built-in one, or a
    plugin's tool kind (``rag``) or one of its tools (``rag_search``): a name nothing can provide
    (``shell``) is a mistake in the team file, refused here rather than silently never allowed."""
    from tlcli.registry import load_plugins

    finder = getattr(load_plugins(), "tool_for", None)
    known = set(BUILTIN_TOOL_NAMES) | set(box.tools) | {t.group for t in box.tools.values()}
    for role in team.roles:
        for name in role.tools:
            kind = name.split("_", 1)[0]
            if name in known or (finder is not None and (finder(name) or finder(kind))):
                continue
            raise UsageError(f"team {team.name!r}: role {role.name} lists tool {name!r}, which no tool provides "
                             f"(tools are {TOOL_SPECS}, and the names these give: {', '.join(sorted(known))}); "
                             "fix the role's tools list in the team file")


def build_toolbox(specs: list[str]) -> ToolBox:
    """Tools for ``--tools`` specs; a bad spec is a UsageError before any model call."""
    box = ToolBox()
    try:
        for spec in specs:
            kind, _, arg = spec.partition(":")
            kind = kind.strip()
            if kind == "calculator" and not arg:
                from tlcli_agents.tools.calculator import calculator_tool

                box.add(calculator_tool())
            elif kind == "files" and arg:
                from tlcli_agents.tools.files import files_tools

                for tool in files_tools(arg):
                    box.add(tool)
            elif kind == "mcp" and arg:
                from tlcli_agents.tools.mcp_tools import mcp_tools

                tools, close = mcp_tools(arg)
                box.closers.append(close)
                for tool in tools:
                    box.add(tool)
            elif kind not in ("calculator", "files", "mcp") and kind and arg:
                for tool in plugin_tools(kind, arg):
                    box.add(tool)
            else:
                raise UsageError(f"--tools {spec!r} is not understood; expected {TOOL_SPECS}")
    except BaseException:
        box.close()
        raise
    return box


def plugin_tools(kind: str, arg: str) -> list[Tool]:
    """Tools a plugin registered under ``kind`` (``rag``), resolved through the registry."""
    from importlib import import_module

    from tlcli.registry import load_plugins

    plugins = load_plugins()
    finder = getattr(plugins, "tool_for", None)
    target = finder(kind) if finder is not None else None
    if target is None:
        hint = " (install or enable the rag plugin: it provides rag:INDEX_DIR)" if kind == "rag" else ""
        raise UsageError(f"--tools {kind}:{arg}: no installed plugin provides a {kind!r} tool{hint}; "
                         f"built-in tools are {TOOL_SPECS}")
    module_name, _, attr = target.partition(":")
    factory = getattr(import_module(module_name), attr)
    made_tools = factory(arg)
    if hasattr(made_tools, "name"):  # one tool object rather than a list
        made_tools = [made_tools]
    tools = []
    for made in made_tools:
        run = getattr(made, "run", None) or made
        tools.append(Tool(str(made.name), kind, str(getattr(made, "description", "")),
                          dict(getattr(made, "parameters", {"type": "object", "properties": {}})), run))
    return tools
