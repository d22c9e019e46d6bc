"""`tlcli sft`, `tlcli dpo` and `tlcli generate` end to end on the tiny random GPT-2 (its text is gibberish;
these runs check the mechanics: run folders, exports that load back, the reference cache, the events)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file
from support.tune import write_jsonl

from tlcli.cli.report import summary_problems

FAST = ["--epochs", "1", "--batch-size", "4", "--lr", "1e-3", "--precision", "fp32", "--device", "cpu", "--quiet",
        "--json"]


def _examples(n: int = 12) -> list[dict]:
    return [{"prompt": f"what is {a} + {a + 3}?", "completion": str(2 * a + 3)} for a in range(10, 10 + n)]


def _pairs(n: int = 10) -> list[dict]:
    return [{"prompt": f"what is {a} + 1?", "chosen": f"the answer is {a + 1}.", "rejected": str(a + 1)}
            for a in range(20, 20 + n)]


def _summary(result) -> dict:
    assert result.exit_code == 0, result.stderr[-3000:]
    summary = result.json_lines()[-1]
    assert not summary_problems(summary), summary_problems(summary)
    return summary


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def test_sft_exports_a_full_model_that_generate_and_prompt_run_load(cli, tiny_lm_dir, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", _examples())
    summary = _summary(cli("sft", data, "--model", f"hf:{tiny_lm_dir}", "--val-split", "0.25", "--out", "runs/s",
                           *FAST))
    # 9 training examples, 4 a batch: the engine drops a last batch of one (BatchNorm), so 2 steps
    assert summary["status"] == "finished" and summary["steps"] == 2
    assert summary["examples"] == {"train": 9, "val": 3, "train_rows": 9, "truncated": 0, "dropped": 0}
    assert summary["export"] == "full" and summary["chat_template"] == "plain"
    metrics = summary["metrics"]
    assert metrics["val_perplexity"] == pytest.approx(2.718281828 ** metrics["val_loss"], rel=1e-4)
    run = Path("runs/s")
    model = run / "model"
    assert {"config.json", "model.safetensors", "tokenizer.json", "model.json"} <= {p.name for p in model.iterdir()}
    assert json.loads((model / "model.json").read_text())["kind"] == "causal-lm"

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)  # transformers alone: the plain template travels along
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True) == "user: hi\nassistant:"
    assert AutoModelForCausalLM.from_pretrained(model).config.n_layer == 2

    reply = cli("generate", "runs/s", "what is 12 + 15?", "--max-tokens", "4", "--json")
    record, end = reply.json_lines()
    assert reply.exit_code == 0 and record["model"] == "hf:runs/s" and record["usage"]["completion_tokens"] >= 1
    assert end["command"] == "generate" and end["chat_template"] is True

    questions = write_jsonl(tmp_path / "q.jsonl", [{"id": "1", "question": "what is 12 + 15?"}])
    answered = cli("prompt", "run", "direct", "--input", questions, "--llm", "hf:runs/s?device=cpu", "--max-tokens",
                   "4", "--json")
    assert answered.exit_code == 0, answered.stderr[-2000:]
    assert answered.json_lines()[0]["id"] == "1"


def test_lora_sft_then_lora_dpo_with_a_cached_reference(cli, tiny_lm_dir, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", _examples())
    sft = _summary(cli("sft", data, "--model", str(tiny_lm_dir), "--lora", "4", "--packing", "--max-seq-len", "40",
                       "--out", "runs/s", *FAST))
    model = Path("runs/s/model")
    assert sft["export"] == "adapter" and sft["lora"] == 4
    assert sft["packing"] and sft["examples"]["train_rows"] < sft["examples"]["train"]  # rows of up to 40 tokens
    adapter = json.loads((model / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(Path(tiny_lm_dir).resolve()) and adapter["r"] == 4
    assert not (model / "model.safetensors").exists()
    saved = load_file(str(model / "adapter_model.safetensors"))
    assert saved and all(key.startswith("base_model.model.transformer.h.") for key in saved)
    import torch
    from transformers import AutoModelForCausalLM

    from tlcli.llm.hf import load_causal_lm

    ids = torch.tensor([[101, 2054, 2003, 2184, 1009, 2184, 1029]])
    merged = load_causal_lm("runs/s", torch.float32)[1].eval()(input_ids=ids).logits
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()(input_ids=ids).logits
    assert (merged - base).abs().max() > 1e-4  # the trained adapter is in the loaded model
    # checkpoints hold the adapters, not the frozen base
    checkpoint = next(Path("runs/s/checkpoints").glob("step-*"))
    keys = load_file(str(checkpoint / "model.safetensors")).keys()
    assert keys and all(".lora_" in key for key in keys)

    pairs = write_jsonl(tmp_path / "pairs.jsonl", _pairs())
    first = _summary(cli("dpo", pairs, "--model", "runs/s", "--lora", "4", "--val-split", "0.2", "--out", "runs/d",
                         *FAST))
    assert first["reference"]["adapters_off"] is True
    assert first["reference"]["computed"] == 10 and first["reference"]["cached"] == 0
    assert first["pairs"] == {"train": 8, "val": 2, "dropped": 0}
    assert 0.0 <= first["metrics"]["val_reward_accuracy"] <= 1.0
    steps = [e["data"] for e in _events(Path("runs/d")) if e["kind"] == "metric"]
    assert steps and all({"reward_accuracy", "reward_margin", "logps_chosen", "logps_rejected"} <= set(s) for s in steps)
    # the first step's policy is its reference (adapters start at zero, no dropout): rewards start at 0
    assert abs(steps[0]["reward_margin"]) < 1e-4 and abs(steps[0]["reward_chosen"]) < 1e-4
    again = _summary(cli("dpo", pairs, "--model", "runs/s", "--lora", "4", "--val-split", "0.2", "--out", "runs/d2",
                         *FAST))
    assert again["reference"]["cached"] == 10 and again["reference"]["computed"] == 0
    assert again["metrics"] == first["metrics"]  # the cached reference gives the same run
    # --sft-weight adds the chosen replies' NLL: at the first step DPO's own loss is log 2 in both runs
    cli("dpo", pairs, "--model", "runs/s", "--lora", "4", "--val-split", "0.2", "--out", "runs/d3", "--sft-weight",
        "1", *FAST)
    rpo = [e["data"] for e in _events(Path("runs/d3")) if e["kind"] == "metric"]
    assert abs(steps[0]["loss"] - math.log(2)) < 1e-4
    assert rpo[0]["loss"] > steps[0]["loss"] + 0.5  # a random model's NLL per token is several nats

    # DPO's adapter sits on SFT's adapter: hf: loads the chain (base, + sft, + dpo)
    chained = json.loads(Path("runs/d/model/adapter_config.json").read_text())["base_model_name_or_path"]
    assert chained == str(Path("runs/s/model").resolve())
    reply = cli("generate", "runs/d", "what is 20 + 1?", "--max-tokens", "3", "--json")
    assert reply.exit_code == 0, reply.stderr[-2000:]


def test_simpo_needs_no_reference_and_merged_export(cli, tiny_lm_dir, tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", _pairs(6))
    summary = _summary(cli("dpo", pairs, "--model", str(tiny_lm_dir), "--loss", "simpo", "--lora", "2", "--export",
                           "full", "--val-split", "0", "--out", "runs/p", *FAST))
    assert summary["reference"] is None and summary["beta"] == 2.0 and summary["export"] == "full"
    assert (Path("runs/p/model") / "model.safetensors").exists()
    assert not (Path("runs/p/model") / "adapter_config.json").exists()


@pytest.mark.parametrize("args, message", [
    (["missing.jsonl"], "no such file"),
    (["{data}", "--export", "adapter"], "--export adapter needs adapters"),
    (["{data}", "--max-seq-len", "100000"], "longer than the model's context"),
])
def test_bad_input_is_one_line_and_exit_2(cli, tiny_lm_dir, tmp_path, args, message):
    data = write_jsonl(tmp_path / "train.jsonl", _examples(4))
    args = [a.replace("{data}", str(data)) for a in args]
    result = cli("sft", *args, "--model", str(tiny_lm_dir), "--out", "runs/x", "--quiet")
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_dpo_refuses_a_reference_with_simpo(cli, tiny_lm_dir, tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", _pairs(4))
    result = cli("dpo", pairs, "--model", str(tiny_lm_dir), "--loss", "simpo", "--ref", str(tiny_lm_dir),
                 "--out", "runs/x")
    assert result.exit_code == 2 and "drop --ref" in result.stderr


def test_generate_takes_any_llm_spec_and_reads_stdin(cli, tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["a scripted reply"]))
    result = cli("generate", f"scripted:{replies}", "-", "--json", input="hello\n")
    record = result.json_lines()[0]
    assert result.exit_code == 0 and record["text"] == "a scripted reply" and record["prompt"] == "hello\n"
    streamed = cli("generate", f"scripted:{replies}", "hi")  # for people: the reply as it comes, on stdout
    assert streamed.exit_code == 0 and streamed.stdout == "a scripted reply\n"
    assert "scripted LLM" in streamed.stderr  # never passed off as a model's reply
    refused = cli("generate", f"scripted:{replies}", "hi", "--raw")
    assert refused.exit_code == 2 and "--raw" in refused.stderr
