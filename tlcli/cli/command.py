"""Commands declared as data, and the one lifecycle every command runs through.

A plugin declares ``Command(name, config=DistillConfig, job="tlcli_distill.job:run_distill", help=...)``;
the core builds the command line from the config class (each field once, see ``tlcli/fields.py``), and
runs every command the same way:

1. flags parsed and checked; ``--config FILE.toml`` read (its keys are the config's field names, ``-`` or
   ``_``; flags typed on the command line win); ``--print-config`` prints the resolved config as TOML
   (which ``--config`` accepts back, as it accepts a run's ``config.json`` values) and stops;
2. a training command (``kind="train"``) creates its Run, or with ``--resume RUN_DIR`` reopens one under
   the one resume rule (the run continues exactly as configured: a flag that would change its result is
   refused; a folder this command cannot continue is one line, exit 2, nothing left behind);
3. ``job(cfg, run, report)`` runs, on the dashboard with ``--tui``; it returns the summary (a dict);
4. the Run is finished with that summary, the Report writes it (always the last ``--json`` line), and a
   stopped run gets the line that continues it.

A job never prints: it writes through the :class:`~tlcli.cli.report.Report` it is given.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import typer

from tlcli.console.errors import Interrupted, UsageError

# Presentation options: how a command runs and prints, never what it computes. Not config fields, not in
# config.json, free on --resume. Python names of the generated parameters.
RUN_OPTIONS = ("out", "overwrite", "resume")
OUTPUT_OPTIONS = ("config_file", "print_config", "json_output", "quiet", "tui")
PANEL_COMMAND = "Options"


@dataclass(frozen=True)
class Command:
    """One command, as data.

    name: the word typed (``distill``; in a group, the sub-command word: ``index`` of ``rag index``).
    config: the pydantic class whose fields are the flags (compose ``tlcli.fields`` groups).
    job: ``"module:function"``, imported only when the command runs: ``job(cfg, run, report) -> dict``
        (the summary; ``run`` is None for a command that makes no run folder).
    help: the ``--help`` text; its first line is the one-line summary.
    kind: ``train`` makes a run folder (``--out --overwrite --resume --tui``); ``tool`` makes none.
    plugin: the plugin's name, recorded in the run; run_name: the run folder's prefix (default: ``name``).
    group: the group's word for a sub-command (``rag``), for messages and the resume hint.
    """

    name: str
    config: type
    job: Any  # "module:function" (or the function itself)
    help: str = ""
    kind: Literal["train", "tool"] = "train"
    plugin: str = ""
    run_name: str = ""
    group: str = ""
    resumable: bool = True
    examples: tuple[str, ...] = field(default_factory=tuple)
    # "module:function" (or the function): ``prepare(cfg, out) -> run folder``, called before a new run's
    # folder is made: checks that must come first, and the default folder (None: runs/<name>-<time>).
    prepare: Any = None

    @property
    def path(self) -> str:
        """What is typed after ``tlcli``: ``distill``, ``rag index``."""
        return f"{self.group} {self.name}".strip()

    @property
    def trains(self) -> bool:
        return self.kind == "train"


# --- from a config class to parameters ----------------------------------------------------------------------

def flag_fields(config: type) -> dict[str, Any]:
    """The config's fields that are flags or arguments (``flag=False`` fields are set by the method)."""
    return {name: info for name, info in config.model_fields.items() if _extra(info).get("flag") is not False}


def _extra(info) -> dict:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def flag_name(config: type, name: str) -> str:
    """How a field is typed: ``--max-steps``, or ``DATA`` for a positional argument."""
    info = config.model_fields.get(name)
    if info is None:
        return "--" + name.replace("_", "-")
    extra = _extra(info)
    if extra.get("argument"):
        return extra.get("metavar") or name.upper()
    return extra.get("flag") or "--" + name.replace("_", "-")


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None`` / ``Optional[X]`` / ``Annotated[X, ...]``, whether None is allowed)."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            annotation = args[0] if len(args) == 1 else str
        else:
            return annotation, optional


def _has_before_validator(info) -> bool:
    return any(type(m).__name__ == "BeforeValidator" for m in info.metadata)


