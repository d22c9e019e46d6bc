"""The lazy command table: ``tlcli --help`` lists every command from its declaration, and a command's
module is imported only when that command runs (or shows its own ``--help``).

Click documents this as a "lazily loading subcommands" group; here the table holds placeholders
(:class:`LazyCommand`) that know their name, their one-line summary and their help panel, and
:meth:`LazyGroup.resolve_command` swaps a placeholder for the real command when it is invoked.
"""

from __future__ import annotations

from typing import Any

from typer import core as _typer_core
from typer.core import TyperCommand, TyperGroup

# Typer 0.29 carries its own copy of Click (typer._click); its commands are that copy's classes.
click = getattr(_typer_core, "_click", None) or __import__("click")

from tlcli.console.errors import UsageError


class LazyCommand(TyperCommand):
    """A command not yet imported: enough to be listed in its group's help."""

    def __init__(self, name: str, target: str, summary: str, panel: str | None, group: str = ""):
        super().__init__(name, help=summary, short_help=summary, rich_help_panel=panel)
        self.target = target
        self.group = group

    def load(self) -> click.Command:
        """The real Click command: a :class:`~tlcli.cli.command.Command` spec built, or a Typer app /
        Click command as it is."""
        from tlcli.plugin import resolve_target

        try:
            found = resolve_target(self.target)
        except Exception as error:  # a broken plugin: one line, the rest of the CLI keeps working
            raise UsageError(f"`{self.group + ' ' if self.group else ''}{self.name}` cannot load "
                             f"({type(error).__name__}: {error}); see `tlcli plugins`") from None
        return as_click(found, self.name, self.group, self.rich_help_panel)


def as_click(found: Any, name: str, group: str = "", panel: str | None = None) -> click.Command:
    import typer

    from tlcli.cli.command import Command, build

    if isinstance(found, Command):
        if found.group != group or found.name != name:
            raise TypeError(f"{found.path!r} is declared as {(group + ' ' + name).strip()!r}")
        command = build(found)
    elif isinstance(found, typer.Typer):
        command = typer.main.get_command(found)
    elif hasattr(found, "main") and hasattr(found, "params"):  # a Click command (either copy)
        command = found
    else:
        raise TypeError(f"expected a Command, a Typer app or a Click command, got {type(found).__name__}")
    command.name = name
    if panel is not None:
        command.rich_help_panel = panel
    return command


class LazyGroup(TyperGroup):
    """A group whose commands may be placeholders; each is loaded when it runs. ``default``: the command
    run when the first word names none of the group's commands (``prompt-tune DATA`` is ``prompt-tune
    train DATA``); help shows the group's help, and so do no words unless ``default_alone`` (``tlcli runs``
    is ``tlcli runs list``)."""

    default: str | None = None
    default_alone: bool = False

    def parse_args(self, ctx, args):
        if self.default and (args and args[0] not in self.commands and args[0] not in ctx.help_option_names
                             or not args and self.default_alone):
            args = [self.default, *args]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, LazyCommand):
            command = self.load(name)
        return name, command, rest

    def load(self, name: str) -> click.Command | None:
        """The real command ``name`` (imported now, once)."""
        command = self.commands.get(name)
        if isinstance(command, LazyCommand):
            command = command.load()
            self.commands[name] = command
        return command


def add_declared(root: click.Group, declared: dict[str, tuple[str, str]], groups: dict[str, str],
                 panel: str | None, defaults: dict[str, str] | None = None, alone: tuple[str, ...] = ()) -> None:
    """Put a plugin's declared commands into ``root``: ``declared`` maps ``"name"`` or ``"group name"`` to
    ``(target, summary)``; ``groups`` maps a group's word to its one-line help; ``defaults`` a group's word
    to the sub-command it runs when none is named; ``alone``: groups whose default also runs when no word
    follows the group's (instead of the group's help)."""
    for path, (target, summary) in declared.items():
        words = path.split()
        if len(words) == 1:
            root.commands[path] = LazyCommand(path, target, summary, panel)
            continue
        group_word, name = words
        group = root.commands.get(group_word)
        if group is None:
            group = LazyGroup(name=group_word, help=groups.get(group_word, ""), rich_help_panel=panel,
                              no_args_is_help=True, rich_markup_mode="rich",
                              context_settings={"help_option_names": ["-h", "--help"]})
            group.short_help = groups.get(group_word, "")
            group.default = (defaults or {}).get(group_word)
            group.default_alone = group.default is not None and group_word in alone
            root.commands[group_word] = group
        group.commands[name] = LazyCommand(name, target, summary, None, group_word)


def iter_commands(group, prefix: tuple[str, ...] = ()):
    """``(path, command)`` for every command below ``group``, each placeholder imported (for the tests and
    the reference that read every command's flags)."""
    for name in list(group.commands):
        command = group.load(name) if isinstance(group, LazyGroup) else group.commands[name]
        if is_group(command):
            yield from iter_commands(command, prefix + (name,))
        else:
            yield " ".join(prefix + (name,)), command


def is_group(command) -> bool:
    """A group of sub-commands, in either Click (Typer's own copy or the package)."""
    return isinstance(getattr(command, "commands", None), dict)
