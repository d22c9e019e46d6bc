"""Discovers plugins once, through entry points; a plugin that fails to import is reported, not fatal.

``TLCLI_PLUGINS=finetune,clip`` limits which plugins load (handy for tests and for isolating a broken
third-party plugin).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from tlcli.plugin import Plugin

ENTRY_POINT_GROUP = "tlcli.plugins"


@dataclass(frozen=True)
class LoadedPlugin:
    plugin: Plugin
    distribution: str
    version: str


@dataclass(frozen=True)
class PluginFailure:
    entry_point: str
    distribution: str
    error: str


@dataclass(frozen=True)
class Plugins:
    loaded: list[LoadedPlugin]
    failed: list[PluginFailure]

    def get(self, name: str) -> Plugin | None:
        return next((p.plugin for p in self.loaded if p.plugin.name == name), None)

    def predictor_for(self, kind: str) -> str | None:
        return self._lookup("predictors", kind)

    def llm_backend_for(self, scheme: str) -> str | None:
        return self._lookup("llm_backends", scheme)

    def tool_for(self, name: str) -> str | None:
        return self._lookup("tools", name)

    def metric_sink_for(self, name: str) -> str | None:
        return self._lookup("metric_sinks", name)

    def _lookup(self, hook: str, key: str) -> str | None:
        """The first loaded plugin's ``"module:attr"`` for ``key`` in one of its hook tables."""
        for loaded in self.loaded:
            table = getattr(loaded.plugin, hook)
            if key in table:
                return table[key]
        return None


def _allowed() -> set[str] | None:
    value = os.environ.get("TLCLI_PLUGINS", "").strip()
    return {name.strip() for name in value.split(",") if name.strip()} if value else None


@lru_cache(maxsize=1)
def load_plugins() -> Plugins:
    """Load every plugin once. Names must be unique: a second plugin of the same name is a failure."""
    allowed = _allowed()
    loaded: list[LoadedPlugin] = []
    failed: list[PluginFailure] = []
    seen: set[str] = set()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if allowed is not None and ep.name not in allowed:
            continue
        dist, version = _distribution(ep)
        try:
            plugin = ep.load()
            if not isinstance(plugin, Plugin):
                raise TypeError(f"{ep.value} is a {type(plugin).__name__}, expected tlcli.plugin.Plugin")
            if plugin.name in seen:
                raise ValueError(f"a plugin named {plugin.name!r} is already loaded")
        except Exception as error:  # a broken plugin must not take the CLI down
            failed.append(PluginFailure(ep.value, dist, f"{type(error).__name__}: {error}"))
            continue
        seen.add(plugin.name)
        loaded.append(LoadedPlugin(plugin, dist, version))
    return Plugins(loaded, failed)


def register_commands(app) -> list[PluginFailure]:
    """Let every loaded plugin add its commands; one that raises is reported (on stderr and by
    ``tlcli plugins``) and the others still register."""
    failures = []
    for loaded in load_plugins().loaded:
        if loaded.plugin.register_commands is None:
            continue
        try:
            loaded.plugin.register_commands(PanelApp(app, loaded.plugin.panel))
        except Exception as error:  # a broken plugin must not take the CLI down
            failures.append(PluginFailure(loaded.plugin.name, loaded.distribution, f"{type(error).__name__}: {error}"))
    _REGISTER_FAILURES[:] = failures
    return failures


_REGISTER_FAILURES: list[PluginFailure] = []



class PanelApp:
    """The root app as a plugin sees it: its commands and groups land under the plugin's heading in
    ``tlcli --help`` unless it names another panel itself."""

    def __init__(self, app, panel: str):
        self._app, self._panel = app, panel

    def command(self, *args, **kwargs):
        kwargs.setdefault("rich_help_panel", self._panel)
        return self._app.command(*args, **kwargs)

    def add_typer(self, *args, **kwargs):
        kwargs.setdefault("rich_help_panel", self._panel)
        return self._app.add_typer(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._app, name)


def all_failures() -> list[PluginFailure]:
    """Plugins that failed to import, and those whose commands failed to register."""
    return load_plugins().failed + list(_REGISTER_FAILURES)


def _distribution(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"], dist.version
