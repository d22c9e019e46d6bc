"""The parts of sft/dpo one at a time: data formats, packing, adapters switched off, loading exports."""

from __future__ import annotations

import copy

import pytest
import torch
from support.tune import CHATS, gpt2, write_jsonl

from tlcli.console.errors import UsageError
from tlcli_tune.chat import IGNORE, ChatFormat
from tlcli_tune.data import preference_pair, read_pairs, read_sft, sft_chat
from tlcli_tune.model import TunedLM, pad_batch
from tlcli_tune.task import pack


# --- data ------------------------------------------------------------------------------------------------

def test_the_three_sft_formats_become_chats(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"prompt": "what is 1 + 1?", "completion": "2"},
        {"instruction": "translate to french", "input": "cat", "output": "chat", "system": "be brief"},
        {"instruction": "say yes", "input": "", "output": "yes"},
        {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
         "completion": [{"role": "assistant", "content": "a"}]},
    ])
    chats = read_sft(path)
    assert chats[1] == [{"role": "user", "content": "what is 1 + 1?"}, {"role": "assistant", "content": "2"}]
    assert chats[2] == [{"role": "system", "content": "be brief"},
                        {"role": "user", "content": "translate to french\n\ncat"},
                        {"role": "assistant", "content": "chat"}]
    assert chats[3][0] == {"role": "user", "content": "say yes"}  # no blank line for an empty input
    assert [m["role"] for m in chats[4]] == ["system", "user", "assistant"]


@pytest.mark.parametrize("line, message", [
    ('{"text": "raw"}', "not an SFT example"),
    ('{"messages": [{"role": "user", "content": "q"}]}', "no assistant turn"),
    ('{"messages": [{"role": "robot", "content": "q"}]}', "roles are"),
    ('{"prompt": 3, "completion": "x"}', "non-empty list"),
    ('[1, 2]', "not an object"),
    ('{"prompt": "a", ', "not JSON"),
])
def test_bad_sft_lines_name_the_file_line_and_the_fix(tmp_path, line, message):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "fine", "completion": "ok"}\n' + line + "\n")
    with pytest.raises(UsageError, match=message) as error:
        read_sft(path)
    assert f"{path}:2" in str(error.value)


