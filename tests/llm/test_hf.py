import shutil

import pytest

from tlcli.console.errors import UsageError
from tlcli.llm import Generation, resolve_llm


def test_n_samples_per_prompt_from_one_forward_call(tiny_llm, monkeypatch):
    seen = []
    original = tiny_llm.model.generate

    def spy(*args, **kwargs):
        seen.append((kwargs["input_ids"].shape[0], kwargs["num_return_sequences"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_llm.model, "generate", spy)
    results = tiny_llm.generate(["what is two plus two?", "hi"], n=5, temperature=0.8, max_tokens=6, seed=0)
    assert seen == [(2 * 5, 1)]  # both prompts, all 5 samples each: one call, on the shared prefill's rows
    assert len(results) == 2 and all(isinstance(r, Generation) for r in results)
    assert all(len(r.texts) == 5 and len(r.completion_tokens) == 5 for r in results)
    assert all(0 < c <= 6 for r in results for c in r.completion_tokens)
    # Token counts come from the attention mask, so padding does not inflate the short prompt.
    assert results[0].prompt_tokens > results[1].prompt_tokens > 0


def test_batches_split_by_batch_size(tiny_model_dir):
    llm = resolve_llm(f"hf:{tiny_model_dir}?batch_size=2")
    llm.generate(["a", "b", "c"], max_tokens=2)
    assert llm.forward_calls == 2


def test_left_padding_gives_the_same_greedy_text_alone_or_in_a_batch(tiny_llm):
    alone = tiny_llm.generate(["two"], max_tokens=5)[0].texts[0]
    batched = tiny_llm.generate(["two", "a much longer prompt that forces padding on the other one"],
                                max_tokens=5)[0].texts[0]
    assert alone == batched


def test_seed_makes_sampling_repeatable(tiny_llm):
    first = tiny_llm.generate(["seeded"], n=3, temperature=1.0, max_tokens=6, seed=7)[0].texts
    second = tiny_llm.generate(["seeded"], n=3, temperature=1.0, max_tokens=6, seed=7)[0].texts
    assert first == second


def test_stop_strings_are_cut_off(tiny_llm):
    # Sampling with a seed (greedy decoding of random weights mostly repeats one padding token).
    opts = dict(temperature=1.0, seed=3, max_tokens=12)
    full = tiny_llm.generate(["stop here"], **opts)[0].texts[0]
    words = full.split()
    assert len(words) >= 3, full
    stop = " " + words[2]
    cut = tiny_llm.generate(["stop here"], stop=[stop], **opts)[0]
    assert stop not in cut.texts[0]
    assert full.startswith(cut.texts[0])
    assert cut.finish_reasons == ["stop"]


def test_greedy_with_n_above_one_is_a_usage_error(tiny_llm):
    with pytest.raises(UsageError, match="temperature"):
        tiny_llm.generate(["x"], n=3, temperature=0.0)


def test_chat_template_is_applied_when_the_tokenizer_has_one(tiny_model_dir, tmp_path):
    chat_dir = tmp_path / "chat"
    shutil.copytree(tiny_model_dir, chat_dir)
    llm = resolve_llm(f"hf:{chat_dir}")
    assert not llm.use_chat_template
    llm.tokenizer.chat_template = "{% for m in messages %}<user> {{ m['content'] }}{% endfor %} <bot>"
    llm.use_chat_template = True
    assert llm._format("hello") == "<user> hello <bot>"
    assert len(llm.generate(["hello"], max_tokens=2)[0].texts) == 1


def test_missing_folder_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        resolve_llm(f"hf:{tmp_path / 'nope'}")


def test_folder_without_config_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no config.json"):
        resolve_llm(f"hf:{tmp_path}")


def test_uncached_hub_id_offline_is_usage_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError, match="not in the Hugging Face cache"):
        resolve_llm("hf:tlcli-test/no-such-model-xyz")


PROMPTS = ["what is two plus two?", "hi", "a much longer prompt that forces padding on the other two"]


@pytest.mark.parametrize("seed", [0, 1])
def test_shared_prefill_samples_exactly_what_expanded_prompts_sample(tiny_model_dir, tiny_llm, seed):
    expanded = resolve_llm(f"hf:{tiny_model_dir}?share_prefill=false")
    options = dict(n=4, temperature=0.9, top_p=0.95, max_tokens=8, seed=seed)
    shared = tiny_llm.generate(PROMPTS, **options)
    plain = expanded.generate(PROMPTS, **options)
    assert [g.texts for g in shared] == [g.texts for g in plain]
    assert [g.completion_tokens for g in shared] == [g.completion_tokens for g in plain]
    assert [g.prompt_tokens for g in shared] == [g.prompt_tokens for g in plain]
    assert len({t for g in shared for t in g.texts}) > 3  # really sampled, not one repeated text


def test_shared_prefill_computes_each_prompt_once(tiny_llm, monkeypatch):
    rows = []
    body = tiny_llm.model.base_model  # every forward pass, prefill and decoding steps, goes through it
    original = body.forward

    def spy(*args, **kwargs):
        ids = kwargs["input_ids"] if kwargs.get("input_ids") is not None else args[0]
        rows.append(tuple(ids.shape))
        return original(*args, **kwargs)

    monkeypatch.setattr(body, "forward", spy)
    tiny_llm.generate(PROMPTS, n=5, temperature=0.8, max_tokens=3, seed=0)
    width = tiny_llm._encode(PROMPTS, 1)["input_ids"].shape[1]
    assert rows[0] == (3, width - 1)  # the prompts once, without their last token
    assert all(shape == (15, 1) for shape in rows[1:]) and len(rows) == 1 + 3  # then one token per step


def test_prompt_and_reply_must_fit_in_the_context_in_every_entry_point(tiny_llm):
    assert tiny_llm.context_length == 512
    fits = "word " * 100
    assert tiny_llm.generate([fits], max_tokens=2)[0].texts  # well inside: runs
    too_long = "word " * 600
    with pytest.raises(UsageError, match="context of 512 tokens"):
        tiny_llm.generate([fits, too_long], max_tokens=2)  # one row of a batch is enough
    with pytest.raises(UsageError, match="--max-tokens 500"):
        tiny_llm.chat([{"role": "user", "content": fits}], max_tokens=500)  # the reply would not fit
    with pytest.raises(UsageError, match="context of 512 tokens"):
        list(tiny_llm.chat_stream([{"role": "user", "content": too_long}], max_tokens=2))
