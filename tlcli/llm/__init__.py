"""Text-generation backends behind one interface (:class:`LLM.generate`).

``resolve_llm("hf:./model")`` / ``resolve_llm("openai:http://127.0.0.1:8000/v1#MODEL")``; with no spec,
``TLCLI_LLM`` and then the config file's ``[llm]`` table are used (see :mod:`tlcli.llm.spec`).
Nothing heavy is imported here: torch and transformers load only when an ``hf:`` model is built.
"""

from __future__ import annotations

from tlcli.llm.base import LLM, Generation, SamplingParams, cut_at_stop, sampling_params
from tlcli.llm.spec import HFSpec, LLMSpec, OpenAISpec, ScriptedSpec, find_spec, parse_spec

__all__ = [
    "LLM", "Generation", "SamplingParams", "cut_at_stop", "sampling_params",
    "HFSpec", "OpenAISpec", "ScriptedSpec", "LLMSpec", "parse_spec", "find_spec", "resolve_llm", "build_llm",
]


def build_llm(spec: LLMSpec) -> LLM:
    """The backend for a parsed spec."""
    if isinstance(spec, HFSpec):
        from tlcli.llm.hf import HFLLM

        return HFLLM(spec)
    if isinstance(spec, OpenAISpec):
        from tlcli.llm.openai_compat import OpenAILLM

        return OpenAILLM(spec)
    from tlcli.llm.scripted import ScriptedLLM

    return ScriptedLLM.from_file(spec.path)


def resolve_llm(spec: str | LLMSpec | None = None) -> LLM:
    """A ready backend from a spec string or object; ``None`` looks at ``TLCLI_LLM``, then the config."""
    if spec is None or isinstance(spec, str):
        spec = find_spec(spec)
    return build_llm(spec)
