"""The jobs of `tlcli sft`, `tlcli dpo` and `tlcli generate`: data, model, the engine, the summary."""

from __future__ import annotations

import functools
import sys
import time

from tlcli.console.errors import UsageError
from tlcli_tune.config import DPOConfig, GenerateConfig, SFTConfig, TuneOptions

DEFAULT_MAX_SEQ_LEN = 1024


def _max_seq_len(cfg: TuneOptions, context: int | None) -> int:
    if cfg.max_seq_len is None:
        return min(context or DEFAULT_MAX_SEQ_LEN, DEFAULT_MAX_SEQ_LEN)
    if context is not None and cfg.max_seq_len > context:
        raise UsageError(f"--max-seq-len {cfg.max_seq_len} is longer than the model's context of {context} tokens; "
                         f"pass at most {context}")
    return cfg.max_seq_len


def _split(cfg: TuneOptions, items: list, read) -> tuple[list, list]:
    from tlcli_tune.data import split

    if cfg.val:
        return items, read(cfg.val, "--val")
    return split(items, cfg.val_split, cfg.seed)


def _prepared(cfg: TuneOptions, report):
    """The model (fp32, CPU), its tokenizer prepared for chats, and the sequence length."""
    from tlcli_tune.chat import ChatFormat, prepare_tokenizer
    from tlcli_tune.model import load_model

    report.info(f"loading {cfg.model}")
    loaded = load_model(cfg.model)
    template = prepare_tokenizer(loaded.tokenizer, loaded.model.config, cfg.chat_template)
    if template == "plain":
        report.info("chat template: tlcli's plain one (`role: content` lines), written into the exported tokenizer")
    return loaded, ChatFormat(loaded.tokenizer), template, _max_seq_len(cfg, loaded.context)


def _fit(task, cfg, run, report, command: str):
    from tlcli.engine.callbacks import standard_callbacks
    from tlcli.engine.loop import fit

    return fit(task, cfg, run, callbacks=standard_callbacks(run, command, "tune", report.progress_quiet),
               resume=run.resumed)


def _usage_hint(run, report) -> None:
    from tlcli.console.output import display_path

    if (run.path / "model").is_dir():
        report.info(f"try it: tlcli generate {display_path(run.path)} \"...\"  (or --llm hf:{display_path(run.path)} "
                    "in prompt run, rag ask, agents solve)")


# --- sft ---------------------------------------------------------------------------------------------

def sft_rows(fmt, chats: list[list[dict]], max_seq_len: int) -> tuple[list[tuple[list[int], list[int]]], dict]:
    """``(ids, labels)`` per chat, cut to ``max_seq_len`` (the end goes); chats left with no label token are
    dropped. Returns the rows and counts of what was cut or dropped."""
    from tlcli_tune.chat import IGNORE

    rows, cut, dropped = [], 0, 0
    for messages in chats:
        ids, labels = fmt.sft(messages)
        if len(ids) > max_seq_len:
            cut += 1
            ids, labels = ids[:max_seq_len], labels[:max_seq_len]
        if all(label == IGNORE for label in labels[1:]):
            dropped += 1
            continue
        rows.append((ids, labels))
    return rows, {"truncated": cut, "dropped": dropped}


def run_sft(cfg: SFTConfig, run, report) -> dict:
    """`tlcli sft`: supervised fine-tuning on chats, the loss on the assistant's tokens only."""
    from tlcli_tune.data import read_sft
    from tlcli_tune.task import SFTTask

    started = time.time()
    train_chats, val_chats = _split(cfg, read_sft(cfg.data), read_sft)
    loaded, fmt, template, max_seq_len = _prepared(cfg, report)
    train, train_cut = sft_rows(fmt, train_chats, max_seq_len)
    val, val_cut = sft_rows(fmt, val_chats, max_seq_len)
    for what, counts in (("training", train_cut), ("validation", val_cut)):
        if counts["truncated"] or counts["dropped"]:
            report.warn(f"{counts['truncated']} {what} examples were cut to --max-seq-len {max_seq_len} tokens; "
                        f"{counts['dropped']} had no reply token left and were dropped")
    if len(train) < 1:
        raise UsageError("no training example has a reply within --max-seq-len; raise it or check the data")
    task = SFTTask(cfg, loaded, run, train, val, max_seq_len, template)
    result = _fit(task, cfg, run, report, "sft")
    tokens = task.train_tokens()
    summary = {
        **result.summary(),
        "train_tokens_per_s": round(result.samples_per_s * task.tokens_per_row(), 1),
        "examples": {"train": len(train), "val": len(val), "train_rows": len(task.train_rows),
                     "truncated": train_cut["truncated"] + val_cut["truncated"],
                     "dropped": train_cut["dropped"] + val_cut["dropped"]},
        "train_tokens": tokens, "max_seq_len": max_seq_len, "packing": cfg.packing, "chat_template": template,
        "model": cfg.model, "lora": cfg.lora, "export": getattr(task, "layout", None),
        "wall_s": round(time.time() - started, 2),
    }
    _usage_hint(run, report)
    return summary


