"""The chat API (`LLM.chat`, `chat_stream`, ChatResult/Choice/ToolCall/Usage) on every built-in backend,
the base-class defaults, and backends registered by plugins."""

import json

import pytest

from tlcli.console.errors import UsageError
from tlcli.llm import LLM, ChatResult, Choice, Generation, ToolCall, Usage, parse_spec, resolve_llm
from tlcli.llm.base import cut_stream_at_stop, render_plain
from tlcli.llm.openai_compat import OpenAILLM
from tlcli.llm.scripted import ScriptedLLM

CALC = [{"type": "function", "function": {"name": "calculator", "description": "arithmetic",
                                          "parameters": {"type": "object",
                                                         "properties": {"expression": {"type": "string"}}}}}]
CONVERSATION = [
    {"role": "system", "content": "You solve sums."},
    {"role": "user", "content": "what is 2 + 2 ?"},
]


# -- scripted -------------------------------------------------------------------------------------------

def test_scripted_chat_returns_texts_tool_calls_and_word_usage(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps([
        {"content": "", "tool_calls": [{"name": "calculator", "arguments": {"expression": "2+2"}}]},
        "The answer is 4.",
    ]))
    llm = resolve_llm(f"scripted:{path}")
    assert llm.scripted and llm.supports_tools
    first = llm.chat(CONVERSATION, tools=CALC)
    assert isinstance(first, ChatResult)
    call = first.choices[0].tool_calls[0]
    assert (call.name, json.loads(call.arguments)) == ("calculator", {"expression": "2+2"})
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.usage.prompt_tokens == 3 + 6  # whitespace words of both messages
    history = CONVERSATION + [first.choices[0].to_message(),
                              {"role": "tool", "tool_call_id": call.id, "content": "4"}]
    second = llm.chat(history)
    assert second.text == "The answer is 4." and second.usage == Usage(3 + 6 + 0 + 1, 4)
    assert llm.calls[0].tools == CALC and llm.calls[1].messages[-1]["content"] == "4"


def test_scripted_without_native_tools_writes_the_call_as_text(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"content": "", "tool_calls": [{"name": "calc", "arguments": "{\"x\": 1}"}]}]))
    llm = resolve_llm(f"scripted:{path}?native_tools=false")
    choice = llm.chat([{"role": "user", "content": "go"}]).choices[0]
    assert not llm.supports_tools and choice.tool_calls == []
    assert json.loads(choice.text) == {"tool": "calc", "arguments": "{\"x\": 1}"}


@pytest.mark.parametrize("content, words", [
    ('{"a": 1}', "must hold"),
    ('[]', "non-empty"),
    ('[{"content": "x", "tools": []}]', "unknown keys"),
    ('[{"tool_calls": [{"arguments": {}}]}]', "needs a name"),
    ('[3]', "item 0"),
])
def test_bad_scripted_files_are_one_usage_line(tmp_path, content, words):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=words):
        resolve_llm(f"scripted:{path}")


def test_n_choices_take_successive_replies():
    llm = ScriptedLLM(["a", "b", "c"])
    result = llm.chat([{"role": "user", "content": "q"}], n=2, temperature=0.7)
    assert [c.text for c in result.choices] == ["a", "b"]
    assert llm.chat([{"role": "user", "content": "q"}]).text == "c"


@pytest.mark.parametrize("messages", [[], [{"role": "robot", "content": "x"}], [{"role": "user", "content": 3}],
                                      "hello", [{"role": "user", "content": "x", "tool_calls": [{}]}]])
def test_malformed_messages_are_usage_errors(messages):
    with pytest.raises(UsageError):
        ScriptedLLM(["a"]).chat(messages)


# -- base-class defaults ----------------------------------------------------------------------------------

class EchoGenerate(LLM):
    """Implements only generate: chat must come from the default."""

    def generate(self, prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None):
        return [Generation([p[-12:]] * n, len(p.split()), [2] * n, ["stop"] * n) for p in prompts]


class EchoChat(LLM):
    """Implements only chat: generate must come from the default."""

    def chat(self, messages, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None, tools=None):
        return ChatResult([Choice(messages[-1]["content"].upper())] * n, Usage(1, 3 * n))