def _parameter(command: Command, name: str, info) -> inspect.Parameter:
    """One field as a Typer parameter: type, default, help, flag and short form, help panel."""
    extra = _extra(info)
    inner, _ = _unwrap(info.annotation)
    required = info.is_required()
    default = None if required else info.default
    help_text = info.description or ""
    if typing.get_origin(inner) is Literal:
        annotation: Any = Optional[inner]
    elif typing.get_origin(inner) is list:
        several = extra.get("argument") or extra.get("repeat")  # nargs=-1, or a flag given once per value
        annotation = Optional[list[str]] if several else Optional[str]
        if not several and isinstance(default, list):
            default = ",".join(map(str, default))
    elif _has_before_validator(info):  # parsed by the config (``--max-bad 5%``): the flag takes the text
        annotation = Optional[str]
        default = None if default is None else str(default)
    elif inner is bool:
        annotation = bool
    elif inner in (int, float, str):
        annotation = Optional[inner]
    else:
        annotation = Optional[str]
    if extra.get("argument"):
        spec = typer.Argument(default, help=help_text, metavar=extra.get("metavar") or name.upper(),
                              show_default=False)
    else:
        long = extra.get("flag") or "--" + name.replace("_", "-")
        if inner is bool and default is True:
            long = f"{long}/--no-{long[2:]}"
        decls = [long] + ([extra["short"]] if extra.get("short") else [])
        spec = typer.Option(default, *decls, help=help_text,
                            rich_help_panel=extra.get("panel") or PANEL_COMMAND,
                            show_default=default is not None and default is not False and default != [])
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=spec, annotation=annotation)


def _presentation_parameters(command: Command) -> list[inspect.Parameter]:
    from tlcli.fields import PANEL_RUN

    def p(name, annotation, spec):
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=spec, annotation=annotation)

    params = []
    if command.trains:
        params += [
            p("out", Optional[Path], typer.Option(None, "--out", "-o", rich_help_panel=PANEL_RUN, help=(
                f"Run folder (default runs/{command.run_name or command.name}-<time>). An existing non-empty "
                "folder is refused unless --overwrite."))),
            p("overwrite", bool, typer.Option(False, "--overwrite", rich_help_panel=PANEL_RUN, help=(
                "Replace the run in --out (only a tlcli run folder, and only once the new run has started)."))),
        ]
        if command.resumable:
            params.append(p("resume", Optional[Path], typer.Option(None, "--resume", rich_help_panel=PANEL_RUN,
                            help="Continue a stopped or interrupted run from its last checkpoint.")))
    params += [
        p("config_file", Optional[Path], typer.Option(None, "--config", rich_help_panel=PANEL_RUN, help=(
            "A TOML file of options (keys as --print-config writes them); flags on the command line win."))),
        p("print_config", bool, typer.Option(False, "--print-config", rich_help_panel=PANEL_RUN,
                                             help="Print the resolved options as TOML and exit.")),
        p("json_output", bool, typer.Option(False, "--json", rich_help_panel=PANEL_RUN,
                                            help="JSON Lines on stdout; the summary is the last line.")),
        p("quiet", bool, typer.Option(False, "--quiet", "-q", rich_help_panel=PANEL_RUN,
                                      help="No progress on stderr.")),
    ]
    if command.trains:
        params.append(p("tui", bool, typer.Option(False, "--tui", rich_help_panel=PANEL_RUN, help=(
            "Watch the run in the live dashboard (plain progress when stderr is not a terminal)."))))
    return params


def build(command: Command):
    """The Click command for ``command``: its flags generated from the config, its body the lifecycle."""
    own = set(getattr(command.config, "__annotations__", {}))
    fields = flag_fields(command.config)
    # Arguments in declaration order (base classes first), a list argument last; flags with the method's
    # own first (its panel reads best that way), then the shared groups'.
    # A list argument (PATHS..., TEXTS...) takes the rest of the line: it goes last.
    arguments = [_parameter(command, n, i) for n, i in sorted(
        ((n, i) for n, i in fields.items() if _extra(i).get("argument")),
        key=lambda item: typing.get_origin(_unwrap(item[1].annotation)[0]) is list)]
    flags = [_parameter(command, n, i) for n, i in sorted(fields.items(), key=lambda item: item[0] not in own)
             if not _extra(i).get("argument")]
    clash = set(fields) & set(RUN_OPTIONS + OUTPUT_OPTIONS)
    if clash:
        raise TypeError(f"{command.path}: config fields {sorted(clash)} clash with the core's options")
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    # Arguments first: Typer keeps the order, and a positional parameter must come before the options.
    signature = inspect.Signature([context] + [a.replace(kind=inspect.Parameter.KEYWORD_ONLY) for a in arguments]
                                  + flags + _presentation_parameters(command))

    def body(ctx: typer.Context, **values: Any) -> None:
        run_command(command, ctx, values)

    body.__signature__ = signature
    body.__name__ = command.name.replace("-", "_")
    help_text = _reflow(command.help)
    if command.examples:
        help_text += "\n\nExamples:\n\n" + "\n\n".join(f"  {e}" for e in command.examples)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")
    app.command(command.name, help=help_text, context_settings={"help_option_names": ["-h", "--help"]})(body)
    return typer.main.get_command(app)


