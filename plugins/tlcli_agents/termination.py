"""Stop rules and budgets as small values combined with ``|`` and ``&`` (AutoGen's termination conditions).

``MaxTurns(10) | MaxTokens(5000) | Timeout(60) | TextMention("APPROVE", by="critic")`` is one value; the
solver asks it ``check(state)`` in exactly one place, before every round of model calls. A round is one
model call, or the n concurrent calls of a parallel role (a debate's solvers), so each budget holds to
within one round: a model that never stops cannot run past it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

BUDGET_EXHAUSTED = "budget_exhausted"
SOLVED = "solved"


@dataclass
class LoopState:
    """What the stop rules look at; the solver keeps it up to date."""

    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    # (agent role, text) of the replies of the last round; TextMention reads these.
    last_replies: list[tuple[str, str]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True)
class Stop:
    """Why the loop ends: ``status`` is ``solved`` or ``budget_exhausted``; ``reason`` is for people."""

    status: str
    reason: str


class Termination(Protocol):
    def check(self, state: LoopState) -> Stop | None: ...


class _Combinable:
    def __or__(self, other: "Termination") -> "AnyOf":
        return AnyOf((self, other))

    def __and__(self, other: "Termination") -> "AllOf":
        return AllOf((self, other))


@dataclass(frozen=True)
class AnyOf(_Combinable):
    """Stops when any part stops; the first part that fires names the reason."""

    parts: tuple

    def check(self, state: LoopState) -> Stop | None:
        return next((stop for stop in (p.check(state) for p in self.parts) if stop is not None), None)

    def __or__(self, other):
        return AnyOf(self.parts + (other,))


@dataclass(frozen=True)
class AllOf(_Combinable):
    """Stops when every part stops at once (the last part's status, all reasons joined)."""

    parts: tuple

    def check(self, state: LoopState) -> Stop | None:
        stops = [p.check(state) for p in self.parts]
        if any(s is None for s in stops):
            return None
        return Stop(stops[-1].status, " and ".join(s.reason for s in stops))


@dataclass(frozen=True)
class MaxTurns(_Combinable):
    turns: int

    def check(self, state: LoopState) -> Stop | None:
        if state.turns >= self.turns:
            return Stop(BUDGET_EXHAUSTED, f"turn budget of {self.turns} used (--max-turns)")
        return None


@dataclass(frozen=True)
class MaxTokens(_Combinable):
    """Prompt plus completion tokens of the whole team."""

    tokens: int

    def check(self, state: LoopState) -> Stop | None:
        if state.tokens >= self.tokens:
            return Stop(BUDGET_EXHAUSTED, f"token budget of {self.tokens} used: {state.tokens} tokens "
                                          "(--max-total-tokens)")
        return None

    def remaining(self, state: LoopState) -> int:
        return max(0, self.tokens - state.tokens)


@dataclass(frozen=True)
class Timeout(_Combinable):
    seconds: float

    def check(self, state: LoopState) -> Stop | None:
        if state.elapsed() >= self.seconds:
            return self.stop()
        return None

    def stop(self) -> Stop:
        return Stop(BUDGET_EXHAUSTED, f"time budget of {self.seconds:g} s used (--timeout)")

    def remaining(self, state: LoopState) -> float:
        return self.seconds - state.elapsed()


@dataclass(frozen=True)
class TextMention(_Combinable):
    """The team's own stop: a reply of the last round (from role ``by``, if given) contains ``text``."""

    text: str
    by: str | None = None

    def check(self, state: LoopState) -> Stop | None:
        for role, reply in state.last_replies:
            if (self.by is None or role == self.by) and self.text in reply:
                return Stop(SOLVED, f"{role} said {self.text}")
        return None


@dataclass(frozen=True)
class StopRequested(_Combinable):
    """The user asked the run to stop: ``tlcli monitor``'s ``s`` key, or the file created by hand."""

    path: Path

    def check(self, state: LoopState) -> Stop | None:
        if self.path.exists():
            return Stop(BUDGET_EXHAUSTED, f"stopped on request ({self.path.name})")
        return None


def token_headroom(rule, state: LoopState) -> int | None:
    """The fewest tokens any MaxTokens in ``rule`` still allows (None: no token budget); replies are
    capped to it so one reply cannot blow far through the budget."""
    if isinstance(rule, MaxTokens):
        return rule.remaining(state)
    if isinstance(rule, (AnyOf, AllOf)):
        found = [r for r in (token_headroom(p, state) for p in rule.parts) if r is not None]
        return min(found) if found else None
    return None


def nearest_timeout(rule, state: LoopState) -> Timeout | None:
    """The Timeout in ``rule`` with the least time left (None: no time budget); a model call is bounded by
    it, the request in flight and its retries included, so one slow call cannot outlast the budget."""
    if isinstance(rule, Timeout):
        return rule
    if isinstance(rule, (AnyOf, AllOf)):
        found = [t for t in (nearest_timeout(p, state) for p in rule.parts) if t is not None]
        return min(found, key=lambda t: t.remaining(state)) if found else None
    return None