# --- dpo ---------------------------------------------------------------------------------------------

def pair_rows(fmt, pairs, max_seq_len: int) -> tuple[list[tuple[list[int], list[int], list[int]]], int]:
    """``(prompt, chosen, rejected)`` ids per pair; prompt + completion cut to ``max_seq_len`` at the end
    (TRL's ``keep_start``), and pairs whose prompt alone fills it dropped. Returns the rows and the number
    dropped."""
    rows, dropped = [], 0
    for pair in pairs:
        prompt, chosen, rejected = fmt.pair(pair)
        room = max_seq_len - len(prompt)
        if room <= 0:
            dropped += 1
            continue
        rows.append((prompt, chosen[:room], rejected[:room]))
    return rows, dropped


def _reference(cfg: DPOConfig, loaded, template: str, report, stats: dict):
    """What the task calls once with the policy (as it starts) and the pair ids: (train, val) reference
    log-probs. None for SimPO (no reference)."""
    if cfg.loss == "simpo":
        return None

    def compute(policy, train_pairs, val_pairs):
        import torch

        from tlcli.engine.device import resolve_device, resolve_precision
        from tlcli_tune.model import TunedLM, files_key, load_model
        from tlcli_tune.reference import ReferenceCache, reference_logps
        from tlcli_tune.task import collate_pairs

        device = resolve_device(cfg.device)
        precision = resolve_precision(cfg.precision, device)  # the policy's: log-ratios start at 0
        collate = functools.partial(collate_pairs, pad_id=loaded.tokenizer.pad_token_id)
        started = time.time()
        if cfg.ref:
            ref = load_model(cfg.ref, "--ref")
            if ref.tokenizer.get_vocab() != loaded.tokenizer.get_vocab():
                raise UsageError(f"--ref {cfg.ref}: its tokenizer differs from --model's; the reference must "
                                 "share the policy's vocabulary")
            model, base, source = TunedLM(ref.model).to(device), False, ref.source
        else:  # the policy as it starts; under LoRA, its base (adapters off), with no second copy
            model, base, source = policy, bool(cfg.lora), loaded.source
        cache = ReferenceCache(files_key(source), precision, {"reference": source, "chat_template": template,
                                                              "precision": precision}, cfg.cache)
        args = (cache, collate, device, cfg.eval_batch_size, base, stats, precision)
        train = reference_logps(model, train_pairs, *args)
        val = reference_logps(model, val_pairs, *args)
        del model
        if cfg.ref and device.type == "cuda":
            torch.cuda.empty_cache()
        stats["seconds"] = round(time.time() - started, 3)
        report.info(f"reference log-probs: {stats.get('cached', 0)} cached, {stats.get('computed', 0)} computed "
                    f"({stats['seconds']:.1f}s)")
        return train, val

    return compute


