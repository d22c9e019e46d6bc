"""One end-to-end run on the tiny random causal LM through the real ``hf:`` backend. It cannot solve
anything (random weights); it must end within its budget and report cleanly."""

from __future__ import annotations

import pytest

from support.agents import events_of, last_json


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from tlcli.llm.tiny import build_tiny_causal_lm

    # Long enough positions for a whole small conversation (prompts are not truncated).
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"), n_positions=2048)


@pytest.mark.slow  # about 15-30 s here: torch, transformers and five generate calls
def test_tiny_hf_model_ends_within_budget(cli, tiny_lm):
    result = cli("agents", "solve", "What is 17 * 23 + 4?", "--llm", f"hf:{tiny_lm}?device=cpu", "--tools", "calculator",
                 "--max-turns", "5", "--max-tokens", "12", "--out", "runs/tiny", "--json")
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["outcome"] in ("budget_exhausted", "gave_up") and summary["turns"] <= 5
    assert summary["tokens"]["prompt"] > 0 and summary["tokens"]["completion"] > 0
    tokens_by_agent = sum(a["prompt_tokens"] + a["completion_tokens"] for a in summary["per_agent"].values())
    assert tokens_by_agent == summary["tokens"]["prompt"] + summary["tokens"]["completion"]
    assert "scripted" not in result.stderr  # a real (if random) model, not canned answers
    events = events_of("runs/tiny")
    assert events[-1]["kind"] == "run_end" and events[-1]["data"]["status"] == "finished"
    replies = [e["data"] for e in events if e["kind"] == "message" and e["data"]["role"] == "assistant"]
    assert len(replies) == summary["turns"]
    assert all(r["usage"]["completion_tokens"] <= 12 for r in replies)
