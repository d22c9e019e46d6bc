"""`tlcli plugins`: what is installed, and what failed to load."""

from __future__ import annotations

import typer

from tlcli.output import emit_json, print_table, warn


def register(app: typer.Typer) -> None:
    app.command("plugins", help="List installed plugins and their commands.\n\nExample: tlcli plugins --json")(
        plugins
    )


def plugins(json_output: bool = typer.Option(False, "--json", help="JSON Lines on stdout.")) -> None:
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
    if json_output:
        for row in rows:
            emit_json(row)
    else:
        print_table(
            "plugins",
            ["name", "distribution", "version", "commands", "status"],
            [[r["name"], r["distribution"], r["version"] or "-", ", ".join(r["commands"]), r["status"]] for r in rows],
        )
    for failure in found.failed:  # register failures were already named when the CLI started
        warn(f"plugin {failure.entry_point} failed to load: {failure.error}")


def _commands_of(plugin) -> list[str]:
    """Names a plugin adds: its declared commands (group words once), then any it registers itself on a
    scratch app."""
    names = list(dict.fromkeys(path.split()[0] for path in plugin.commands))
    if plugin.register_commands is not None:
        scratch = typer.Typer()
        plugin.register_commands(scratch)
        names += [info.name or info.callback.__name__.replace("_", "-") for info in scratch.registered_commands]
        names += [group.name for group in scratch.registered_groups if group.name]
    return names
