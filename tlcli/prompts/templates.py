"""Prompt templates: Jinja2 files with a TOML header that declares their variables and defaults.

A template file starts with a Jinja comment holding the header::

    {#- tlcli-template
    description = "What it does, one line."
    variables = ["question"]          # every input record must have these
    optional = ["choices"]            # may be missing (then None)
    exemplars = "none"                # "none" | "optional" | "required" (--exemplars FILE)
    n = 1                             # default samples per question
    temperature = 0.0
    max_tokens = 256
    stop = ["\\nQ:"]
    answer_fallback = "none"          # "first-line": use the first line when no answer is found
    system = ""                       # a system message, sent where the backend has a chat API
    -#}
    Q: {{ question }}
    A:

Templates render in a sandboxed Jinja environment with StrictUndefined: a template cannot reach Python
internals, and a misspelt variable is an error instead of an empty string. A render is also bounded
(see "Bounds" below): at most ``MAX_RENDER_SECONDS`` of time and ``MAX_OUTPUT_CHARS`` of output, and no
single value over that size, so ``{% for i in range(100000) %}{% for j in range(100000) %}`` or
``{{ 'A' * 3000000000 }}`` is a clear error instead of a hung or exhausted machine. ``{% include %}``,
``{% import %}`` and ``{% extends %}`` are refused at load: a template is one self-contained file.
"""

from __future__ import annotations

import re
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tlcli.console.errors import UsageError

BUILTIN_DIR = Path(__file__).resolve().parent / "templates"
SUFFIX = ".jinja"
HEADER = re.compile(r"\A\{#-?\s*tlcli-template[ \t]*\n(?P<toml>.*?)-?#\}\n?", re.DOTALL)
# Names every template may use without declaring them.
PROVIDED = {"exemplars"}


class TemplateMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    variables: list[str] = Field(default_factory=lambda: ["question"])
    optional: list[str] = Field(default_factory=list)
    exemplars: Literal["none", "optional", "required"] = "none"
    n: int = Field(1, ge=1, le=128)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)
    answer_fallback: Literal["none", "first-line"] = "none"
    system: str = ""  # the system message, for backends with a chat API (see tlcli_prompting.runner)


class Exemplar(BaseModel):
    """One worked example for few-shot chain of thought."""

    model_config = ConfigDict(extra="forbid")

    question: str
    rationale: str
    answer: str | int | float
    choices: list[str] | dict[str, str] | None = None


@dataclass(frozen=True)
class Template:
    name: str
    meta: TemplateMeta
    source: str  # the body, header removed
    path: Path

    def render(self, record: dict, exemplars: list[Exemplar] | None = None) -> str:
        """The prompt for one input record. Raises UsageError naming a missing variable."""
        from jinja2 import TemplateError, UndefinedError

        missing = [v for v in self.meta.variables if record.get(v) in (None, "")]
        if missing:
            raise UsageError(f"question {record.get('id')!r} has no {missing[0]!r} field, which template "
                             f"{self.name!r} needs; add it to the input (fields: {self.meta.variables})")
        context = {name: record.get(name) for name in self.meta.optional}
        context.update({name: record[name] for name in self.meta.variables})
        context["exemplars"] = [e.model_dump() for e in exemplars or []]
        try:
            return render_bounded(_compiled(self.source, self.name), context, self.name)
        except UndefinedError as error:
            raise UsageError(f"template {self.name!r}: {error}; declare the variable in the header and pass "
                             "it in every input record") from None
        except TemplateError as error:
            raise UsageError(f"template {self.name!r} failed to render: {error}") from None
        except RecursionError:
            raise UsageError(f"template {self.name!r} recurses too deeply; a macro calls itself without end") from None
        except (ArithmeticError, ValueError, TypeError, LookupError) as error:  # 1/0, int('x'), [][3] ...
            raise UsageError(f"template {self.name!r} failed to render: {type(error).__name__}: {error}") from None


def _labelled(choices) -> list[tuple[str, str]]:
    """Multiple-choice options as (letter, text): a list gets A, B, C...; a dict keeps its keys."""
    if isinstance(choices, dict):
        return [(str(k), str(v)) for k, v in choices.items()]
    if isinstance(choices, (list, tuple)):
        return [(chr(ord("A") + i), str(c)) for i, c in enumerate(choices)]
    raise UsageError(f"choices must be a list or an object of letter -> text, got {type(choices).__name__}")


