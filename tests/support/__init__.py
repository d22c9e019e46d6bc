"""What the tests share, imported as ``from support.X import ...`` (pyproject's pytest ``pythonpath`` puts
tests/ on the path; benchmarks put it there themselves):

- ``fake_openai``: the one fake OpenAI-compatible server on 127.0.0.1 (real wire format, scripted failures);
  ``agent_server``: the same server as the agents tests and benchmarks/agents.py use it;
  ``mcp_lookup_server``: a tiny MCP server run as a subprocess script.
- ``clip``: a tiny open_clip config and generated class-folder images; ``distill``: colour-class images, a
  tiny teacher and student.
- ``runs``: `tlcli` subprocesses, checkpoints to wait for, folder snapshots.
- ``agents``: a fake chat backend and a solver factory.
- ``tui`` and ``tui_logs``: dashboard screen readers and hand-written event logs.
"""