def test_chat_default_renders_plain_role_lines():
    result = EchoGenerate().chat(CONVERSATION, n=2, temperature=0.5)
    assert [c.text for c in result.choices] == [render_plain(CONVERSATION)[-12:]] * 2
    assert result.usage == Usage(len(render_plain(CONVERSATION).split()), 4)
    rendered = render_plain(CONVERSATION + [
        {"role": "assistant", "content": None, "tool_calls": [ToolCall("c1", "calc", '{"x": 1}').to_message()]}])
    assert rendered.splitlines() == ["system: You solve sums.", "user: what is 2 + 2 ?",
                                     'assistant: {"tool": "calc", "arguments": "{\\"x\\": 1}"}', "assistant:"]


def test_generate_default_sends_one_user_message():
    [generation] = EchoChat().generate(["hi"], n=2, temperature=0.5)
    assert generation.texts == ["HI", "HI"] and generation.completion_tokens == [3, 3]
    assert "".join(EchoChat().stream("abc")) == "ABC"
    assert "".join(EchoGenerate().stream("plain prompt")) == "plain prompt"  # not rendered as a chat


def test_a_backend_with_neither_method_is_refused():
    with pytest.raises(TypeError, match="must override"):
        class Nothing(LLM):
            pass


def test_cut_stream_at_stop_across_pieces():
    pieces = ["The ans", "wer", " is 4", ".\nQ", ": next"]
    assert "".join(cut_stream_at_stop(iter(pieces), ["\nQ:"])) == "The answer is 4."
    assert "".join(cut_stream_at_stop(iter(pieces), [])) == "".join(pieces)
    assert "".join(cut_stream_at_stop(iter(["a", "b"]), ["zz"])) == "ab"


# -- openai-compatible server -----------------------------------------------------------------------------

def tool_then_answer(prompt, n, body):
    if body.get("tools") and body["messages"][-1]["role"] != "tool":
        return [{"content": "", "tool_calls": [{"name": "calculator", "arguments": {"expression": "2+2"}}]}] * n
    return [f"The answer is {prompt}."] * n


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_sends_messages_and_tools_and_parses_tool_calls(fake_openai_factory, stream):
    with fake_openai_factory(tool_then_answer) as server:
        llm = OpenAILLM(parse_spec(f"openai:{server.base_url}#m?stream={str(stream).lower()}"))
        assert llm.supports_tools
        first = llm.chat(CONVERSATION, tools=CALC, n=2, temperature=0.5)
        assert len(first.choices) == 2
        call = first.choices[1].tool_calls[0]
        assert (call.id, call.name, json.loads(call.arguments)) == ("call_1_1_0", "calculator", {"expression": "2+2"})
        assert first.choices[0].finish_reason == "tool_calls" and first.choices[0].text == ""
        history = CONVERSATION + [first.choices[0].to_message(),
                                  {"role": "tool", "tool_call_id": "call_1_0_0", "content": "4"}]
        second = llm.chat(history, tools=CALC)
        llm.close()
    assert second.text == "The answer is 4." and second.choices[0].tool_calls == []
    sent = server.requests[0]["body"]
    assert sent["messages"] == CONVERSATION and sent["tools"] == CALC and sent["n"] == 2
    echoed = server.requests[1]["body"]["messages"][2]
    assert echoed["tool_calls"][0]["function"] == {"name": "calculator", "arguments": '{"expression": "2+2"}'}
    assert echoed["content"] is None  # the wire form of an assistant turn that only calls tools
    if stream:
        assert sent["stream"] is True and second.usage == Usage(3, 4)
    else:
        assert second.usage == Usage(1, 4)  # the fake counts the last message's words


def test_openai_chat_stream_yields_pieces(fake_openai):
    with OpenAILLM(parse_spec(f"openai:{fake_openai.base_url}#m")) as llm:
        pieces = list(llm.chat_stream(CONVERSATION, stop=[" is"]))
    assert len(pieces) >= 2 and "".join(pieces) == "sample 0: The answer"
    assert fake_openai.requests[0]["body"]["messages"] == CONVERSATION


def test_openai_usage_is_estimated_when_the_server_sends_none(fake_openai):
    fake_openai.send_usage = False
    with OpenAILLM(parse_spec(f"openai:{fake_openai.base_url}#m")) as llm:
        result = llm.chat([{"role": "user", "content": "one two three"}])
    assert result.usage == Usage(3, len(result.text.split())) and result.usage.completion_tokens > 0


