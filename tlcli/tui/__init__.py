"""The live dashboard (`tlcli monitor`, `--tui`): a Textual app that reads only a run folder's events.jsonl.

Nothing here imports torch or a plugin, so a run started elsewhere (another terminal, another machine with
a synced run folder) can be watched. `state` and `tail` are plain Python; Textual is imported by the
modules that draw.
"""