def test_preference_pairs_plain_chat_and_implicit_prompt(tmp_path):
    plain = preference_pair({"prompt": "q", "chosen": "good", "rejected": "bad"}, "x")
    assert plain.prompt == [{"role": "user", "content": "q"}]
    assert plain.chosen == [{"role": "assistant", "content": "good"}]
    user = {"role": "user", "content": "q"}
    implicit = preference_pair({"chosen": [user, {"role": "assistant", "content": "good"}],
                                "rejected": [user, {"role": "assistant", "content": "bad"}]}, "x")
    assert implicit.prompt == [user] and implicit.rejected == [{"role": "assistant", "content": "bad"}]
    with pytest.raises(UsageError, match="not a preference pair"):
        read_pairs(write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a"}]))


# --- packing ---------------------------------------------------------------------------------------------

def test_best_fit_packing_keeps_every_token_and_fills_rows(tokenizer):
    rows = [ChatFormat(tokenizer).sft(m) for m in CHATS * 3]
    width = max(len(ids) for ids, _ in rows) + 12
    packed = pack(rows, width)
    assert len(packed) < len(rows)
    assert all(len(ids) <= width for ids, _, _ in packed)
    assert sorted(t for ids, _, _ in packed for t in ids) == sorted(t for ids, _ in rows for t in ids)
    learnt = sum(label != IGNORE for _, labels in rows for label in labels)
    assert sum(label != IGNORE for _, labels, _ in packed for label in labels) == learnt
    for ids, labels, positions in packed:  # an example's first token never learns from the one before
        assert all(labels[i] == IGNORE for i, p in enumerate(positions) if p == 0)


def test_packed_rows_give_each_example_the_log_probs_it_has_alone(tokenizer):
    """Positions restart per example and there is no padding mask, so transformers keeps each example's
    attention to itself: packing changes the batch's shape, not a single log-probability."""
    from tlcli_tune.task import SFTTask

    model = TunedLM(gpt2(tokenizer)).eval()
    rows = [ChatFormat(tokenizer).sft(m) for m in CHATS]
    alone = torch.cat([model(**pad_batch([row], tokenizer.pad_token_id)) for row in rows])
    packed = pack(rows, 200)
    assert len(packed) == 1
    task = SFTTask.__new__(SFTTask)
    task.pad_id = tokenizer.pad_token_id
    together = SFTTask._logps(model, task.collate(packed))
    # the same values, in packing order (largest first): compare as sorted multisets
    torch.testing.assert_close(together.sort().values, alone.sort().values, atol=1e-5, rtol=0)


def test_padding_does_not_change_the_log_probs(tokenizer):
    model = TunedLM(gpt2(tokenizer)).eval()
    rows = [ChatFormat(tokenizer).sft(m) for m in CHATS]
    alone = torch.cat([model(**pad_batch([row], tokenizer.pad_token_id)) for row in rows])
    batched = model(**pad_batch(rows, tokenizer.pad_token_id))
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_the_fast_output_layer_equals_the_models_own_logits(tokenizer):
    model = TunedLM(gpt2(tokenizer)).eval()
    assert model.fast
    batch = pad_batch([ChatFormat(tokenizer).sft(m) for m in CHATS], tokenizer.pad_token_id)
    fast = model(**batch)
    model.fast = False
    torch.testing.assert_close(model(**batch), fast, atol=1e-6, rtol=0)


# --- LoRA: adapters off is the base -------------------------------------------------------------------------

def test_adapters_disabled_computes_the_base_and_restores_training_state(tokenizer):
    from tlcli.adapters.lora import adapters_disabled, apply_lora

    base = gpt2(tokenizer).eval()
    model = copy.deepcopy(base)
    apply_lora(model, 4)
    with torch.no_grad():  # adapters that do something (PEFT starts B at zero)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    ids = torch.tensor([ChatFormat(tokenizer).sft(CHATS[0])[0]])
    adapted = model(input_ids=ids).logits
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with adapters_disabled(model):
        torch.testing.assert_close(model(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-6, rtol=0)
    assert not torch.allclose(adapted, base(input_ids=ids).logits, atol=1e-3)
    torch.testing.assert_close(model(input_ids=ids).logits, adapted, atol=0, rtol=0)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable


def test_hf_loads_a_run_folder_and_a_peft_adapter_folder(tokenizer, tiny_lm_dir, tmp_path):
    """`hf:RUN` means RUN/model; an adapter folder loads its base and merges the adapter: the same logits as
    PEFT's own PeftModel over the base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tlcli.adapters.lora import adapted_modules, apply_lora, save_adapter
    from tlcli.llm.hf import load_causal_lm, model_folder

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    apply_lora(model, 4)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "config.json").write_text("{}")  # a run's own config.json is not a model's
    (run / "events.jsonl").write_text("")
    save_adapter(model, run / "model", 4, None, 0.0, adapted_modules(model), base_model=str(tiny_lm_dir),
                 task_type="CAUSAL_LM")
    tokenizer.save_pretrained(run / "model")
    assert model_folder(str(run)) == run / "model"
    loaded_tokenizer, loaded = load_causal_lm(str(run), torch.float32)
    assert loaded_tokenizer.chat_template == tokenizer.chat_template  # the adapter folder's tokenizer
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_lm_dir), run / "model").eval()
    ids = torch.tensor([[101, 2054, 2003, 2184, 1009, 2184, 1029]])
    torch.testing.assert_close(loaded.eval()(input_ids=ids).logits, peft(input_ids=ids).logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(loaded(input_ids=ids).logits, model.eval()(input_ids=ids).logits, atol=1e-5, rtol=0)
    with pytest.raises(UsageError, match="no config.json"):
        model_folder(str(tmp_path))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "events.jsonl").write_text("")
    (tmp_path / "busy" / "config.json").write_text("{}")
    with pytest.raises(UsageError, match="without an exported language model"):
        model_folder(str(tmp_path / "busy"))
