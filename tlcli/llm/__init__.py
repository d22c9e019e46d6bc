"""Text-generation backends behind one interface: :meth:`LLM.chat` (messages in, choices and usage out)
and :meth:`LLM.generate` (plain prompts).

``resolve_llm("hf:./model")`` / ``resolve_llm("openai:http://127.0.0.1:8000/v1#MODEL")`` /
``resolve_llm("scripted:replies.json")``, or any scheme a plugin registers (``Plugin.llm_backends``); with
no spec, ``TLCLI_LLM`` and then the config file's ``[llm]`` table are used (see :mod:`tlcli.llm.spec`).
Nothing heavy is imported here: torch and transformers load only when an ``hf:`` model is built.
"""

from __future__ import annotations

from tlcli.console.errors import UsageError

from tlcli.llm.base import (
    LLM, ChatResult, Choice, Generation, SamplingParams, ToolCall, Usage, cut_at_stop, sampling_params,
)
from tlcli.llm.spec import HFSpec, LLMSpec, OpenAISpec, PluginSpec, ScriptedSpec, find_spec, parse_spec

__all__ = [
    "LLM", "ChatResult", "Choice", "Generation", "SamplingParams", "ToolCall", "Usage", "cut_at_stop",
    "sampling_params", "HFSpec", "OpenAISpec", "PluginSpec", "ScriptedSpec", "LLMSpec", "parse_spec",
    "find_spec", "resolve_llm", "build_llm",
]


def build_llm(spec: LLMSpec) -> LLM:
    """The backend for a parsed spec."""
    if isinstance(spec, HFSpec):
        from tlcli.llm.hf import HFLLM

        return HFLLM(spec)
    if isinstance(spec, OpenAISpec):
        from tlcli.llm.openai_compat import OpenAILLM

        return OpenAILLM(spec)
    if isinstance(spec, PluginSpec):
        return _build_plugin_backend(spec)
    from tlcli.llm.scripted import ScriptedLLM

    return ScriptedLLM.from_file(spec.path, native_tools=spec.native_tools)


def _build_plugin_backend(spec: PluginSpec) -> LLM:
    import importlib

    module_name, _, attr = spec.factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"the plugin backend for {spec.scheme}: ({spec.factory}) cannot be loaded "
                         f"({type(error).__name__}: {error}); reinstall or disable that plugin") from None
    llm = factory(spec.target, dict(spec.options))
    if not isinstance(llm, LLM):
        raise UsageError(f"the plugin backend {spec.factory} returned a {type(llm).__name__}, not a tlcli LLM")
    if not llm.spec:
        llm.spec = f"{spec.scheme}:{spec.target}"
    return llm


def resolve_llm(spec: str | LLMSpec | None = None) -> LLM:
    """A ready backend from a spec string or object; ``None`` looks at ``TLCLI_LLM``, then the config."""
    if spec is None or isinstance(spec, str):
        spec = find_spec(spec)
    return build_llm(spec)