def environment():
    from jinja2 import StrictUndefined

    env = _bounded_environment_class()(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters["labelled"] = _labelled
    env.filters = {name: _checked_filter(name, f) for name, f in env.filters.items()}
    env.globals["namespace"] = _bounded_namespace_class()
    return env


# -- Bounds ------------------------------------------------------------------------------------------------
# The sandbox stops a template reaching Python internals, not one exhausting the machine. Three guards:
# 1. sizes: arithmetic (* ** +), calls, filters and namespace assignments refuse to make or take a value
#    over MAX_OUTPUT_CHARS, checked *before* Python allocates it;
# 2. output: rendering streams and stops at MAX_OUTPUT_CHARS;
# 3. time: a watchdog thread raises RenderTimeout inside a render that runs past MAX_RENDER_SECONDS
#    (compiled templates are Python bytecode, so loops without output or calls are interrupted too).

MAX_RENDER_SECONDS = 2.0
MAX_OUTPUT_CHARS = 1_000_000
# A width or precision of a million or more inside a %- or {}-format string.
_PERCENT_WIDTH = re.compile(r"%[^%a-zA-Z]*\d{7,}")
_BRACE_WIDTH = re.compile(r"\{[^{}]*\d{7,}[^{}]*\}")
# Filters and str methods whose integer arguments size their result.
_WIDTH_FILTERS = {"center", "indent", "wordwrap", "batch", "slice"}
_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}


class RenderTimeout(BaseException):
    """Raised inside a render that ran too long (BaseException: template code must not swallow it)."""


class _TooBig(Exception):
    pass


def _check_size(value) -> None:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_OUTPUT_CHARS:
        raise _TooBig(f"a value of {len(value):,} items (bound {MAX_OUTPUT_CHARS:,})")


def _check_width(value) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT_CHARS:
        raise _TooBig(f"a width of {value:,} (bound {MAX_OUTPUT_CHARS:,})")


def _check_format(text) -> None:
    if isinstance(text, str) and (_PERCENT_WIDTH.search(text) or _BRACE_WIDTH.search(text)):
        raise _TooBig("a format width of a million characters or more")


def _check_replace(text, old, new) -> None:
    text, old, new = str(text), str(old), str(new)
    grows = len(text) + text.count(old) * (len(new) - len(old)) if old else (len(text) + 1) * (len(new) + 1)
    if grows > MAX_OUTPUT_CHARS:
        raise _TooBig(f"a replacement making {grows:,} characters (bound {MAX_OUTPUT_CHARS:,})")


