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
internals, and a misspelt variable is an error instead of an empty string.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tlcli.errors import UsageError

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
            return _compiled(self.source, self.name).render(context)
        except UndefinedError as error:
            raise UsageError(f"template {self.name!r}: {error}; declare the variable in the header and pass "
                             "it in every input record") from None
        except TemplateError as error:
            raise UsageError(f"template {self.name!r} failed to render: {error}") from None


def _labelled(choices) -> list[tuple[str, str]]:
    """Multiple-choice options as (letter, text): a list gets A, B, C...; a dict keeps its keys."""
    if isinstance(choices, dict):
        return [(str(k), str(v)) for k, v in choices.items()]
    if isinstance(choices, (list, tuple)):
        return [(chr(ord("A") + i), str(c)) for i, c in enumerate(choices)]
    raise UsageError(f"choices must be a list or an object of letter -> text, got {type(choices).__name__}")


def environment():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters["labelled"] = _labelled
    return env


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
        used = meta.find_undeclared_variables(environment().parse(body))
    except TemplateSyntaxError as error:
        raise UsageError(f"template {path} line {error.lineno}: {error.message}") from None
    undeclared = sorted(used - set(header.variables) - set(header.optional) - PROVIDED)
    if undeclared:
        raise UsageError(f"template {path} uses {undeclared} without declaring them; add them to "
                         "variables (required) or optional in the header")
    return Template(name, header, body, path)


def builtin_names() -> list[str]:
    return sorted(p.name[: -len(SUFFIX)] for p in BUILTIN_DIR.glob(f"*{SUFFIX}"))


def user_dir() -> Path:
    from tlcli.paths import tlcli_home

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
