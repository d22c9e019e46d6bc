"""`tlcli text finetune` and the text classifier's files: PEFT's numbers on the real MiniLM, the engine against a
plain PyTorch loop, PEFT-format adapters that `PeftModel.from_pretrained` reads back, the merge hook, resume,
--seeds. The command runs use a tiny random BERT with MiniLM's tokenizer (tests/text/conftest.py)."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tlcli.cli.report import summary_problems
from tlcli.runs.paths import STOP_REQUEST_FILE

SMALL = ["--max-length", "32", "--batch-size", "8", "--epochs", "2", "--quiet", "--device", "cpu", "--precision",
         "fp32", "--val-split", "0.25"]
TEXTS = ["The striker scored twice before half time", "Whisk the eggs with a pinch of salt", "hi",
         "Rain is expected on Tuesday; bring an umbrella to the station, and a coat as well."]


def _contract():
    """tests/run/test_output_contract.py: the one schema of classifier lines and metrics."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "run" / "test_output_contract.py"
    spec = importlib.util.spec_from_file_location("tlcli_test_output_contract", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _batch(base, texts):
    from tlcli_text.task import collate

    rows = [{"input_ids": ids, "labels": 0} for ids in base.tokenizer.ids(texts)]
    batch = collate(rows, base.pad_id)
    return batch["input_ids"], batch["attention_mask"]


def _pooled(hidden, mask):
    real = mask.unsqueeze(-1).float()
    return F.normalize((hidden * real).sum(1) / real.sum(1), dim=1)


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    from tlcli_text.classifier import load_encoder_base

    return load_encoder_base(str(minilm_dir), 64)


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory, rows):
    """8 rows of each of the 5 topics of examples/text_transfer."""
    path = tmp_path_factory.mktemp("small") / "train.csv"
    by_label: dict[str, list[str]] = {}
    for text, label in rows:
        by_label.setdefault(label, []).append(text)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((text, label) for label, texts in sorted(by_label.items()) for text in texts[:8])
    return path


# --- PEFT is the reference (real MiniLM) -------------------------------------------------------------------

def _adapted_pair(minilm, rank=4, alpha=8):
    """Our classifier with LoRA injected, and PEFT's get_peft_model on the same encoder with the same (random,
    nonzero) adapter weights and the same head."""
    from peft import LoraConfig, get_peft_model

    from tlcli.adapters.lora import apply_lora, default_targets
    from tlcli_text.classifier import SentenceClassifier, encoder_lora_targets

    ours = SentenceClassifier(copy.deepcopy(minilm.model), 3, "mean", seed=0).eval()
    targets = apply_lora(ours, rank, alpha, targets=default_targets(ours, ["head", "encoder.pooler"]),
                         keep_training=["head"])
    relative = encoder_lora_targets(ours, targets)
    theirs = get_peft_model(copy.deepcopy(minilm.model), LoraConfig(r=rank, lora_alpha=alpha,
                                                                    target_modules=relative)).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in ours.named_parameters():
            if ".lora_" in name:
                param.normal_(std=0.05)
                theirs.get_parameter("base_model.model." + name[len("encoder."):]).copy_(param)
    head = copy.deepcopy(ours.head)
    return ours, theirs, head, relative


def test_lora_forward_and_backward_equal_peft_on_minilm(minilm):
    ours, theirs, head, targets = _adapted_pair(minilm)
    # Attention and feed-forward linears of all 6 layers; not the pooler mean pooling never reads.
    assert len(targets) == 36 and not any("pooler" in t for t in targets)
    ids, mask = _batch(minilm, TEXTS)
    labels = torch.tensor([0, 1, 2, 1])
    loss_ours = F.cross_entropy(ours(ids, mask), labels)
    loss_theirs = F.cross_entropy(head(_pooled(theirs(input_ids=ids, attention_mask=mask).last_hidden_state, mask)),
                                  labels)
    loss_ours.backward()
    loss_theirs.backward()
    torch.testing.assert_close(loss_ours, loss_theirs, rtol=0, atol=1e-6)
    checked = 0
    for name, param in ours.named_parameters():
        if ".lora_" in name:
            other = theirs.get_parameter("base_model.model." + name[len("encoder."):])
            torch.testing.assert_close(param.grad, other.grad, rtol=0, atol=1e-6)
            checked += 1
    assert checked == 72
    torch.testing.assert_close(ours.head.weight.grad, head.weight.grad, rtol=0, atol=1e-6)
    # The frozen base gets no gradient at all (out of the optimizer and of DDP's buckets).
    assert all(p.grad is None for n, p in ours.named_parameters() if ".lora_" not in n and not n.startswith("head."))


