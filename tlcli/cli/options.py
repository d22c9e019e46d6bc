"""The option kit: every flag that more than one command takes is defined here, once.

Same flag, same name, same short form, same default, same help, same validation in every command. A command
uses them as parameter defaults::

    def probe(data: Path = typer.Argument(...), device: str = options.device(), json_output: bool = options.json_(),
              out: Optional[Path] = options.out(), overwrite: bool = options.overwrite()): ...

Values are checked as the command line is parsed (before any slow work), and a command hands
``ctx.params`` (or the values) to its validated pydantic config with :func:`validated`.
Short forms kept for the whole tree: ``-k`` top-k, ``-b`` batch size, ``-o`` out, ``-q`` quiet, ``-m`` model,
``-i`` input, ``-l`` labels. ``--shots`` has no short form.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, TypeVar

import typer

from tlcli.console.errors import UsageError

T = TypeVar("T")

# --- the one default of each shared option -------------------------------------------------------------
DEVICE = "auto"
PRECISION = "auto"
MAX_BAD = "5%"
VAL_SPLIT = 0.2
SEED = 0
TOP_K = 5
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def _choice(name: str, allowed: tuple[str, ...]):
    def check(value):
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {' | '.join(allowed)}", param_hint=name)
        return value
    return check


def _finite(name: str, low: float | None = None, high: float | None = None, low_open: bool = False):
    """Reject inf/NaN and out-of-range numbers at parse time (``--lr inf`` must never start a run)."""
    def check(value):
        if value is None:
            return value
        if not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number", param_hint=name)
        if low is not None and (value < low or (low_open and value == low)):
            raise typer.BadParameter(f"{value} must be {'>' if low_open else '>='} {low}", param_hint=name)
        if high is not None and value > high:
            raise typer.BadParameter(f"{value} must be <= {high}", param_hint=name)
        return value
    return check


def finite_option(default: Any, *names: str, low: float | None = None, high: float | None = None,
                  low_open: bool = False, help: str = "") -> Any:
    """A float option that refuses inf, NaN and values outside [low, high] (``--lr``, ``--temperature``)."""
    return typer.Option(default, *names, help=help, callback=_finite(names[0], low, high, low_open))


# --- devices and speed -----------------------------------------------------------------------------------
def device() -> Any:
    return typer.Option(DEVICE, "--device", help="auto | cpu | cuda | mps (auto: a GPU when there is one).",
                        callback=_choice("--device", DEVICES))


def precision() -> Any:
    return typer.Option(PRECISION, "--precision", help="auto | fp32 | bf16 | fp16 | int8 (auto: bf16 on a GPU "
                        "or where this CPU measured it faster, see `tlcli doctor`; int8: text encoders on a CPU).",
                        callback=_choice("--precision", PRECISIONS))


def batch_size(default: Optional[int] = None, help: str = "Items per batch (default: chosen for the device).") -> Any:
    return typer.Option(default, "--batch-size", "-b", min=1, help=help)


def workers() -> Any:
    return typer.Option(None, "--workers", min=0, help="Decoding threads/processes (default: the CPUs, at most 8).")


def seed() -> Any:
    return typer.Option(SEED, "--seed", min=0, max=2**32 - 1, help="Seed for splits, sampling and initialisation.")


def save_every() -> Any:
    return typer.Option(None, "--save-every", min=1, help="Also checkpoint every N steps (what --resume continues from).")


# --- data ---------------------------------------------------------------------------------------------------
def max_bad() -> Any:
    return typer.Option(MAX_BAD, "--max-bad", callback=_check_max_bad,
                        help="Exit 2 when more input files than this are unreadable: a share (5%, 0.05) or a count.")


def _check_max_bad(value: str) -> str:
    from tlcli.data.bad_files import parse_max_bad

    try:
        parse_max_bad(value)
    except UsageError as error:
        raise typer.BadParameter(str(error), param_hint="--max-bad") from None
    return value


def val_split() -> Any:
    return typer.Option(VAL_SPLIT, "--val-split", min=0.0, max=0.9,
                        help="Share of the labelled data held out for validation (stratified, seeded).")


def shots() -> Any:
    return typer.Option(None, "--shots", min=1, help="Use K labelled examples per class (seeded draw).")


def top_k() -> Any:
    return typer.Option(TOP_K, "--top-k", "-k", min=1, help="How many labels to list per input.")


def early_stop() -> Any:
    return typer.Option(None, "--early-stop", min=1, help="Stop after this many evaluations without improvement.")


# --- run folders ---------------------------------------------------------------------------------------------
def out() -> Any:
    return typer.Option(None, "--out", "-o", help="Run folder (default runs/<command>-<time>). An existing "
                        "non-empty folder is refused unless --overwrite.")


def overwrite() -> Any:
    return typer.Option(False, "--overwrite", help="Replace the run in --out (only a tlcli run folder, and only "
                        "once the new run has started).")


def resume() -> Any:
    return typer.Option(None, "--resume", help="Continue a stopped or interrupted run from its last checkpoint.")


def config_file() -> Any:
    return typer.Option(None, "--config", help="A TOML file of options; flags on the command line win.")


# --- output ----------------------------------------------------------------------------------------------------
def json_() -> Any:
    return typer.Option(False, "--json", help="JSON Lines on stdout; the summary is the last line.")


def quiet() -> Any:
    return typer.Option(False, "--quiet", "-q", help="No progress on stderr.")


def tui() -> Any:
    return typer.Option(False, "--tui", help="Watch the run in the live dashboard (plain progress when "
                        "stderr is not a terminal).")


# --- language models ---------------------------------------------------------------------------------------------
def llm() -> Any:
    return typer.Option(None, "--llm", help="hf:MODEL_DIR | openai:BASE_URL#MODEL | scripted:FILE.json "
                        "(default: $TLCLI_LLM, then the config file's \\[llm]).")


def temperature() -> Any:
    return finite_option(None, "--temperature", low=0.0, high=5.0, help="Sampling temperature (0: greedy).")


def max_tokens() -> Any:
    return typer.Option(None, "--max-tokens", min=1, help="The longest reply, in tokens.")


def given_options(ctx: typer.Context) -> set[str]:
    """Names of the parameters the user gave on the command line (they override a --config file)."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name != "DEFAULT":
            given.add(name)
    return given