def _reflow(text: str) -> str:
    """Help paragraphs as written in the source (wrapped at 110 columns) joined into lines the terminal
    wraps itself; indented lines (examples, lists) kept as they are."""
    paragraphs = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        lines = paragraph.splitlines()
        if any(line.startswith((" ", "- ", "* ")) for line in lines):
            paragraphs.append(paragraph)
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


# --- the lifecycle -------------------------------------------------------------------------------------------

def given_options(ctx: typer.Context) -> set[str]:
    """Parameter names the user typed (they override a --config file)."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name != "DEFAULT":
            given.add(name)
    return given


def resumable_fields(config: type) -> set[str]:
    """Fields that may change on ``--resume``: they change speed or display, never the result."""
    return {name for name, info in config.model_fields.items() if _extra(info).get("resume")}


def validated(config: type, values: dict[str, Any], where: str = ""):
    """``config(**values)``, a pydantic error turned into one line naming the flag and the fix."""
    from pydantic import ValidationError

    try:
        return config(**values)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        flag = flag_name(config, name) if name else "options"
        if first["type"] == "missing":
            info = config.model_fields.get(name)
            fix = _extra(info).get("missing") if info is not None else None
            raise UsageError(f"{where}missing {flag}: {fix or 'pass it on the command line or in --config'}") from None
        if first["type"] == "extra_forbidden":
            raise UsageError(f"{where}unknown option {name!r}; see --help for the options this command takes") from None
        message = first["msg"].removeprefix("Value error, ")
        got = first.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        raise UsageError(f"{where}{flag}: {message}{shown}") from None


def resolve_config(command: Command, values: dict[str, Any], given: set[str], config_file: Path | None):
    """Defaults, then the --config file, then the flags typed: validated into the command's config."""
    from tlcli.console.config_file import read_options_file

    typed = {name: _split_list(command.config, name, _plain(value)) for name, value in values.items()
             if name in given}
    merged: dict[str, Any] = {}
    if config_file is not None:
        from_file = read_options_file(config_file)
        unknown = sorted(set(from_file) - set(command.config.model_fields))
        if unknown:
            raise UsageError(f"--config {config_file}: unknown option {unknown[0]!r} for `tlcli {command.path}`; "
                             "`--print-config` lists the options it takes")
        merged.update(from_file)
    merged.update(typed)
    return validated(command.config, merged)


def _split_list(config: type, name: str, value: Any) -> Any:
    """A list option typed as one comma-separated value (``--labels cat,dog``, ``--seeds 1,2,3``)."""
    inner, _ = _unwrap(config.model_fields[name].annotation)
    if isinstance(value, str) and typing.get_origin(inner) is list and not _has_before_validator(
            config.model_fields[name]):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def run_command(command: Command, ctx: typer.Context, values: dict[str, Any]) -> None:
    """Everything between the parsed command line and the exit code (module docstring, steps 1-4)."""
    from tlcli.cli.report import Report
    from tlcli.runs.run import is_main_process

    options = {name: values.pop(name) for name in RUN_OPTIONS + OUTPUT_OPTIONS if name in values}
    given = given_options(ctx) & set(values)
    report = Report(command.path, json_output=options["json_output"], quiet=options["quiet"],
                    silent=not is_main_process())
    resume = options.get("resume")
    if not command.trains:
        cfg = resolve_config(command, values, given, options["config_file"])
        if options["print_config"]:
            report.text(to_toml(cfg.model_dump(mode="json")))
            return
        summary = _job(command)(cfg, None, report)
        _exit_failed(command, report.summary(summary or {}))
        return
    from tlcli.cli.options import check_out_path, require_out_under_torchrun
    from tlcli.runs.run import Run

    require_out_under_torchrun(options["out"], resume)
    if resume is not None:
        _refuse_changes_on_resume(command, given, options)
        _refuse_foreign_run(command, Path(resume))  # before Run.resume: a finished foreign run is not "finished"
        run = Run.resume(resume, command.run_name or command.name, command.plugin)
        try:
            cfg = _resumed_config(command, run, {n: _plain(values[n]) for n in given})
            if getattr(cfg, "report_to", None) and not options["print_config"]:
                run.report_to(cfg.report_to, cfg.model_dump(mode="json"))  # Run.create sets a new run's
        except BaseException:
            run.close()
            raise
        if options["print_config"]:
            run.close()
            report.text(to_toml(cfg.model_dump(mode="json")))
            return
    else:
        cfg = resolve_config(command, values, given, options["config_file"])
        if options["print_config"]:
            report.text(to_toml(cfg.model_dump(mode="json")))
            return
        check_out_path(options["out"])
        out = options["out"]
        if command.prepare is not None:
            out = _resolve(command.prepare)(cfg, out)
        run = Run.create(command.run_name or command.name, out, overwrite=options["overwrite"],
                         plugin=command.plugin, config=cfg.model_dump(mode="json"))
    job = _job(command)
    from tlcli.tui.launch import dashboard_available, run_in

    def inside(progress_quiet: bool) -> dict:
        report.progress_quiet = progress_quiet
        summary = job(cfg, run, report) or {}
        run.finish(summary.get("status") or "finished", _with_head(summary, command, run))
        return summary

    summary = run_in(run, inside, options["tui"], options["quiet"])
    final = report.summary(summary, status=run.status, run_dir=str(run.path))
    on_dashboard = options["tui"] and dashboard_available()  # it printed the folder and the resume line
    if final["status"] in ("stopped", "interrupted") and command.resumable:
        from tlcli.console.output import display_path

        if not on_dashboard:
            report.hint(f"{final['status']}; continue with: tlcli {command.path} --resume {display_path(run.path)}")
        if final["status"] == "interrupted":
            raise Interrupted("interrupted; checkpoint saved") from None
    _exit_failed(command, final)


