"""`tlcli prompt-tune`: soft prompts on the real MiniLM (classify) and a tiny random GPT-2 (generate),
trained by the shared engine; equivalence with PEFT's PromptTuning."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tlcli.cli.report import summary_problems
from tlcli.runs.paths import STOP_REQUEST_FILE

SMALL = ["--virtual-tokens", "4", "--max-length", "24", "--batch-size", "10", "--epochs", "2", "--quiet",
         "--device", "cpu", "--precision", "fp32", "--init-text", "topic of the sentence"]


def test_classify_train_predict_and_saved_files(cli, few_shot_csv):
    train, test = few_shot_csv
    result = cli("prompt-tune", train, *SMALL, "--out", "run", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary["status"] == "finished" and summary["mode"] == "classify"
    assert summary["trainable_params"] == 4 * 384 + 5 * 384 + 5  # prompt + head, nothing else
    assert summary["best"]["metric"] == "val_accuracy" and summary["best"]["value"] is not None
    assert summary_problems(summary) == [] and summary["command"] == "prompt-tune train"

    saved = load_file("run/model/model.safetensors")
    assert set(saved) == {"prompt.embedding", "head.weight", "head.bias"}
    assert saved["prompt.embedding"].shape == (4, 384)
    meta = json.loads(Path("run/model/model.json").read_text())
    assert meta["kind"] == "soft-prompt" and meta["mode"] == "classify" and meta["virtual_tokens"] == 4
    for checkpoint in Path("run/checkpoints").iterdir():  # the frozen encoder is never checkpointed
        assert all(not k.startswith("base.") for k in load_file(str(checkpoint / "model.safetensors")))
    kinds = [json.loads(line)["kind"] for line in Path("run/events.jsonl").read_text().splitlines()]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end" and "eval" in kinds

    predicted = cli("prompt-tune", "predict", "run", "--input", test, "--json")
    assert predicted.exit_code == 0, predicted.stderr
    *lines, done = predicted.json_lines()
    assert summary_problems(done) == [] and done["command"] == "prompt-tune predict" and done["texts"] == 50
    assert len(lines) == 50 and set(lines[0]) == {"text", "label", "score", "top"}
    assert {line["label"] for line in lines} <= set(summary["classes"])
    assert json.loads(Path("run/model/labels.json").read_text()) == summary["classes"]


def test_stop_request_exports_then_resume_matches_uninterrupted_run(cli, few_shot_csv, monkeypatch):
    from tlcli_text.task import PromptTuneTask

    train, _ = few_shot_csv
    reference = cli("prompt-tune", train, *SMALL, "--out", "reference")
    assert reference.exit_code == 0, reference.stderr

    def request_stop(self, model, step):  # what the monitor's `s` key does, mid-run
        if step == 3:
            (self.run.path / STOP_REQUEST_FILE).write_text("")

    with monkeypatch.context() as patch:
        patch.setattr(PromptTuneTask, "on_optimizer_step", request_stop)
        stopped = cli("prompt-tune", train, *SMALL, "--out", "stopped", "--json")
    assert stopped.exit_code == 0, stopped.stderr
    assert stopped.json_lines()[-1]["status"] == "stopped" and stopped.json_lines()[-1]["steps"] == 3
    assert Path("stopped/model/model.safetensors").is_file()  # the best model so far is exported
    assert not (Path("stopped") / STOP_REQUEST_FILE).exists()

    refused = cli("prompt-tune", "--resume", "stopped", "--lr", "0.1")
    assert refused.exit_code == 2 and "--lr" in refused.stderr
    resumed = cli("prompt-tune", "--resume", "stopped", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json_lines()[-1]["status"] == "finished"
    a, b = load_file("reference/model/model.safetensors"), load_file("stopped/model/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)

    metrics = Path("stopped/metrics.json").read_text()
    finished = cli("prompt-tune", "--resume", "stopped")
    assert finished.exit_code == 0 and "already finished" in finished.stderr
    assert Path("stopped/metrics.json").read_text() == metrics


def test_generate_mode_on_tiny_gpt2(cli, tiny_gpt2_dir, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    colours = ["red", "green", "blue", "yellow"]
    pairs.write_text("".join(json.dumps({"input": f"the colour of item {i} is", "target": colours[i % 4]}) + "\n"
                             for i in range(24)))
    result = cli("prompt-tune", pairs, "--mode", "generate", "--model", tiny_gpt2_dir, "--virtual-tokens", "8",
                 "--epochs", "3", "--lr", "0.1", "--batch-size", "8", "--quiet", "--device", "cpu",
                 "--out", "gen", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary["best"]["metric"] == "val_loss" and summary["trainable_params"] == 8 * 64
    assert summary_problems(summary) == []
    losses = [json.loads(line)["data"]["metrics"]["val_loss"] for line in Path("gen/events.jsonl").read_text().splitlines()
              if json.loads(line)["kind"] == "eval"]
    assert losses[-1] < losses[0]
    predicted = cli("prompt-tune", "predict", "gen", "the colour of item 3 is", "hello", "--max-new-tokens", "3",
                    "--json")
    assert predicted.exit_code == 0, predicted.stderr
    *lines, done = predicted.json_lines()
    assert summary_problems(done) == [] and done["mode"] == "generate"
    assert [line["text"] for line in lines] == ["the colour of item 3 is", "hello"]
    assert all(isinstance(line["output"], str) and line["tokens"] <= 3 for line in lines)
    refused = cli("predict", "gen", "hello")
    assert refused.exit_code == 2 and "prompt-tune predict" in refused.stderr


def test_usage_errors(cli, few_shot_csv, tmp_path):
    train, _ = few_shot_csv
    missing = cli("prompt-tune", train, "--mode", "generate", "--model", str(tmp_path / "nope"), "--out", "gone")
    assert missing.exit_code == 2 and "no such folder" in missing.stderr
    assert not Path("gone").exists()  # failed before the run started: no run folder left behind
    bad = cli("prompt-tune", train, "--lr", "inf")
    assert bad.exit_code == 2 and "--lr" in bad.stderr
    bad = cli("prompt-tune", train, "--virtual-tokens", "0")
    assert bad.exit_code == 2 and "--virtual-tokens" in bad.stderr
    nodata = cli("prompt-tune", "--epochs", "2")
    assert nodata.exit_code == 2 and "DATA" in nodata.stderr
    wrong = cli("prompt-tune", "predict", tmp_path, "hello")
    assert wrong.exit_code == 2


# --- PEFT is the reference -------------------------------------------------------------------------------

def test_encoder_matches_peft_prompt_tuning(minilm_dir):
    peft = pytest.importorskip("peft")
    from tlcli.models.text import load_transformer_parts
    from tlcli_text.soft_prompt import PromptedEncoderClassifier, initial_prompt

    encoder, tokenizer, _ = load_transformer_parts(str(minilm_dir))
    encoder = copy.deepcopy(encoder).eval()
    prompt = initial_prompt(encoder.get_input_embeddings(), tokenizer, 6, "classify this text", seed=0)
    ours = PromptedEncoderClassifier(copy.deepcopy(encoder), prompt, 3).eval()

    config = peft.PromptTuningConfig(task_type=peft.TaskType.FEATURE_EXTRACTION, num_virtual_tokens=6,
                                     prompt_tuning_init=peft.PromptTuningInit.RANDOM)
    reference = peft.get_peft_model(copy.deepcopy(encoder), config).eval()
    with torch.no_grad():
        reference.prompt_encoder["default"].embedding.weight.copy_(prompt)

    batch = tokenizer(["The oven is hot", "Snow is falling on the hills tonight"], padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mine = ours.hidden_states(batch["input_ids"], batch["attention_mask"])
    assert mine.shape == theirs.shape == (2, 6 + batch["input_ids"].shape[1], 384)
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == 6 * 384 + 3 * 384 + 3


def test_causal_lm_matches_peft_prompt_tuning(tiny_gpt2_dir):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tlcli_text.task import collate, encode_for_generate
    from tlcli_text.soft_prompt import PromptedCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gpt2_dir))
    lm = AutoModelForCausalLM.from_pretrained(str(tiny_gpt2_dir)).eval()
    prompt = torch.randn(5, 64, generator=torch.Generator().manual_seed(1)) * 0.02
    ours = PromptedCausalLM(copy.deepcopy(lm), prompt).eval()
    config = peft.PromptTuningConfig(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=5)
    reference = peft.get_peft_model(copy.deepcopy(lm), config).eval()
    with torch.no_grad():
        reference.prompt_encoder["default"].embedding.weight.copy_(prompt)

    rows = encode_for_generate(tokenizer, [("two plus two is", "four"), ("the sky is", "blue today")], 32)
    batch = collate([{"input_ids": i, "labels": l} for i, l in rows], tokenizer.pad_token_id)
    with torch.no_grad():
        theirs = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           labels=batch["labels"])
        logits = ours(batch["input_ids"], batch["attention_mask"])
        loss = ours.loss(batch["input_ids"], batch["attention_mask"], batch["labels"])
    torch.testing.assert_close(logits, theirs.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, theirs.loss, rtol=1e-5, atol=1e-6)
