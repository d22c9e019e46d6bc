"""LLM spec strings: parse, validate, and find one (flag, then ``TLCLI_LLM``, then the config file).

Spec grammar (options are URL-style, after the last ``?``; unknown options are an error)::

    hf:MODEL_ID_OR_DIR[?device=cpu&dtype=bfloat16&trust_remote_code=true&chat_template=off&batch_size=8]
    openai:BASE_URL#MODEL[?api=completions&stream=true&api_key_env=MY_KEY&timeout=60&max_retries=4]
    scripted:REPLIES.json[?native_tools=false]   (replies used in turn; for tests and dry runs)
    SCHEME:...                 (a backend a plugin registers through Plugin.llm_backends)

Config file (``TLCLI_CONFIG``, else ``./tlcli.toml``, else ``$TLCLI_HOME/config.toml``)::

    [llm]
    spec = "openai:http://127.0.0.1:8000/v1#qwen2.5-7b-instruct"
    options = { api = "chat", timeout = 120 }   # used with the spec from this file only
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Union
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from tlcli.console.errors import UsageError

ENV_VAR = "TLCLI_LLM"
#: Where a spec came from. Only the command line (``--llm``, or a string a program passes) may turn on
#: remote code; a key is sent to a host from any other source only if the user configured that host.
COMMAND_LINE = "the command line"
ENVIRONMENT = f"${ENV_VAR}"
CONFIG_ENV_VAR = "TLCLI_CONFIG"
EXAMPLES = "hf:./my-model, hf:Qwen/Qwen2.5-0.5B-Instruct or openai:http://127.0.0.1:8000/v1#MODEL"


class HFSpec(BaseModel):
    """A local transformers causal LM: a Hugging Face id (from the local cache) or a folder."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["hf"] = "hf"
    model: str = Field(min_length=1)
    device: str = "auto"  # auto: cuda, then mps, then cpu
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # Custom modelling code runs arbitrary Python from the model folder: never on unless asked on the
    # command line (parse_spec refuses it from TLCLI_LLM or a config file).
    trust_remote_code: bool = False
    chat_template: Literal["auto", "on", "off"] = "auto"
    batch_size: int = Field(8, ge=1, le=1024)  # prompts per forward pass; each brings n rows
    # n samples of a prompt share one prefill: its KV cache is computed once and expanded to n rows.
    share_prefill: bool = True


class OpenAISpec(BaseModel):
    """An OpenAI-compatible server (vLLM, llama.cpp server, Ollama, hosted APIs)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["openai"] = "openai"
    base_url: str = Field(pattern=r"^https?://")
    model: str = Field(min_length=1)
    api: Literal["chat", "completions"] = "chat"
    # Key lookup: this variable if set, else TLCLI_LLM_API_KEY, else OPENAI_API_KEY; none is fine locally.
    api_key_env: str | None = None
    # Seconds, at most a day: inf or 1e300 overflow the clocks they are added to.
    timeout: float = Field(60.0, gt=0, le=86_400, allow_inf_nan=False)
    connect_timeout: float = Field(5.0, gt=0, le=86_400, allow_inf_nan=False)
    max_retries: int = Field(4, ge=0, le=20)
    backoff: float = Field(0.5, ge=0, le=86_400, allow_inf_nan=False)  # first retry delay; doubles each time
    max_backoff: float = Field(30.0, ge=0, le=86_400, allow_inf_nan=False)
    stream: bool = False  # generate() reads the answer as server-sent events
    concurrency: int = Field(4, ge=1, le=64)  # requests in flight when a call has several prompts
    _source: str = PrivateAttr(default=COMMAND_LINE)  # not settable from a spec string or a file

    @property
    def source(self) -> str:
        return self._source


class ScriptedSpec(BaseModel):
    """Replies read from a JSON file, used in turn: pipelines and tests without a model."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["scripted"] = "scripted"
    path: Path
    # Tool calls in the file come back as native calls; off: written into the text as JSON actions.
    native_tools: bool = True