def test_merged_equals_unmerged_and_peft_merge(minilm):
    from tlcli.adapters.lora import adapter_state, merge_lora
    from tlcli_text.classifier import encoder_tensors, merged_encoder_tensors

    ours, theirs, _, targets = _adapted_pair(minilm, rank=8, alpha=16)
    ids, mask = _batch(minilm, TEXTS)
    with torch.no_grad():
        unmerged = ours.features(ids, mask)
        merged_model = merge_lora(copy.deepcopy(ours))
        torch.testing.assert_close(merged_model.features(ids, mask), unmerged, rtol=0, atol=1e-5)
        # tlcli's merge on the tensors alone (what predict and `tlcli merge` use) equals PEFT's merge_and_unload.
        config = {"r": 8, "lora_alpha": 16}
        state = {f"base_model.model.{k}": v for k, v in adapter_state(ours.get_submodule("encoder")).items()}
        base = load_file(str(minilm.layout.folder / "model.safetensors"))
        ours_merged = merged_encoder_tensors(base, config, state)
        peft_merged = theirs.merge_and_unload().state_dict()
        for key, value in peft_merged.items():
            torch.testing.assert_close(ours_merged[key], value, rtol=0, atol=1e-6)
        assert set(encoder_tensors(merged_model)) <= set(ours_merged)


# --- the engine against a plain loop (tiny BERT) ------------------------------------------------------------

def test_full_finetuning_equals_a_plain_pytorch_loop(tiny_bert_dir, small_csv, tmp_path):
    from tlcli.engine.loop import EpochBatches, fit
    from tlcli_text.classifier import SentenceClassifier
    from tlcli_text.config import TextFinetuneConfig
    from tlcli_text.finetune import TextFinetuneTask, encoder_base, split_samples, tokenized
    from tlcli_text.task import collate

    cfg = TextFinetuneConfig(data=str(small_csv), model=str(tiny_bert_dir), epochs=2, batch_size=8, lr=1e-2,
                             encoder_lr_factor=0.1, weight_decay=0.01, scheduler="constant", warmup=0,
                             clip_grad=None, val_split=0, device="cpu", precision="fp32", seed=3)
    train, _, classes = split_samples(cfg)
    base = encoder_base(cfg.model, cfg.max_length)
    data = tokenized(base, train, {c: i for i, c in enumerate(classes)})

    class Kept(TextFinetuneTask):
        def export(self, model, run_dir, result):
            self.trained = model

    task = Kept(cfg, base, classes, data, None)
    result = fit(task, cfg, tmp_path / "run")
    assert result.steps == 10

    model = SentenceClassifier(copy.deepcopy(base.model), len(classes), "mean", seed=3)
    model.encoder.pooler.requires_grad_(False)
    groups = {(part, plain): [] for part in ("encoder", "head") for plain in (False, True)}
    for name, param in model.named_parameters():
        if param.requires_grad:
            plain = param.ndim == 1 or "LayerNorm" in name
            groups[("head" if name.startswith("head.") else "encoder", plain)].append(param)
    optimizer = torch.optim.AdamW([{"params": params, "lr": 1e-2 if part == "head" else 1e-3,
                                    "weight_decay": 0.0 if plain else 0.01}
                                   for (part, plain), params in groups.items()], betas=(0.9, 0.999))
    sampler = EpochBatches(len(data), 8, seed=3)
    model.train()
    for epoch in range(2):
        for batch in sampler.batches(epoch):
            b = collate([data[i] for i, _ in batch], base.pad_id)
            F.cross_entropy(model(b["input_ids"], b["attention_mask"]), b["labels"]).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    trained = task.trained.state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(trained[key], value, rtol=0, atol=1e-5)
    assert not torch.equal(trained["encoder.embeddings.LayerNorm.weight"],
                           base.model.state_dict()["embeddings.LayerNorm.weight"])  # the encoder did train


