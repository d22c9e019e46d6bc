"""Teams as data: a TOML file names the roles, their system prompts, the tools each may use, who speaks
after whom and the team's own stop rule. The built-in teams are such files (``teams/*.toml``)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tlcli.console.errors import UsageError

BUILTIN_DIR = Path(__file__).parent / "teams"
END = "end"


class Role(BaseModel):
    """One agent of the team.

    tools: names the role may call: a tool's own name (``calculator``, ``read_file``) or a group given
        with ``--tools`` (``files``, ``rag``, ``mcp``: the MCP tools allow-listed on the command line).
    next: the role that speaks after this one, or ``end``.
    n: parallel copies answering the same messages (a debate's solvers): one batched call on a local model,
        concurrent requests on an HTTP server.
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    system: str = Field(min_length=1)
    tools: list[str] = Field(default_factory=list)
    next: str = END
    n: int = Field(1, ge=1, le=32)
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    max_tokens: int | None = Field(None, ge=1)


class StopRule(BaseModel):
    """The team's own end: role ``by`` writes ``mention`` (e.g. the critic's APPROVE)."""

    model_config = ConfigDict(extra="forbid")
    mention: str = Field(min_length=1)
    by: str | None = None


class Team(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = ""
    start: str
    answer_from: str  # whose latest reply is the team's answer
    # Roles whose latest reply stands in for the answer when a budget ends the run before answer_from
    # has spoken (a debate's solvers, before the judge); none: the answer is then null.
    fallback_from: list[str] = Field(default_factory=list)
    stop: StopRule | None = None
    # What a parallel role's n copies do over HTTP: "auto" runs threads on HTTP backends and one batched
    # call with n samples elsewhere.
    parallel: Literal["auto", "batch", "threads"] = "auto"
    roles: list[Role] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_resolve(self) -> "Team":
        names = [r.name for r in self.roles]
        if len(set(names)) != len(names):
            raise ValueError(f"role names must be unique, got {names}")
        known = set(names)
        for where, name in [("start", self.start), ("answer_from", self.answer_from)] + [
            (f"{r.name}.next", r.next) for r in self.roles
        ] + ([("stop.by", self.stop.by)] if self.stop and self.stop.by else []) + [
            ("fallback_from", name) for name in self.fallback_from
        ]:
            if name not in known and not (where.endswith(".next") and name == END):
                raise ValueError(f"{where} = {name!r} is not a role of the team ({', '.join(names)})")
        return self

    def role(self, name: str) -> Role:
        return next(r for r in self.roles if r.name == name)


def builtin_teams() -> dict[str, Path]:
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def team_path(ref: str) -> Path:
    """A built-in team's file, or ``ref`` itself when it is a .toml file."""
    builtins = builtin_teams()
    if ref in builtins:
        return builtins[ref]
    path = Path(ref)
    if path.suffix == ".toml" and path.is_file():
        return path
    raise UsageError(f"team {ref!r} is neither a built-in team ({', '.join(builtins)}) nor a .toml file; "
                     "see 'tlcli agents teams'")


def load_team(ref: str) -> Team:
    path = team_path(ref)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"team file {path} cannot be read: {error}") from None
    try:
        return Team(**data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "team"
        raise UsageError(f"team file {path}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