class PluginSpec(BaseModel):
    """A backend registered by a plugin (``Plugin.llm_backends = {scheme: "module:factory"}``).

    The factory is called as ``factory(target, options)``: ``target`` is the text after ``SCHEME:`` and
    before ``?``; ``options`` the ``key=value`` pairs (config-file options first, the spec's own win).
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["plugin"] = "plugin"
    scheme: str
    factory: str  # "module:attr", imported only when the backend is built
    target: str
    options: dict = Field(default_factory=dict)


LLMSpec = Union[HFSpec, OpenAISpec, ScriptedSpec, PluginSpec]
BUILTIN_SCHEMES = ("hf", "openai", "scripted")


def plugin_backend(scheme: str) -> str | None:
    """The ``module:factory`` a loaded plugin registered for ``scheme``, if any."""
    from tlcli.registry import load_plugins

    plugins = load_plugins()
    lookup = getattr(plugins, "llm_backend_for", None)
    return lookup(scheme) if lookup else None


def parse_spec(text: str, options: dict | None = None, source: str = COMMAND_LINE) -> LLMSpec:
    """Parse ``hf:...`` / ``openai:...`` / ``scripted:...`` into a validated spec.

    ``options`` (from a config file) are defaults; options written in the spec string win. ``source``
    says where the text came from: anything but the command line may not turn on ``trust_remote_code``,
    and an ``openai:`` spec remembers it so the backend sends a key only to a host the user chose.
    """
    spec = _parse(text, options)
    if isinstance(spec, HFSpec) and spec.trust_remote_code and source != COMMAND_LINE:
        raise UsageError(f"{source} sets trust_remote_code for {spec.model!r}: refused, because a setting "
                         "from a file or the environment must not run a model folder's Python code; if you "
                         f"trust it, say so on the command line: --llm 'hf:{spec.model}?trust_remote_code=true'")
    if isinstance(spec, OpenAISpec):
        spec._source = source
    return spec


def _parse(text: str, options: dict | None) -> LLMSpec:
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    factory = plugin_backend(scheme) if sep and scheme not in BUILTIN_SCHEMES else None
    if not sep or (scheme not in BUILTIN_SCHEMES and factory is None):
        raise UsageError(f"LLM spec {text!r} is not understood: expected hf:..., openai:...#MODEL or scripted:FILE "
                         f"(or a scheme an installed plugin registers); e.g. {EXAMPLES}")
    values: dict = dict(options or {})
    body, query = _split_options(rest)
    values.update(query)
    if factory is not None:
        return PluginSpec(scheme=scheme, factory=factory, target=body, options=values)
    if scheme == "hf":
        values["model"] = body
        model_cls: type[BaseModel] = HFSpec
    elif scheme == "openai":
        base_url, hash_, model = body.partition("#")
        if not hash_ or not model:
            raise UsageError(f"LLM spec {text!r} names no model: write openai:BASE_URL#MODEL, "
                             "e.g. openai:http://127.0.0.1:8000/v1#llama3")
        values.update(base_url=base_url.rstrip("/"), model=model)
        model_cls = OpenAISpec
    else:
        values["path"] = body
        model_cls = ScriptedSpec
    try:
        return model_cls(**values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        allowed = ", ".join(k for k in model_cls.model_fields if k != "kind")
        raise UsageError(
            f"LLM spec {text!r}: option {where}={first.get('input')!r} is invalid ({first['msg']}); "
            f"{scheme}: options are {allowed}"
        ) from None


def _split_options(rest: str) -> tuple[str, dict[str, str]]:
    # The options follow the last "?"; a "?" inside an openai base URL's own query comes before "#".
    head, sep, tail = rest.rpartition("?")
    if not sep or ("#" in rest and "#" not in head):
        return rest, {}
    pairs = parse_qsl(tail, keep_blank_values=True, strict_parsing=False)
    if not pairs and tail:
        raise UsageError(f"LLM options {tail!r} are not key=value pairs joined by '&'")
    return head, dict(pairs)


def config_file() -> Path | None:
    """The config file in effect, if any."""
    explicit = os.environ.get(CONFIG_ENV_VAR)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"{CONFIG_ENV_VAR}={explicit} is not a file; fix the path or unset it")
        return path
    from tlcli.runs.paths import tlcli_home

    for path in (Path("tlcli.toml"), tlcli_home() / "config.toml"):
        if path.is_file():
            return path
    return None


def _from_config(path: Path) -> tuple[str, dict] | None:
    from tlcli.console.config_file import read_options_file

    table = read_options_file(path, option="config file").get("llm")
    if table is None:
        return None
    extra = set(table) - {"spec", "options"}
    if extra or not isinstance(table.get("spec"), str) or not isinstance(table.get("options", {}), dict):
        raise UsageError(f"{path}: [llm] takes spec = \"hf:...\" and an optional options = {{...}} table; "
                         f"found keys {sorted(table)}")
    return table["spec"], dict(table.get("options", {}))


def find_spec(flag: str | None = None) -> LLMSpec:
    """The LLM to use: ``--llm`` if given, else ``TLCLI_LLM``, else ``[llm]`` in the config file.

    Which one was used is said on stderr when it is not the flag, so a setting nobody typed is visible.
    """
    if flag:
        return parse_spec(flag)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        from tlcli.console.output import info

        info(f"LLM from ${ENV_VAR}")
        return parse_spec(env, source=ENVIRONMENT)
    path = config_file()
    found = _from_config(path) if path else None
    if found:
        from tlcli.console.output import info

        info(f"LLM settings read from config file {path}")
        return parse_spec(*found, source=f"config file {path}")
    raise UsageError(f"no LLM given: pass --llm (e.g. {EXAMPLES}), set {ENV_VAR}, "
                     "or add [llm] spec = \"...\" to tlcli.toml")