# --- the command, its files, predict, merge ------------------------------------------------------------------

def _peft_features(base_dir, adapter_dir, texts, max_length=32):
    from peft import PeftModel
    from transformers import AutoModel

    from tlcli_text.classifier import load_encoder_base

    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(base_dir)), str(adapter_dir)).eval()
    ids, mask = _batch(load_encoder_base(str(base_dir), max_length), texts)
    with torch.no_grad():
        return _pooled(peft_model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)


def _hf_features(folder, texts, max_length=32):
    from transformers import AutoModel

    from tlcli_text.classifier import load_encoder_base

    model = AutoModel.from_pretrained(str(folder)).eval()
    ids, mask = _batch(load_encoder_base(str(folder), max_length), texts)
    with torch.no_grad():
        return _pooled(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)


def _probabilities(features, model_dir):
    head = load_file(str(Path(model_dir) / "model.safetensors"))
    return torch.softmax(features @ head["head.weight"].T + head["head.bias"], dim=1)


def test_lora_run_writes_a_peft_adapter_that_peft_loads(cli, tiny_bert_dir, small_csv, tmp_path):
    from tlcli_text.predictors import load_text_classifier, merge_adapters

    result = cli("text", "finetune", small_csv, "--model", tiny_bert_dir, *SMALL, "--lora", "2", "--lr", "0.05",
                 "--out", "lora", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary_problems(summary) == [] and summary["command"] == "text finetune"
    # adapters: 6 linears x 2 layers, rank 2 (A: 2 x in, B: out x 2); head: 32 x 5 + 5
    linears = [(32, 32)] * 4 + [(32, 64), (64, 32)]
    assert summary["trainable_params"] == 2 * sum(2 * (i + o) for i, o in linears) + 32 * 5 + 5
    model_dir = Path("lora/model")
    assert sorted(p.name for p in model_dir.iterdir()) == ["adapter", "labels.json", "model.json", "model.safetensors",
                                                          "preprocessing.json"]
    assert set(load_file(str(model_dir / "model.safetensors"))) == {"head.weight", "head.bias"}
    config = json.loads((model_dir / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 2 and config["lora_alpha"] == 4
    assert config["base_model_name_or_path"] == str(Path(tiny_bert_dir).resolve())
    assert json.loads((model_dir / "model.json").read_text())["kind"] == "text-classifier"
    assert (model_dir / "adapter" / "adapter_model.safetensors").is_file()

    # PEFT rebuilds the trained encoder; tlcli's predictions are its features through the head.
    peft = _peft_features(tiny_bert_dir, model_dir / "adapter", TEXTS)
    predictor = load_text_classifier(model_dir, "cpu")
    assert predictor.labels == summary["classes"]
    ours = torch.from_numpy(predictor.features(TEXTS))
    torch.testing.assert_close(ours, peft, rtol=0, atol=1e-5)
    probabilities = predictor.predict_texts(TEXTS)
    torch.testing.assert_close(torch.from_numpy(probabilities), _probabilities(peft, model_dir), rtol=0, atol=1e-5)
    assert not torch.allclose(peft, _hf_features(tiny_bert_dir, TEXTS), atol=1e-4)  # the adapters changed it

    # The merge hook: a full-run layout whose encoder/ transformers loads, predicting as the adapter run.
    merge_adapters(model_dir, tmp_path / "merged")
    merged_dir = tmp_path / "merged"
    assert (merged_dir / "encoder" / "config.json").is_file() and not (merged_dir / "adapter").exists()
    torch.testing.assert_close(_hf_features(merged_dir / "encoder", TEXTS), peft, rtol=0, atol=1e-5)
    merged = load_text_classifier(merged_dir, "cpu")
    assert merged.labels == predictor.labels
    torch.testing.assert_close(torch.from_numpy(merged.predict_texts(TEXTS)), torch.from_numpy(probabilities),
                               rtol=0, atol=1e-5)
    assert json.loads((merged_dir / "model.json").read_text())["merged_from"]["lora"]["rank"] == 2

    # `tlcli predict` and `tlcli evaluate` read it like any run, and write the output contract.
    contract = _contract()
    predicted = cli("predict", "lora", *TEXTS[:2], "--json")
    assert predicted.exit_code == 0, predicted.stderr
    lines = predicted.json_lines()[:-1]
    assert [line["text"] for line in lines] == TEXTS[:2]
    assert lines[0]["score"] == pytest.approx(float(probabilities[0].max()), abs=1e-5)
    for line in lines:
        contract.check_classifier_line({"path": "", **{k: v for k, v in line.items() if k != "text"}})
    evaluated = cli("evaluate", "lora", small_csv, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert contract.check_output(evaluated.stdout)[1] >= 1
    assert set(evaluated.json_lines()[-1]["metrics"]) >= {"accuracy", "per_class"}


def test_full_run_exports_a_plain_hugging_face_encoder(cli, tiny_bert_dir, small_csv):
    from sentence_transformers import SentenceTransformer

    from tlcli_text.predictors import load_text_classifier, merge_adapters

    result = cli("text", "finetune", small_csv, "--model", tiny_bert_dir, *SMALL, "--out", "full", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    pooler = 32 * 32 + 32  # frozen: mean pooling never reads it
    assert summary["trainable_params"] == summary["total_params"] - pooler and summary["lora"] is None
    encoder = Path("full/model/encoder")
    assert {"config.json", "model.safetensors", "tokenizer.json", "modules.json", "sentence_bert_config.json"} <= \
        {p.name for p in encoder.iterdir()}
    assert json.loads((encoder / "sentence_bert_config.json").read_text())["max_seq_length"] == 32
    hf = _hf_features(encoder, TEXTS)
    assert not torch.allclose(hf, _hf_features(tiny_bert_dir, TEXTS), atol=1e-4)  # the encoder trained
    st = SentenceTransformer(str(encoder), device="cpu").encode(TEXTS, convert_to_tensor=True,
                                                                normalize_embeddings=True)
    torch.testing.assert_close(st, hf, rtol=0, atol=1e-5)
    predictor = load_text_classifier(Path("full"), "cpu")
    torch.testing.assert_close(torch.from_numpy(predictor.predict_texts(TEXTS)), _probabilities(hf, "full/model"),
                               rtol=0, atol=1e-5)
    from tlcli.console.errors import UsageError

    with pytest.raises(UsageError, match="no adapters to merge"):
        merge_adapters(Path("full/model"), Path("merged"))


def test_stop_then_resume_with_lora_matches_an_uninterrupted_run(cli, tiny_bert_dir, small_csv, monkeypatch):
    from tlcli_text.finetune import TextFinetuneTask

    args = [small_csv, "--model", tiny_bert_dir, *SMALL, "--epochs", "3", "--lora", "2", "--lr", "0.05"]
    reference = cli("text", "finetune", *args, "--out", "reference")
    assert reference.exit_code == 0, reference.stderr

    def request_stop(self, model, step):  # what the monitor's `s` key does, mid-run
        if step == 4:
            (self.run.path / STOP_REQUEST_FILE).write_text("")

    with monkeypatch.context() as patch:
        patch.setattr(TextFinetuneTask, "on_optimizer_step", request_stop)
        stopped = cli("text", "finetune", *args, "--out", "stopped", "--json")
    assert stopped.exit_code == 0, stopped.stderr
    assert stopped.json_lines()[-1]["status"] == "stopped" and stopped.json_lines()[-1]["steps"] == 4
    resumed = cli("text", "finetune", "--resume", "stopped", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json_lines()[-1]["status"] == "finished"
    for name in ("model.safetensors", "adapter/adapter_model.safetensors"):
        a, b = load_file(f"reference/model/{name}"), load_file(f"stopped/model/{name}")
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a), name


def test_seeds_train_one_run_each_and_report_mean_and_std(cli, tiny_bert_dir, small_csv):
    result = cli("text", "finetune", small_csv, "--model", tiny_bert_dir, *SMALL, "--lora", "2", "--max-steps", "2",
                 "--seeds", "1,2", "--out", "set", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary_problems(summary) == [] and summary["status"] == "finished"
    assert [s["seed"] for s in summary["seeds"]] == [1, 2]
    values = [s["best"]["value"] for s in summary["seeds"]]
    assert summary["mean"] == pytest.approx(sum(values) / 2, abs=1e-6)
    for seed in (1, 2):
        assert Path(f"set/seed-{seed}/model/adapter/adapter_config.json").is_file()
        assert json.loads(Path(f"set/seed-{seed}/config.json").read_text())["seed"] == seed
    a, b = (load_file(f"set/seed-{s}/model/model.safetensors") for s in (1, 2))
    assert not torch.equal(a["head.weight"], b["head.weight"])  # each seed initialises its own head


def test_usage_errors(cli, tiny_bert_dir, small_csv, tmp_path):
    (tmp_path / "notbert").mkdir()
    wrong = cli("text", "finetune", small_csv, "--model", tmp_path / "notbert", "--out", "gone")
    assert wrong.exit_code == 2 and "--model" in wrong.stderr and not Path("gone").exists()
    nothing = cli("text", "finetune", small_csv, "--model", tiny_bert_dir, *SMALL, "--lora", "2", "--lora-targets",
                  "no_such_layer", "--out", "gone")
    assert nothing.exit_code == 2 and "matched nothing" in nothing.stderr and "Traceback" not in nothing.stderr
    bad = cli("text", "finetune", small_csv, "--seeds", "1,1")
    assert bad.exit_code == 2 and "--seeds" in bad.stderr
    bad = cli("text", "finetune", small_csv, "--encoder-lr-factor", "2")
    assert bad.exit_code == 2 and "--encoder-lr-factor" in bad.stderr


def test_help_lists_the_training_and_adapter_flags(cli):
    from support.runs import TRAINING_FLAGS

    result = cli("text", "finetune", "--help")
    assert result.exit_code == 0, result.stderr
    for flag in TRAINING_FLAGS + ("--seeds", "--lora", "--lora-alpha", "--lora-dropout", "--lora-targets",
                                  "--encoder-lr-factor", "--val", "--val-split", "--max-length"):
        assert flag in result.stdout, flag


def test_minilm_adapter_loads_in_peft_and_reproduces_tlcli(cli, minilm_dir, small_csv):
    """The real all-MiniLM-L6-v2, two steps: PeftModel.from_pretrained(AutoModel.from_pretrained(MiniLM),
    RUN/model/adapter) gives tlcli's encoder outputs, and tlcli's predictions, to 1e-5."""
    from tlcli_text.predictors import load_text_classifier

    result = cli("text", "finetune", small_csv, "--lora", "4", "--max-steps", "2", "--lr", "0.05",
                 "--max-length", "32", "--batch-size", "8", "--quiet", "--device", "cpu", "--precision", "fp32",
                 "--out", "minilm", "--json")
    assert result.exit_code == 0, result.stderr
    config = json.loads(Path("minilm/model/adapter/adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    peft = _peft_features(minilm_dir, "minilm/model/adapter", TEXTS)
    predictor = load_text_classifier(Path("minilm"), "cpu")
    torch.testing.assert_close(torch.from_numpy(predictor.features(TEXTS)), peft, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(predictor.predict_texts(TEXTS)), _probabilities(peft, "minilm/model"),
                               rtol=0, atol=1e-5)


@pytest.mark.slow
def test_ddp_on_gloo_matches_single_process(tiny_bert_dir, small_csv, tmp_path):
    """torchrun with two CPU processes, half the batch each: the same adapters and head as one process."""
    import os
    import subprocess
    import sys

    common = ["text", "finetune", str(small_csv), "--model", str(tiny_bert_dir), *SMALL, "--lora", "2", "--lr", "0.05",
              "--workers", "0"]
    env = {**os.environ, "TLCLI_PLUGINS": "text", "OMP_NUM_THREADS": "1", "TLCLI_HOME": str(tmp_path / "home")}

    def run(*args):
        done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]

    run("-m", "tlcli", *common, "--batch-size", "8", "--out", str(tmp_path / "single"))
    run("-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531", "-m", "tlcli", *common,
        "--batch-size", "4", "--out", str(tmp_path / "ddp"))
    for name in ("model.safetensors", "adapter/adapter_model.safetensors"):
        one, two = (load_file(str(tmp_path / run_dir / "model" / name)) for run_dir in ("single", "ddp"))
        assert set(one) == set(two)
        for key in one:
            torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
    events = [json.loads(line) for line in (tmp_path / "ddp" / "events.jsonl").read_text().splitlines()]
    assert events[0]["data"]["world_size"] == 2
