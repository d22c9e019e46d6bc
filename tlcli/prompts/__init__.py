"""Prompts shared by every command that talks to an LLM (``prompt``, ``rag ask``, agents).

- ``templates``: Jinja2 templates with a TOML header, rendered in a sandbox; built-ins in ``templates/``.
- ``answers``: pulling the final answer out of a completion, normalising it, majority voting.

Nothing heavy at import: jinja2 loads when a template is parsed.
"""
