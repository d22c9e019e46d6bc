"""`tlcli agents ...`, declared: each command's options are a config in tlcli_agents/config.py, its work a job
in tlcli_agents/job.py.

`agents solve` makes a run folder (runs/agents-<time>: config.json as run, every message in events.jsonl,
the summary in metrics.json) and takes --tui; a run cannot be resumed (`agents replay` re-runs a recording).
`agents teams` and `agents replay` make none (kind "tool")."""

from tlcli.cli.command import Command
from tlcli_agents.config import ReplayConfig, SolveConfig, TeamsConfig

TEAMS = Command(
    "teams", TeamsConfig, "tlcli_agents.job:teams_job",
    "List the built-in teams, or print one with --show.",
    kind="tool", plugin="agents", group="agents",
    examples=("tlcli agents teams --show plan-solve-critique",))

SOLVE = Command(
    "solve", SolveConfig, "tlcli_agents.job:solve_job",
    """Solve a task with a team of agents; every message goes to the run folder's events.jsonl.

    The answer is printed on stdout, the transcript and per-agent usage on stderr. With --json, the summary
    is the one line: status (the run's: finished, stopped, failed), outcome (the team's: solved,
    budget_exhausted, gave_up, failed), answer, reason, turns, tokens, per_agent (and cost with configured
    prices). A failed run exits 1.""",
    plugin="agents", group="agents", run_name="agents", resumable=False,
    examples=('tlcli agents solve "What is 17 * 23 + 4?" --llm hf:./my-model --tools calculator --max-turns 8',
              'tlcli agents solve "What is 17 * 23 + 4?" --llm openai:http://127.0.0.1:8000/v1#MODEL --tools calculator'))

REPLAY = Command(
    "replay", ReplayConfig, "tlcli_agents.job:replay_job",
    """Re-run a recorded task against its recorded model answers (no backend): same tool calls, same result, or the first step where the replay diverges.

    The summary says "replay": exact or diverged (then status failed, exit 1, and "diverged_at" names the
    message), with the replayed outcome, answer, turns and tokens.""",
    kind="tool", plugin="agents", group="agents",
    examples=("tlcli agents replay runs/agents-20261202-101500 --json",))
