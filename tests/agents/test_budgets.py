"""Budgets: composable values, and a model that never stops ends within one round of each budget."""

from __future__ import annotations

import time

import pytest

from support.agents import make_solver
from tlcli_agents.termination import AllOf, AnyOf, LoopState, MaxTokens, MaxTurns, TextMention, token_headroom


def test_values_combine_with_or_and_and():
    state = LoopState(turns=3, prompt_tokens=40, completion_tokens=10)
    rule = MaxTurns(5) | MaxTokens(50) | TextMention("APPROVE", by="critic")
    assert isinstance(rule, AnyOf) and len(rule.parts) == 3
    assert rule.check(state).reason.startswith("token budget of 50")
    assert (MaxTurns(5) | MaxTokens(60)).check(state) is None
    both = MaxTurns(3) & MaxTokens(60)
    assert isinstance(both, AllOf) and both.check(state) is None
    assert (MaxTurns(3) & MaxTokens(50)).check(state).status == "budget_exhausted"
    state.last_replies = [("solver", "APPROVE")]
    assert TextMention("APPROVE", by="critic").check(state) is None
    state.last_replies = [("critic", "Looks right. APPROVE")]
    assert TextMention("APPROVE", by="critic").check(state).status == "solved"
    assert token_headroom(MaxTurns(2) | (MaxTokens(70) | MaxTokens(55)), state) == 5


def never_approves(messages):
    return "Still thinking, not done yet " * 5


@pytest.mark.parametrize("max_turns", [1, 4, 7])
def test_turn_budget_holds(fake_llm, max_turns):
    llm = fake_llm([never_approves])
    solver, _ = make_solver(llm, max_turns=max_turns)
    outcome = solver.solve("never ends")
    assert outcome.status == "budget_exhausted" and "turn budget" in outcome.reason
    assert outcome.turns == max_turns and len(llm.calls) == max_turns
    # The best answer so far: the solver's latest; with one turn only the planner spoke, so none.
    assert outcome.answer == (never_approves([]) if max_turns >= 2 else None)


def test_token_budget_holds_within_one_turn(fake_llm):
    llm = fake_llm([never_approves])
    solver, events = make_solver(llm, max_turns=1000, max_tokens=500)
    outcome = solver.solve("never ends")
    assert outcome.status == "budget_exhausted" and "token budget" in outcome.reason
    spent = [e["usage"]["prompt_tokens"] + e["usage"]["completion_tokens"] for e in events if e["role"] == "assistant"]
    # Under budget before the last call, over it after: the last call is the only one past the line.
    assert sum(spent[:-1]) < 500 <= sum(spent) == outcome.prompt_tokens + outcome.completion_tokens
    assert all(call["max_tokens"] <= 500 - used for call, used in
               zip(llm.calls, [sum(spent[:k]) for k in range(len(spent))]))  # replies capped to what is left


def test_time_budget_holds_within_one_turn(fake_llm):
    llm = fake_llm([never_approves], latency=0.05)
    solver, _ = make_solver(llm, max_turns=1000, timeout=0.3)
    started = time.monotonic()
    outcome = solver.solve("never ends")
    ended = time.monotonic()
    assert outcome.status == "budget_exhausted" and "time budget" in outcome.reason
    assert outcome.turns == len(llm.calls) >= 1
    # Every call started inside the budget, and nothing ran after the last one came back.
    assert all(call["time"] - started < 0.3 for call in llm.calls)
    assert ended - llm.calls[-1]["time"] < 0.05 + 0.2


def test_a_model_that_only_calls_tools_still_stops(fake_llm):
    llm = fake_llm(["plan"] + ['{"tool": "calculator", "arguments": {"expression": "1+1"}}'] * 100)
    solver, events = make_solver(llm, tools=["calculator"], max_turns=6)
    outcome = solver.solve("loop on tools")
    assert outcome.status == "budget_exhausted" and outcome.turns == 6
    assert sum(1 for e in events if e["role"] == "tool") == 5
    assert outcome.answer is None  # the solver never finished a turn, and a plan is not an answer


def test_debate_round_counts_once_and_budget_stops_before_the_judge(fake_llm):
    llm = fake_llm(["a", "b", "c", "judged"])
    solver, _ = make_solver(llm, team="debate", max_turns=1)
    outcome = solver.solve("t")
    assert outcome.turns == 1 and outcome.status == "budget_exhausted" and len(llm.calls) == 1
    assert outcome.answer == "a"