def test_openai_completions_api_renders_the_chat_and_has_no_native_tools(fake_openai):
    with OpenAILLM(parse_spec(f"openai:{fake_openai.base_url}#m?api=completions")) as llm:
        assert not llm.supports_tools
        llm.chat(CONVERSATION, tools=CALC)
    body = fake_openai.requests[0]["body"]
    assert body["prompt"] == render_plain(CONVERSATION) and "tools" not in body


def test_openai_servers_ignoring_n_sum_the_usage_of_every_request(fake_openai):
    fake_openai.max_choices = 1
    with OpenAILLM(parse_spec(f"openai:{fake_openai.base_url}#m")) as llm:
        result = llm.chat([{"role": "user", "content": "a b"}], n=3, temperature=0.9)
    assert len(result.choices) == 3 and result.usage.prompt_tokens == 6


# -- hf ---------------------------------------------------------------------------------------------------

def test_hf_chat_plain_rendering_counts_tokens_and_draws_n(tiny_llm):
    result = tiny_llm.chat(CONVERSATION, n=3, temperature=0.9, max_tokens=5, seed=1)
    assert len(result.choices) == 3 and not tiny_llm.supports_tools
    expected_prompt = len(tiny_llm.tokenizer(render_plain(CONVERSATION))["input_ids"])
    assert result.usage.prompt_tokens == expected_prompt
    assert 3 <= result.usage.completion_tokens <= 15
    again = tiny_llm.chat(CONVERSATION, n=3, temperature=0.9, max_tokens=5, seed=1)
    assert [c.text for c in again.choices] == [c.text for c in result.choices]


def test_hf_chat_uses_the_template_with_tools(tiny_model_dir):
    llm = resolve_llm(f"hf:{tiny_model_dir}")
    llm.tokenizer.chat_template = ("{% for t in tools or [] %}[tool {{ t['function']['name'] }}]{% endfor %}"
                                   "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}"
                                   "{% for c in m.get('tool_calls') or [] %}({{ c['function']['arguments']['x'] }})"
                                   "{% endfor %}{% endfor %} <assistant>")
    llm.use_chat_template = True
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [ToolCall("c", "calc", '{"x": 7}')]}]
    assert llm.render(messages, CALC) == "[tool calculator]<user> hi<assistant> (7) <assistant>"
    assert len(llm.chat(messages, tools=CALC, max_tokens=2).choices) == 1


def test_hf_chat_stream_matches_chat(tiny_llm):
    options = dict(temperature=1.0, seed=5, max_tokens=8)
    whole = tiny_llm.chat(CONVERSATION, **options).text
    assert "".join(tiny_llm.chat_stream(CONVERSATION, **options)).strip() == whole.strip()


# -- plugin backends --------------------------------------------------------------------------------------

def echo_factory(target, options):
    llm = EchoChat()
    llm.spec = f"echo:{target}?{options.get('mood', '')}"
    return llm


def test_a_plugin_registers_a_scheme(monkeypatch):
    from tlcli import registry
    from tlcli.plugin import Plugin

    plugin = Plugin("echo-plugin", lambda app: None, llm_backends={"echo": f"{__name__}:echo_factory"})
    plugins = registry.Plugins([registry.LoadedPlugin(plugin, "test", "0")], [])
    monkeypatch.setattr(registry, "load_plugins", lambda: plugins)
    assert plugins.llm_backend_for("echo") == f"{__name__}:echo_factory"
    llm = resolve_llm("echo:loud?mood=happy")
    assert llm.spec == "echo:loud?happy"
    assert llm.chat([{"role": "user", "content": "hi"}]).text == "HI"
    with pytest.raises(UsageError, match="not understood"):
        resolve_llm("nosuch:thing")
    # Built-in schemes are never handed to a plugin.
    assert type(parse_spec("scripted:x.json")).__name__ == "ScriptedSpec"


def test_a_broken_plugin_factory_is_one_usage_line(monkeypatch):
    from tlcli import registry
    from tlcli.plugin import Plugin

    plugin = Plugin("broken", lambda app: None, llm_backends={"broken": "no_such_module_xyz:make"})
    monkeypatch.setattr(registry, "load_plugins",
                        lambda: registry.Plugins([registry.LoadedPlugin(plugin, "t", "0")], []))
    with pytest.raises(UsageError, match="cannot be loaded"):
        resolve_llm("broken:x")
