"""The root command. Imports nothing heavy: `tlcli --help` must stay fast.

Each command group lives in its own module and is joined here; plugins add theirs through the registry.
"""

from __future__ import annotations

import errno
import os
import sys

import typer

from tlcli import __version__
from tlcli.console.errors import EXIT_USAGE, TlcliError

HELP = """Adapt foundation models to your own small data: zero-shot, probes, fine-tuning, soft prompts.

Data goes to stdout (JSON Lines with --json), progress and diagnostics to stderr.
Exit codes: 0 ok, 1 the job failed, 2 bad usage or bad input. --debug shows tracebacks.
"""


def _version(value: bool) -> None:
    if value:
        print(f"tlcli {__version__}")
        raise typer.Exit()


def _no_type_for_flags() -> None:
    """Typer 0.29 with Click 8.5 shows a ``<bool>`` type after every flag in rich help; a flag takes no value."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_tlcli", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._tlcli = True
    TyperOption.display_type_rich = display_type_rich


def build_app() -> typer.Typer:
    """The whole command tree: core commands, then every loaded plugin's."""
    from tlcli.cli.lazy import LazyGroup
    from tlcli.registry import register_commands

    _no_type_for_flags()

    app = typer.Typer(
        name="tlcli",
        cls=LazyGroup,
        help=HELP,
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ) -> None:
        """tlcli root."""

    for failure in register_commands(app):
        from tlcli.console.output import terminal_safe

        print(terminal_safe(f"tlcli: warning: plugin {failure.entry_point} is broken and was skipped "
                            f"({failure.error}); see `tlcli plugins`"), file=sys.stderr)
    return app


# The core's own commands, declared like a plugin's: imported only when they run.
CORE_COMMANDS = {
    "plugins": ("tlcli.cli.plugins_cmd:PLUGINS", "List installed plugins and their commands."),
    "layers": ("tlcli.cli.layers:LAYERS", "Show a model's blocks: the names --freeze-until accepts."),
    "doctor": ("tlcli.cli.doctor:DOCTOR", "Show where each workload runs and in what precision, and why."),
    "monitor": ("tlcli.cli.monitor:MONITOR", "Watch training live in the terminal: loss and validation curves, "
                "learning rates, throughput, memory, which layers are frozen or trainable, warnings and "
                "checkpoints."),
    "predict": ("tlcli.cli.predict:PREDICT", "Classify images (or texts, for a text run) with a trained run."),
    "evaluate": ("tlcli.cli.predict:EVALUATE",
                 "Measure a trained run on labelled data: accuracy, per-class recall, confusion matrix."),
    "runs list": ("tlcli.cli.runs_cmd:LIST", "List the runs under runs/ (or DIR, searched recursively): command, "
                  "status, best metric, steps, start, wall time, model."),
    "runs show": ("tlcli.cli.runs_cmd:SHOW", "Show one run: what it is, its options, its summary, and its timeline "
                  "(starts, evaluations, checkpoints, warnings, stops)."),
    "runs compare": ("tlcli.cli.runs_cmd:COMPARE", "Compare runs side by side: the options that differ, and their "
                     "metrics."),
    "runs prune": ("tlcli.cli.runs_cmd:PRUNE", "Remove failed, stopped or interrupted runs under runs/ (or DIR)."),
    "runs export": ("tlcli.cli.runs_cmd:EXPORT", "Write a run's metrics as TensorBoard event files or a CSV, from "
                    "its events.jsonl."),
    "plot": ("tlcli.cli.plot:PLOT", "Plot a metric of one or more runs: a PNG or SVG file, or a chart in the "
             "terminal."),
    "export": ("tlcli.cli.export:EXPORT", "Write a trained run's model as one ONNX or TorchScript file for deployment."),
    "merge": ("tlcli.cli.merge:MERGE", "Fold a LoRA run's adapters into its base weights: a new run folder with "
              "a plain model."),
}
CORE_GROUPS = {"runs": "List, show, compare, prune and export the runs under runs/ (`tlcli runs` lists them)."}
# `tlcli runs` and `tlcli runs DIR` are `tlcli runs list`.
CORE_GROUP_DEFAULTS = {"runs": "list"}


def build_command():
    """The root Click group: the core's commands, then every plugin's declared (lazy) commands."""
    from tlcli.cli.lazy import add_declared
    from tlcli.registry import load_plugins

    command = typer.main.get_command(build_app())
    add_declared(command, CORE_COMMANDS, CORE_GROUPS, "Core", CORE_GROUP_DEFAULTS, alone=("runs",))
    for loaded in load_plugins().loaded:
        plugin = loaded.plugin
        add_declared(command, plugin.commands, plugin.groups, plugin.panel, plugin.group_defaults)
    return command


