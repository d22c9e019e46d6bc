"""The team loop: who speaks, tool calls under the allow-list, and the one place where budgets and the
team's stop rule are checked.

Each speaking agent is a generator that yields model requests and receives replies, running tools in
between; the loop drives one round at a time (one agent, or a parallel role's n copies) and asks the
termination rule before every round. Every message, tool call and tool result is emitted as a
``message`` event as it happens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

from tlcli_agents.actions import DATA_RULE, as_data, parse_action, text_protocol_prompt
from tlcli_agents.models import Reply, Request
from tlcli_agents.teams import END, Role, Team
from tlcli.llm.transport import OutOfTime, time_limit
from tlcli_agents.termination import BUDGET_EXHAUSTED, SOLVED, LoopState, Stop, nearest_timeout, token_headroom
from tlcli_agents.tools import ToolBox

Emit = Callable[[str, dict, int], None]


@dataclass
class Settings:
    max_tokens: int = 512  # length of one reply
    temperature: float = 0.0
    seed: int | None = 0


@dataclass
class AgentUsage:
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = 0
    refused: int = 0  # calls outside the allow-list, unknown tools, malformed calls

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Outcome:
    status: str  # solved | budget_exhausted | gave_up | failed
    answer: str | None
    reason: str
    turns: int
    prompt_tokens: int
    completion_tokens: int
    per_agent: dict[str, AgentUsage] = field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> dict:
        return {"status": self.status, "answer": self.answer, "reason": self.reason, "turns": self.turns,
                "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
                "per_agent": {k: v.as_dict() for k, v in self.per_agent.items()}}


class Solver:
    def __init__(self, team: Team, tools: ToolBox, model: Any, termination: Any, emit: Emit,
                 settings: Settings | None = None):
        self.team = team
        self.tools = tools
        self.model = model
        self.termination = termination
        self.emit = emit
        self.settings = settings or Settings()
        self.state = LoopState()
        self.transcript: list[tuple[str, str]] = []  # (agent, final text) of every finished turn
        self.usage: dict[str, AgentUsage] = {}
        self.last_answers: list[str] = []  # the latest non-empty replies of a fallback_from role
        self.answer: str | None = None  # the answering role's latest reply

    # ---- the loop ------------------------------------------------------------------------------

    def solve(self, task: str) -> Outcome:
        started = time.monotonic()
        self.state = LoopState()
        self.transcript = [("user", task)]
        self.last_answers = []
        self._record({"agent": "user", "role": "user", "content": task})
        self.answer = None
        stop: Stop | None = None
        speaker = self.team.start
        while speaker != END:
            role = self.team.role(speaker)
            agents = [role.name] if role.n == 1 else [f"{role.name}-{i + 1}" for i in range(role.n)]
            speaking = {agent: self._turn(agent, role) for agent in agents}
            pending = {agent: next(turn) for agent, turn in speaking.items()}
            finals: dict[str, str] = {}
            while pending:
                stop = self.termination.check(self.state)  # the one place every stop rule is asked
                if stop is not None:
                    break
                self._cap_reply_length(pending.values())
                clock = nearest_timeout(self.termination, self.state)
                try:
                    with time_limit(clock.remaining(self.state) if clock is not None else None):
                        replies = self.model.call(list(pending.values()))
                except OutOfTime:
                    if clock is None:
                        raise
                    stop = clock.stop()
                    break
                self._account(role, replies)
                for reply in replies:
                    try:
                        pending[reply.agent] = speaking[reply.agent].send(reply)
                    except StopIteration as done:
                        finals[reply.agent] = done.value
                        del pending[reply.agent]
            finished = [(agent, finals[agent]) for agent in agents if agent in finals]  # in agent order
            self.transcript.extend(finished)
            if role.name in self.team.fallback_from and any(text.strip() for _, text in finished):
                self.last_answers = [text for _, text in finished if text.strip()]
            if role.name == self.team.answer_from and finals:
                self.answer = finals[next(a for a in agents if a in finals)]
            if stop is not None:
                break
            speaker = role.next
        answer = self.answer
        if stop is None:  # the team reached its end: a last reply may still carry the stop mention
            stop = self.termination.check(self.state)
            if stop is None or stop.status != SOLVED:
                stop = Stop(SOLVED, "the team finished")
        if stop.status == SOLVED and not (answer or "").strip():
            stop = Stop("gave_up", f"{stop.reason}, but {self.team.answer_from} gave no answer")
        if answer is None and stop.status == BUDGET_EXHAUSTED:
            answer = self._best_so_far()
        return Outcome(stop.status, answer, stop.reason, self.state.turns, self.state.prompt_tokens,
                       self.state.completion_tokens, self.usage, round(time.monotonic() - started, 3))

    def failed(self, reason: str) -> Outcome:
        """The outcome when the backend broke mid-run: status failed, the best answer so far."""
        return Outcome("failed", self.answer if self.answer is not None else self._best_so_far(), reason, self.state.turns, self.state.prompt_tokens,
                       self.state.completion_tokens, self.usage)

    def _best_so_far(self) -> str | None:
        """When the answering role never finished a turn: the latest answer of a ``fallback_from`` role (of a
        parallel round, the first copy's), else None."""
        return self.last_answers[0] if self.last_answers else None

    def _cap_reply_length(self, requests) -> None:
        headroom = token_headroom(self.termination, self.state)
        if headroom is not None:
            for request in requests:
                request.max_tokens = max(1, min(request.max_tokens, headroom))

    def _account(self, role: Role, replies: list[Reply]) -> None:
        self.state.turns += 1
        self.state.last_replies = [(role.name, r.text) for r in replies]
        for reply in replies:
            usage = self.usage.setdefault(reply.agent, AgentUsage())
            usage.turns += 1
            usage.prompt_tokens += reply.prompt_tokens
            usage.completion_tokens += reply.completion_tokens
            self.state.prompt_tokens += reply.prompt_tokens
            self.state.completion_tokens += reply.completion_tokens

    # ---- one agent's turn ----------------------------------------------------------------------

    def _turn(self, agent: str, role: Role) -> Generator[Request, Reply, str]:
        allowed = self.tools.allowed(role.tools)
        native = self.model.supports_tools
        messages = self._messages_for(agent, role, allowed, native)
        schemas = [t.schema() for t in allowed] if native and allowed else None
        copy = int(agent.rsplit("-", 1)[1]) - 1 if agent != role.name else 0
        seed = None if self.settings.seed is None else self.settings.seed + copy
        temperature = role.temperature if role.temperature is not None else self.settings.temperature
        while True:
            request = Request(agent, messages, schemas, temperature, role.max_tokens or self.settings.max_tokens, seed)
            reply = yield request
            calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls]
            self._record({"agent": agent, "role": "assistant", "content": reply.text, "tool_calls": calls,
                          "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}})
            messages = list(messages)  # each request keeps the messages it was sent
            if native:
                if not reply.tool_calls:
                    return reply.text
                messages.append({"role": "assistant", "content": reply.text, "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in reply.tool_calls]})
                for call in reply.tool_calls:
                    result = self._run_tool(agent, role, call.name, call.arguments, call.id)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
                continue
            action = parse_action(reply.text)
            if action.kind == "answer":
                return reply.text
            messages.append({"role": "assistant", "content": reply.text})
            if action.kind == "malformed":
                self.usage.setdefault(agent, AgentUsage()).refused += 1
                feedback = (f"error: {action.error}. To call a tool reply with only "
                            '{"tool": "NAME", "arguments": {...}}; otherwise reply with your answer as plain text.')
                self._record({"agent": agent, "role": "tool", "tool_name": None, "content": feedback, "ok": False})
                messages.append({"role": "user", "content": feedback})
                continue
            result = self._run_tool(agent, role, action.tool, action.arguments, None)
            messages.append({"role": "user", "content": result})

    def _run_tool(self, agent: str, role: Role, name: str, arguments: Any, call_id: str | None) -> str:
        usage = self.usage.setdefault(agent, AgentUsage())
        usage.tool_calls += 1
        clock = nearest_timeout(self.termination, self.state)
        with time_limit(clock.remaining(self.state) if clock is not None else None):
            text, ok = self.tools.call(role.tools, name, arguments)
        if not ok:
            usage.refused += 1
        tool = self.tools.tools.get(name) if isinstance(name, str) else None
        self._record({"agent": agent, "role": "tool", "tool_name": name, "tool_call_id": call_id,
                      "content": text, "ok": ok} | ({"tool_group": tool.group} if tool is not None else {}))
        return as_data(name, text)

    def _messages_for(self, agent: str, role: Role, allowed, native: bool) -> list[dict]:
        system = role.system.strip()
        system += "\n\n" + (DATA_RULE if native else text_protocol_prompt(allowed))
        messages = [{"role": "system", "content": system}]
        for speaker, text in self.transcript:
            if speaker == agent:
                messages.append({"role": "assistant", "content": text})
                continue
            content = f"Task:\n{text}" if speaker == "user" else f"[{speaker}]\n{text}"
            if messages[-1]["role"] == "user":  # others' turns in a row become one user message
                messages[-1] = {"role": "user", "content": messages[-1]["content"] + "\n\n" + content}
            else:
                messages.append({"role": "user", "content": content})
        return messages

    def _record(self, data: dict) -> None:
        self.emit("message", data, self.state.turns)


def summary_line(outcome: Outcome) -> str:
    tokens = outcome.prompt_tokens + outcome.completion_tokens
    return (f"{outcome.status}: {outcome.reason}; {outcome.turns} turns, {tokens} tokens "
            f"({outcome.prompt_tokens} prompt + {outcome.completion_tokens} completion) in {outcome.wall_s:.1f} s")


def usage_rows(outcome: Outcome) -> list[list]:
    return [[agent, u.turns, u.prompt_tokens, u.completion_tokens, u.tool_calls, u.refused]
            for agent, u in outcome.per_agent.items()]
