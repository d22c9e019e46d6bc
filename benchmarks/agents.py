"""The agents solver: its own overhead per turn, and a debate's concurrent solvers against sequential calls.

1. Overhead per turn, on the scripted backend (no model time to speak of): a plan-solve-critique team whose
   solver calls the calculator forever and whose critic never approves, for --turns rounds, writing every
   message into a real run folder (events.jsonl). The time inside ``llm.chat`` is measured apart; the rest,
   divided by the turns, is the solver's overhead (prompt building, tool calls, parsing, events, budgets).
   Measured again without writing events, to show what the Run's event writing costs.
2. Debate: the solvers' round of a debate with n solvers (concurrent requests, as the solver sends them to an
   HTTP backend) against n sequential chat calls, both on a fake OpenAI-compatible server on 127.0.0.1 that
   answers each request after a fixed latency.

Medians of --repeats, both sides of each comparison measured in the same run.
Run: .venv/bin/python benchmarks/agents.py [--turns 200] [--latency 0.2] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # support/: the fake server the tests use


def overhead_per_turn(turns: int, write_events: bool = True) -> dict:
    from tlcli.llm.scripted import ScriptedLLM
    from tlcli.runs.run import Run
    from tlcli_agents.models import LiveModel
    from tlcli_agents.solver import Settings, Solver
    from tlcli_agents.teams import load_team
    from tlcli_agents.termination import MaxTurns, TextMention
    from tlcli_agents.tools import build_toolbox

    replies = ["1. compute 2. check"] + [{"content": "", "tool_calls": [
        {"name": "calculator", "arguments": {"expression": "17 * 23 + 4"}}]}] * 3 + ["It is 395.", "Not sure, revise."]
    llm = ScriptedLLM(replies, supports_tools=True)
    model_time = [0.0]
    chat = llm.chat

    def timed_chat(*args, **kwargs):
        started = time.perf_counter()
        try:
            return chat(*args, **kwargs)
        finally:
            model_time[0] += time.perf_counter() - started

    llm.chat = timed_chat
    team = load_team("plan-solve-critique")
    with tempfile.TemporaryDirectory() as folder:
        run = Run.create("agents", Path(folder) / "run", plugin="agents", config={})
        run.start()
        emit = (lambda kind, data, step: run.emit(kind, data, step=step)) if write_events else (lambda *a: None)
        solver = Solver(team, build_toolbox(["calculator"]), LiveModel(llm), TextMention("APPROVE", "critic") | MaxTurns(turns),
                        emit, Settings())
        started = time.perf_counter()
        outcome = solver.solve("What is 17 * 23 + 4?")
        wall = time.perf_counter() - started
        run.finish("finished", outcome.summary())
    assert outcome.turns == turns, outcome.reason
    return {"turns": outcome.turns, "wall_s": wall, "model_s": model_time[0],
            "overhead_ms_per_turn": 1000 * (wall - model_time[0]) / outcome.turns,
            "model_ms_per_turn": 1000 * model_time[0] / outcome.turns}


def debate_round(n: int, latency: float) -> dict:
    from support.agent_server import AgentServer

    from tlcli.llm import resolve_llm
    from tlcli_agents.models import LiveModel, Request

    messages = [{"role": "system", "content": "You are one of several independent solvers."},
                {"role": "user", "content": "Task:\nWhat is 17 * 23 + 4?"}]
    with AgentServer(lambda body, k: ["395"] * k, latency=latency) as server:
        llm = resolve_llm(server.spec())
        model = LiveModel(llm)
        requests = [Request(f"solver-{i + 1}", messages, None, 0.7, 32, i) for i in range(n)]
        llm.chat(messages, max_tokens=8)  # connection warm-up, not timed
        started = time.perf_counter()
        replies = model.call(requests)
        concurrent = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(n):
            llm.chat(messages, temperature=0.7, max_tokens=32, seed=i)
        sequential = time.perf_counter() - started
        llm.close()
    assert [r.text for r in replies] == ["395"] * n
    return {"n": n, "concurrent_s": concurrent, "sequential_s": sequential, "speedup": sequential / concurrent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="The fake server's seconds per request.")
    parser.add_argument("--n", type=int, nargs="+", default=[3, 5, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    overhead = [overhead_per_turn(args.turns) for _ in range(args.repeats)]
    per_turn = statistics.median(o["overhead_ms_per_turn"] for o in overhead)
    no_events = statistics.median(overhead_per_turn(args.turns, write_events=False)["overhead_ms_per_turn"]
                                  for _ in range(args.repeats))
    model_per_turn = statistics.median(o["model_ms_per_turn"] for o in overhead)
    rows = {"overhead": {"turns": args.turns, "overhead_ms_per_turn": round(per_turn, 3),
                         "scripted_model_ms_per_turn": round(model_per_turn, 3),
                         "without_events_ms_per_turn": round(no_events, 3),
                         "all_runs_ms": [round(o["overhead_ms_per_turn"], 3) for o in overhead]}}
    rows["debate"] = []
    for n in args.n:
        runs = [debate_round(n, args.latency) for _ in range(args.repeats)]
        rows["debate"].append({"n": n, "latency_s": args.latency,
                               "concurrent_s": round(statistics.median(r["concurrent_s"] for r in runs), 3),
                               "sequential_s": round(statistics.median(r["sequential_s"] for r in runs), 3),
                               "speedup": round(statistics.median(r["speedup"] for r in runs), 2),
                               "goal": round(0.8 * n, 2)})
    if args.json:
        print(json.dumps(rows))
        return
    o = rows["overhead"]
    print(f"solver overhead: {o['overhead_ms_per_turn']:.2f} ms per turn (median of {args.repeats} runs of "
          f"{args.turns} turns; goal < 5 ms); the scripted model took {o['scripted_model_ms_per_turn']:.2f} ms per turn")
    print(f"  the same without writing events.jsonl (Run.emit, which masks secrets in every event): "
          f"{o['without_events_ms_per_turn']:.2f} ms per turn")
    print(f"debate solvers' round on a fake server answering after {args.latency:g} s per request:")
    print("   n  concurrent  sequential  speedup  goal (0.8 n)")
    for d in rows["debate"]:
        print(f"{d['n']:>4}  {d['concurrent_s']:>9.3f}s  {d['sequential_s']:>9.3f}s  {d['speedup']:>6.2f}x  {d['goal']:>5.1f}x")


if __name__ == "__main__":
    main()