def _exit_failed(command: Command, final: dict) -> None:
    """A job that ends with status ``failed`` (its summary written first) exits 1 with its ``error`` line."""
    if final.get("status") == "failed":
        from tlcli.console.errors import JobFailed

        raise JobFailed(str(final.get("error") or f"`tlcli {command.path}` failed"))


def _with_head(summary: dict, command: Command, run) -> dict:
    from tlcli.cli.report import rounded

    return rounded({"command": command.path, "status": summary.get("status") or "finished",
                    "run_dir": str(run.path), **summary})


def _job(command: Command):
    return _resolve(command.job)


def _resolve(target):
    from tlcli.plugin import resolve_target

    return resolve_target(target) if isinstance(target, str) else target


def _refuse_changes_on_resume(command: Command, given: set[str], options: dict) -> None:
    """The one ``--resume`` rule: a run continues exactly as configured."""
    changed = sorted(given - resumable_fields(command.config))
    flags = [flag_name(command.config, n) for n in changed]
    if options.get("config_file") is not None:
        flags.append("--config")
    if options.get("overwrite"):
        flags.append("--overwrite")
    if options.get("out") is not None:
        flags.append("--out")
    if flags:
        raise UsageError(f"--resume continues the run exactly as configured; drop {', '.join(flags)}")


def _resumed_config(command: Command, run, changes: dict[str, Any]):
    """The run's own config (plus the speed-only changes allowed); a folder another command wrote, or one
    whose config.json is not a config of this command, is refused in one line."""
    not_ours = _not_ours(command, run.path, _refuse_foreign_run(command, run.path))
    saved = run.config
    if not isinstance(saved, dict) or not saved:
        raise UsageError(not_ours)
    try:
        return validated(command.config, {**saved, **changes})
    except UsageError:
        raise UsageError(not_ours) from None


def _not_ours(command: Command, path: Path, started_by: str | None) -> str:
    from tlcli.console.output import display_path

    return (f"--resume {display_path(path)}: not a `tlcli {command.path}` run"
            f"{f' (it was made by `tlcli {started_by}`)' if started_by else ''}; "
            f"pass the folder of a {command.path} run, or resume it with its own command")


def _refuse_foreign_run(command: Command, path: Path) -> str | None:
    """A folder another command started is refused in one line (finished or not); returns its command."""
    started_by = _started_by(path)
    if started_by and started_by not in (command.run_name or command.name, command.path):
        raise UsageError(_not_ours(command, path, started_by))
    return started_by


def _started_by(path: Path) -> str | None:
    """The command recorded in the run's first ``run_start`` event, if any."""
    from tlcli.runs.events import read_events

    try:
        for event in read_events(Path(path) / "events.jsonl"):
            if event.get("kind") == "run_start":
                data = event.get("data")
                return (data.get("command") if isinstance(data, dict) else None) or None
    except (OSError, ValueError):
        return None
    return None


# --- TOML out ------------------------------------------------------------------------------------------------

def to_toml(values: dict[str, Any]) -> str:
    """Flat options as TOML (what ``--config`` reads back); a None value is left out (the default)."""
    import json

    lines = []
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{key} = {_toml_value(value, json)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any, json) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, json) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v, json)}" for k, v in value.items()) + " }"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string is a JSON string