def run_dpo(cfg: DPOConfig, run, report) -> dict:
    """`tlcli dpo`: preference tuning (DPO, IPO or SimPO) on chosen/rejected pairs."""
    from tlcli_tune.data import read_pairs
    from tlcli_tune.task import DPOTask

    started = time.time()
    train_pairs, val_pairs = _split(cfg, read_pairs(cfg.pairs), read_pairs)
    loaded, fmt, template, max_seq_len = _prepared(cfg, report)
    train, train_dropped = pair_rows(fmt, train_pairs, max_seq_len)
    val, val_dropped = pair_rows(fmt, val_pairs, max_seq_len)
    if train_dropped or val_dropped:
        report.warn(f"{train_dropped + val_dropped} pairs whose prompt alone fills --max-seq-len {max_seq_len} were "
                    "dropped")
    if not train:
        raise UsageError("no preference pair fits --max-seq-len; raise it or check the data")
    stats: dict = {}
    task = DPOTask(cfg, loaded, run, train, val, max_seq_len, template, _reference(cfg, loaded, template, report, stats))
    result = _fit(task, cfg, run, report, "dpo")
    summary = {
        **result.summary(),
        "loss": cfg.loss, "beta": cfg.beta, "simpo_gamma": cfg.simpo_gamma if cfg.loss == "simpo" else None,
        "pairs": {"train": len(train), "val": len(val), "dropped": train_dropped + val_dropped},
        "reference": None if cfg.loss == "simpo" else {
            "model": cfg.ref or cfg.model, "adapters_off": bool(cfg.lora) and not cfg.ref,
            "cached": stats.get("cached", 0), "computed": stats.get("computed", 0), "seconds": stats.get("seconds")},
        "max_seq_len": max_seq_len, "chat_template": template, "model": cfg.model, "lora": cfg.lora,
        "export": getattr(task, "layout", None), "wall_s": round(time.time() - started, 2),
    }
    _usage_hint(run, report)
    return summary


# --- generate ----------------------------------------------------------------------------------------

def model_spec(model: str, raw: bool) -> str:
    """``hf:MODEL`` for a run folder or a model folder; a spec with a scheme (``hf:``, ``openai:``, ...) as it
    is. ``raw`` turns an hf: model's chat template off."""
    from tlcli.llm.spec import BUILTIN_SCHEMES

    scheme = model.split(":", 1)[0]
    spec = model if ":" in model and scheme in BUILTIN_SCHEMES else f"hf:{model}"
    if raw:
        if not spec.startswith("hf:"):
            raise UsageError("--raw turns off an hf: model's chat template; other backends format chats themselves")
        spec += ("&" if "?" in spec else "?") + "chat_template=off"
    return spec


def generate(cfg: GenerateConfig, run, report) -> dict:
    """`tlcli generate`: one reply of a tuned model (or any --llm spec), streamed on a terminal."""
    from tlcli.llm import resolve_llm

    prompt = sys.stdin.read() if cfg.prompt == "-" else cfg.prompt
    if not prompt.strip():
        raise UsageError("the prompt is empty; pass the text to answer (or '-' with it on stdin)")
    spec = model_spec(cfg.model, cfg.raw)
    llm = resolve_llm(spec)
    scripted = bool(getattr(llm, "scripted", False))
    if scripted:
        report.info("the reply comes from a scripted LLM (canned replies), not a model")
    temperature = 0.0 if cfg.temperature is None else cfg.temperature
    max_tokens = cfg.max_tokens or 256
    seed = cfg.seed if temperature > 0 else None
    messages = ([{"role": "system", "content": cfg.system}] if cfg.system else []) + [{"role": "user", "content": prompt}]
    usage = None
    if cfg.raw and cfg.system:
        raise UsageError("--system needs the chat template: drop --raw, or write the system text into the prompt")
    if report.for_people:
        pieces = (llm.stream(prompt, temperature=temperature, max_tokens=max_tokens, seed=seed) if cfg.raw else
                  llm.chat_stream(messages, temperature=temperature, max_tokens=max_tokens, seed=seed))
        text = report.stream(pieces)
    elif cfg.raw:
        generation = llm.generate([prompt], 1, temperature, 1.0, max_tokens, None, seed)[0]
        text, usage = generation.texts[0], {"prompt_tokens": generation.prompt_tokens,
                                            "completion_tokens": generation.completion_tokens[0]}
    else:
        result = llm.chat(messages, n=1, temperature=temperature, max_tokens=max_tokens, seed=seed)
        text, usage = result.text, {"prompt_tokens": result.usage.prompt_tokens,
                                    "completion_tokens": result.usage.completion_tokens}
    report.record({"model": spec, "prompt": prompt, "text": text, "usage": usage, "scripted": scripted})
    return {"model": spec, "scripted": scripted, "chat_template": not cfg.raw and getattr(llm, "formats_chats", False),
            "temperature": temperature, "max_tokens": max_tokens}