def _sized_binop(operator: str, left, right) -> None:
    """Refuse an operation whose result would be too large, before computing it."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * max(times, 0) > MAX_OUTPUT_CHARS:
                raise _TooBig(f"a repetition making {len(seq) * times:,} items (bound {MAX_OUTPUT_CHARS:,})")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 4096:
            raise _TooBig(f"a power {left} ** {right}")
    elif operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            if len(left) + len(right) > MAX_OUTPUT_CHARS:
                raise _TooBig(f"a concatenation of {len(left) + len(right):,} items (bound {MAX_OUTPUT_CHARS:,})")
    elif operator == "%":
        _check_format(left)


def _bounded_environment_class():
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from jinja2.compiler import CodeGenerator

    class BoundedCodeGenerator(CodeGenerator):
        def visit_Concat(self, node, frame):  # ``a ~ b ~ c``: Jinja's own str_join would join any size
            self.write("environment.bounded_concat((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "+", "%"])
        code_generator_class = BoundedCodeGenerator

        def bounded_concat(self, values) -> str:
            """``~`` of any number of operands, refused as soon as the pieces pass MAX_OUTPUT_CHARS (a chain
            of 9,000 copies of a 1 MB string never allocates the 9 GB)."""
            pieces, size = [], 0
            for value in values:
                piece = str(value)
                size += len(piece)
                if size > MAX_OUTPUT_CHARS:
                    raise SecurityError(f"the template asked for a concatenation (~) of over {MAX_OUTPUT_CHARS:,} "
                                        "characters")
                pieces.append(piece)
            return "".join(pieces)

        def call_binop(self, context, operator, left, right):
            try:
                _sized_binop(operator, left, right)
            except _TooBig as error:
                raise SecurityError(f"the template asked for {error}") from None
            return super().call_binop(context, operator, left, right)

        def wrap_str_format(self, value):
            # str.format / format_map reach the template through here, not through call().
            wrapped = super().wrap_str_format(value)
            if wrapped is not None:
                try:
                    _check_format(value.__self__)
                except _TooBig as error:
                    raise SecurityError(f"the template asked for {error}") from None
            return wrapped

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's own signature)
            try:
                for value in list(args) + list(kwargs.values()):
                    _check_size(value)
                owner, method = getattr(__obj, "__self__", None), getattr(__obj, "__name__", "")
                if isinstance(owner, str):
                    if method in _WIDTH_METHODS:
                        for value in list(args) + list(kwargs.values()):
                            _check_width(value)
                    elif method == "replace" and len(args) >= 2:
                        _check_replace(owner, args[0], args[1])
                result = super().call(__context, __obj, *args, **kwargs)
                _check_size(result)
            except _TooBig as error:
                raise SecurityError(f"the template asked for {error}") from None
            return result

    return BoundedSandbox


def _checked_filter(name: str, function):
    """A filter that refuses oversized arguments (``center(10**10)``, ``replace`` blow-ups) up front."""
    import functools

    @functools.wraps(function)
    def checked(*args, **kwargs):
        from jinja2.exceptions import SecurityError

        try:
            values = [a for a in args if not _is_jinja_internal(a)]
            for value in values + list(kwargs.values()):
                _check_size(value)
                if name in _WIDTH_FILTERS:
                    _check_width(value)
            if name == "format" and values:
                _check_format(values[0])
            if name == "replace" and len(values) >= 3:
                _check_replace(*values[:3])
            result = function(*args, **kwargs)
            _check_size(result)
        except _TooBig as error:
            raise SecurityError(f"the template asked for {error}") from None
        return result

    return checked


def _is_jinja_internal(value) -> bool:
    from jinja2 import Environment
    from jinja2.nodes import EvalContext
    from jinja2.runtime import Context

    return isinstance(value, (Environment, EvalContext, Context))


def _bounded_namespace_class():
    from jinja2.exceptions import SecurityError
    from jinja2.utils import Namespace

    class BoundedNamespace(Namespace):
        def __setitem__(self, name, value):
            try:
                _check_size(value)
            except _TooBig as error:
                raise SecurityError(f"the template asked for {error}") from None
            super().__setitem__(name, value)

    return BoundedNamespace


class _Watchdog:
    """One daemon thread that interrupts renders past their deadline (PyThreadState_SetAsyncExc)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._active: dict[int, tuple[int, float]] = {}  # token -> (thread id, deadline)
        self._tokens = 0
        self._thread: threading.Thread | None = None

    def start(self, seconds: float) -> int:
        with self._lock:
            self._tokens += 1
            self._active[self._tokens] = (threading.get_ident(), time.monotonic() + seconds)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tlcli-template-watchdog", daemon=True)
                self._thread.start()
            self._wake.notify()
            return self._tokens

    def stop(self, token: int) -> bool:
        """End a render's watch; True if the watchdog had already fired (any exception still pending for
        this thread is cleared, so it cannot surface later in unrelated code)."""
        import ctypes

        with self._lock:
            if self._active.pop(token, None) is not None:
                return False
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)
            return True

    def _run(self) -> None:
        import ctypes

        with self._lock:
            while True:
                now = time.monotonic()
                for token, (thread_id, deadline) in list(self._active.items()):
                    if deadline <= now:
                        del self._active[token]
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                                                   ctypes.py_object(RenderTimeout))
                soonest = min((d for _, d in self._active.values()), default=None)
                self._wake.wait(None if soonest is None else max(0.0, soonest - now))


_WATCHDOG = _Watchdog()


