"""`tlcli plugins`: what is installed, and what failed to load."""

from __future__ import annotations

from tlcli.cli.command import Command
from tlcli.fields import Options


def run_plugins(cfg: Options, run, report) -> dict:
    """One record a plugin (failed ones too, with their error)."""
    from tlcli.registry import all_failures, load_plugins

    found = load_plugins()
    failures = all_failures()
    broken = {f.entry_point for f in failures}
    rows = []
    for loaded in found.loaded:
        if loaded.plugin.name in broken:
            continue
        commands = _commands_of(loaded.plugin)
        row = {
            "name": loaded.plugin.name,
            "distribution": loaded.distribution,
            "version": loaded.version,
            "commands": commands,
            "description": loaded.plugin.description,
            "status": "ok",
        }
        rows.append(row)
    for failure in failures:
        rows.append(
            {
                "name": failure.entry_point,
                "distribution": failure.distribution,
                "version": None,
                "commands": [],
                "description": "",
                "status": "failed",
                "error": failure.error,
            }
        )
    for row in rows:
        report.record(row)
    report.table(
            "plugins",
            ["name", "distribution", "version", "commands", "status"],
            [[r["name"], r["distribution"], r["version"] or "-", ", ".join(r["commands"]), r["status"]] for r in rows],
        )
    for failure in found.failed:  # register failures were already named when the CLI started
        report.warn(f"plugin {failure.entry_point} failed to load: {failure.error}")
    return {"status": "finished", "plugins": sum(r["status"] == "ok" for r in rows),
            "failed": sum(r["status"] == "failed" for r in rows)}


def _commands_of(plugin) -> list[str]:
    """Names a plugin adds: its declared commands (group words once), then any it registers itself on a
    scratch app."""
    import typer

    names = list(dict.fromkeys(path.split()[0] for path in plugin.commands))
    if plugin.register_commands is not None:
        scratch = typer.Typer()
        plugin.register_commands(scratch)
        names += [info.name or info.callback.__name__.replace("_", "-") for info in scratch.registered_commands]
        names += [group.name for group in scratch.registered_groups if group.name]
    return names


PLUGINS = Command("plugins", Options, run_plugins, "List installed plugins and their commands.", kind="tool",
                  examples=("tlcli plugins --json",))
