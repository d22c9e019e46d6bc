"""The agents demo, offline: a planner, a solver with tools and a reviewer on scripted model answers.

The only model available offline, tlcli.llm.tiny, has random weights and writes gibberish, so the model's side
of the conversation is scripted (replies.json); everything else is real: the team file, the allow-listed tools (calculator, the notes
folder read-only), the budgets, the transcript in the run folder, the replay, and the per-agent usage.
Run from the repository root:

    .venv/bin/python examples/agents/run.py [--keep DIR]

Point it at a real model by replacing --llm: llama.cpp (`llama-server -m model.gguf --port 8080`,
then openai:http://127.0.0.1:8080/v1#any), Ollama (openai:http://127.0.0.1:11434/v1#llama3.1) or vLLM
(`vllm serve MODEL`, then openai:http://127.0.0.1:8000/v1#MODEL).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASK = "What do 23 pens and the paper bag cost at the school shop, in cents?"


def tlcli(*args: str, ok_codes=(0,)) -> tuple[list[dict], str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "tlcli", *args, "--json"], capture_output=True, text=True, env=env)
    if done.returncode not in ok_codes:
        sys.exit(f"tlcli {' '.join(args[:2])} failed (exit {done.returncode}):\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()], done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Keep the run folders here (default: a temporary folder).")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="tlcli-agents-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    print("scripted model answers: the offline tiny model (python -m tlcli.llm.tiny) writes gibberish, "
          "so the model's side of this demo is scripted", flush=True)
    print(f"task: {TASK}\n", flush=True)

    common = ["--llm", f"scripted:{HERE / 'replies.json'}", "--team", str(HERE / "team.toml"),
              "--tools", f"calculator,files:{HERE / 'notes'}"]
    lines, transcript = tlcli("agents", "solve", TASK, *common, "--out", str(work / "solved"), "--overwrite")
    print("transcript (stderr of agents solve):")
    print("\n".join("  " + line for line in transcript.splitlines()))
    summary = lines[-1]
    print(f"\nstatus {summary['outcome']} after {summary['turns']} turns; answer: {summary['answer']}")
    print(f"run folder: {summary['run_dir']} (events.jsonl holds every message; watch it with tlcli monitor)")

    replay, _ = tlcli("agents", "replay", summary["run_dir"])
    print(f"\nreplay without a model: {replay[-1]['replay']} ({replay[-1]['steps']} messages, "
          f"answer {'identical' if replay[-1]['answer'] == summary['answer'] else 'DIFFERENT'})")

    budget, _ = tlcli("agents", "solve", TASK, *common, "--max-turns", "4", "--out", str(work / "budget"), "--overwrite")
    print(f"\nsame team with --max-turns 4: status {budget[-1]['outcome']} after {budget[-1]['turns']} turns; "
          f"best answer so far (the solver's, not yet reviewed): {budget[-1]['answer']!r}")
    print("\nper-agent usage of the solved run (whitespace tokens: the scripted backend's count):")
    for agent, usage in summary["per_agent"].items():
        print(f"  {agent:<9} turns {usage['turns']}  prompt {usage['prompt_tokens']:>4}  "
              f"completion {usage['completion_tokens']:>3}  tool calls {usage['tool_calls']}")


if __name__ == "__main__":
    main()