def render_bounded(compiled, context: dict, name: str) -> str:
    """Render within MAX_RENDER_SECONDS and MAX_OUTPUT_CHARS; a template past either bound, or asking
    for an oversized value, is a UsageError naming the bound."""
    from jinja2.exceptions import SecurityError

    problem = None
    token = _WATCHDOG.start(MAX_RENDER_SECONDS)
    try:
        parts, size = [], 0
        for part in compiled.generate(context):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                problem = f"produced over {MAX_OUTPUT_CHARS:,} characters"
                break
            parts.append(part)
    except RenderTimeout:
        problem = f"ran for over {MAX_RENDER_SECONDS:g} s"
    except SecurityError as error:
        problem = str(error).removeprefix("the template ")
    finally:
        # Also when the render raised something else (a macro recursing without end, 1/0): a watch left
        # running would interrupt whatever this thread does two seconds later.
        try:
            fired = _WATCHDOG.stop(token)
        except RenderTimeout:  # delivered while stopping
            fired = True
    if fired and problem is None:
        problem = f"ran for over {MAX_RENDER_SECONDS:g} s"
    if problem:
        raise UsageError(f"template {name!r} {problem}; a prompt template must render a bounded prompt "
                         "quickly: check its loops and repetitions")
    return "".join(parts)


_CACHE: dict[tuple[str, str], object] = {}


def _compiled(source: str, name: str):
    key = (name, source)
    if key not in _CACHE:
        _CACHE[key] = environment().from_string(source)
    return _CACHE[key]


def parse_template(text: str, name: str, path: Path) -> Template:
    """Split header and body, validate the header, and check the body uses only declared variables."""
    from jinja2 import TemplateSyntaxError, meta

    match = HEADER.match(text)
    if not match:
        raise UsageError(f"template {path} has no header; start it with "
                         "{#- tlcli-template\\nvariables = [\"question\"]\\n-#}")
    try:
        header = TemplateMeta(**tomllib.loads(match["toml"]))
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"template {path}: the header is not valid TOML ({error})") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"template {path}: header field {where!r} is invalid ({first['msg']}); "
                         f"fields are {', '.join(TemplateMeta.model_fields)}") from None
    body = text[match.end():]
    try:
        tree = environment().parse(body)
        used = meta.find_undeclared_variables(tree)
    except TemplateSyntaxError as error:
        raise UsageError(f"template {path} line {error.lineno}: {error.message}") from None
    _refuse_other_files(tree, path)
    undeclared = sorted(used - set(header.variables) - set(header.optional) - PROVIDED)
    if undeclared:
        raise UsageError(f"template {path} uses {undeclared} without declaring them; add them to "
                         "variables (required) or optional in the header")
    return Template(name, header, body, path)


def _refuse_other_files(tree, path: Path) -> None:
    """A template is one file: include/import/extends would read others (and the sandbox has no loader)."""
    from jinja2 import nodes

    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        tag = {"Include": "include", "Import": "import", "FromImport": "from ... import",
               "Extends": "extends"}[type(node).__name__]
        raise UsageError(f"template {path} line {node.lineno}: {{% {tag} %}} is not supported; a template is "
                         "one self-contained file: paste the shared text in (or use a macro in this file)")


def builtin_names() -> list[str]:
    return sorted(p.name[: -len(SUFFIX)] for p in BUILTIN_DIR.glob(f"*{SUFFIX}"))


def user_dir() -> Path:
    from tlcli.runs.paths import tlcli_home

    return tlcli_home() / "prompt-templates"


def available() -> list[tuple[str, Path]]:
    """Built-in templates, then user templates saved in $TLCLI_HOME/prompt-templates/ (usable by name)."""
    found = [(n, BUILTIN_DIR / f"{n}{SUFFIX}") for n in builtin_names()]
    if user_dir().is_dir():
        names = {n for n, _ in found}
        found += [(p.name[: -len(SUFFIX)], p) for p in sorted(user_dir().glob(f"*{SUFFIX}"))
                  if p.name[: -len(SUFFIX)] not in names]
    return found


def load_template(name_or_path: str) -> Template:
    """A built-in or saved template by name, or a Jinja2 file by path."""
    path = Path(name_or_path)
    if path.suffix == SUFFIX or path.is_file():
        if not path.is_file():
            raise UsageError(f"template file {name_or_path} does not exist; pass a .jinja file or one of "
                             f"{', '.join(builtin_names())}")
        name = path.name.removesuffix(SUFFIX)
    else:
        known = dict(available())
        if name_or_path not in known:
            raise UsageError(f"no template named {name_or_path!r}; choose one of {', '.join(known)} "
                             "or pass a .jinja file (see 'tlcli prompt list')")
        name, path = name_or_path, known[name_or_path]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read template {path}: {error}") from None
    return parse_template(text, name, path)