def validated(config_class: type[T], **values) -> T:
    """``config_class(**values)``, with a pydantic error turned into one line naming the flag."""
    from pydantic import ValidationError

    try:
        return config_class(**values)
    except ValidationError as error:
        first = error.errors()[0]
        where = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
        raise UsageError(f"{where}: {first['msg']} (got {first.get('input')!r})") from None


def check_out_path(path: Optional[Path]) -> Optional[Path]:
    """``--out`` pointing into a file, or at the current folder itself, is refused before any work."""
    if path is not None and Path(path).resolve() == Path.cwd().resolve():
        raise UsageError("--out .: the current folder cannot be a run folder; pass --out runs/NAME")
    return path


def require_out_under_torchrun(out: Optional[Path], resume: Optional[Path] = None) -> None:
    """Under torchrun every process must write to one run folder: a default ``runs/<command>-<time>`` name
    could differ between processes started a second apart."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and out is None and resume is None:
        raise UsageError("with torchrun, pass --out RUN_DIR so every process writes to the same run folder")


# --- from parsed options to a config -------------------------------------------------------------------------
# Options that shape how a command runs and prints, never what it computes: not part of a run's config, and
# free to change on --resume.
PRESENTATION = frozenset({"json_output", "quiet", "tui", "out", "overwrite", "resume", "config", "workers"})
NOT_CONFIG = PRESENTATION - {"workers"}  # the worker count is recorded (and may change on --resume)


def config_values(ctx: typer.Context, exclude: frozenset[str] | set[str] = NOT_CONFIG,
                  rename: dict[str, str] | None = None) -> dict[str, Any]:
    """``ctx.params`` as config fields: presentation options left out, paths as strings, Python-keyword
    parameter names mapped back to their flag (``compile_model`` -> ``compile``)."""
    rename = rename or {}
    values = {}
    for name, value in ctx.params.items():
        if name in exclude:
            continue
        values[rename.get(name, name)] = str(value) if isinstance(value, Path) else value
    return values


def refuse_changes_on_resume(ctx: typer.Context, allowed: frozenset[str] | set[str] = PRESENTATION,
                             rename: dict[str, str] | None = None) -> None:
    """The one ``--resume`` rule of every command: a run continues exactly as configured, so a flag that
    would change its result is refused (one line naming it); flags in ``allowed`` (speed, display) are fine."""
    changed = sorted(given_options(ctx) - set(allowed))
    if changed:
        rename = rename or {}
        flags = ", ".join("--" + rename.get(n, n).replace("_", "-") for n in changed)
        raise UsageError(f"--resume continues the run exactly as configured; drop {flags}")
