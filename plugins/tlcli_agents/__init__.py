"""tlcli agents: teams of LLM agents with tools, budgets that hold, transcripts and exact replays."""