def main(argv: list[str] | None = None, root=None) -> None:
    """Console entry point: run a command, map errors to one line and an exit code. ``root``: another
    Click command to run the same way (tests of the command layer)."""
    from typer.exceptions import Abort, Exit, TyperException

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("TLCLI_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    if debug:
        os.environ["TLCLI_DEBUG"] = "1"
    command = build_command() if root is None else root
    try:
        code = command.main(args=args, prog_name="tlcli", standalone_mode=False)
    except Exit as done:
        code = done.exit_code
    except Abort:
        print("tlcli: aborted", file=sys.stderr)
        code = 130
    except TyperException as error:  # usage errors from the parser: one line, exit 2
        if debug:
            raise
        ctx = getattr(error, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        from tlcli.console.output import terminal_safe

        # The message quotes what was typed: a value may hold escape sequences or a key.
        message = terminal_safe(" ".join(error.format_message().split()))
        print(f"tlcli: error: {message}{terminal_safe(hint)}", file=sys.stderr)
        code = getattr(error, "exit_code", EXIT_USAGE)
    except TlcliError as error:
        if debug:
            raise
        from tlcli.console.output import terminal_safe

        kind = "" if error.exit_code == 0 else "error: "  # e.g. --resume of a finished run: said, not failed
        print(f"tlcli: {kind}{terminal_safe(str(error))}", file=sys.stderr)
        code = error.exit_code
    except KeyboardInterrupt:
        print("tlcli: interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        code = _reader_left()
    except Exception as error:  # a disk that is full, read-only or not ours: one line naming the path and the fix
        line = os_error_line(error)
        if debug or line is None:
            raise
        print(f"tlcli: error: {line}", file=sys.stderr)
        code = EXIT_USAGE
    except SystemExit as done:
        # Click turns a broken pipe into exit 1; `tlcli ... | head` is not a failure of ours.
        if not (isinstance(done.__context__, OSError) and done.__context__.errno == errno.EPIPE):
            raise
        code = _reader_left()
    if argv is None and not debug:  # a real process, not a test calling main() in-process; --debug keeps
        exit_without_teardown(code or 0)  # the normal exit, which profilers (python -m cProfile) need
    sys.exit(code or 0)


# errno -> (what happened, how to fix it); {where} names what moves the writes elsewhere.
_OS_ERRORS = {
    errno.ENOSPC: ("no space left on device", "free some space, or {where} on a disk with room, and run again"),
    errno.EDQUOT: ("disk quota exceeded", "free some space, or {where} on a disk with room, and run again"),
    errno.EROFS: ("read-only file system", "{where} on a writable disk"),
    # Reading an input or writing an output: the error does not say which, so the fix names both.
    errno.EACCES: ("permission denied", "check its permissions, or for outputs {where} that you can write"),
    errno.EPERM: ("operation not permitted", "check its permissions, or for outputs {where} that you can write"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or pass fewer --workers"),
    errno.ENAMETOOLONG: ("file name too long", "use a shorter folder name"),
}


def os_error_line(error: BaseException) -> str | None:
    """One line for an I/O error that escaped a command (an ``OSError``, or a native library's error that
    says ``(os error N)``, as safetensors does); None for anything else. Names the path when known."""
    import re

    from tlcli.console.output import display_path, terminal_safe

    if isinstance(error, OSError):
        code, path = error.errno, error.filename
    else:
        found = re.search(r"\(os error (\d+)\)", str(error))
        if found is None:
            return None
        code, path = int(found.group(1)), None
    what, fix = _OS_ERRORS.get(code, (None, None))
    if what is None:
        if code is None:  # OSError("message") as some libraries raise it: the message is all there is
            what = terminal_safe(" ".join(str(error).split())) or type(error).__name__
        else:
            what = ((error.strerror if isinstance(error, OSError) else None) or os.strerror(code)).lower()
        fix = "run again with --debug for the details"
    where = _where_writes_go(path)
    line = f"{what}: {display_path(path)}" if path else what
    if isinstance(error, OSError) and error.filename2:
        line += f" -> {display_path(error.filename2)}"
    return f"{line}; {fix.format(where=where)}"


def _where_writes_go(path) -> str:
    """The setting that moves writes away from ``path``: TLCLI_HOME for the caches, --out for a run."""
    from tlcli.runs.paths import tlcli_home

    if path:
        try:
            full = os.path.abspath(os.fsdecode(path))
            home = os.path.abspath(tlcli_home())
            if os.path.commonpath([full, home]) == home:
                return "set TLCLI_HOME to a folder"
        except (ValueError, OSError):
            pass
        return "pass --out a folder"
    return "pass --out (runs) or set TLCLI_HOME (caches) to a folder"


def _reader_left() -> int:
    """stdout's reader went away (`tlcli ... | head`): send the rest to /dev/null and exit 0."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def exit_without_teardown(code: int) -> None:
    """Exit the process, skipping the interpreter's teardown when torch is loaded.

    Tearing down torch's modules takes about 0.7 s here (measured: `import torch` alone, then exit), more
    than a whole command on cached features. tlcli writes files in `with` blocks and by atomic rename, so
    nothing waits for finalizers; what Python runs first at exit still runs: joining non-daemon threads
    (thread pools included) and the atexit handlers.
    """
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if "torch" not in sys.modules or shutdown is None:
        sys.exit(code)
    import atexit

    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the reader left
            pass
    os._exit(code)
