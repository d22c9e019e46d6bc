"""``hf:MODEL_ID_OR_DIR``: a local transformers causal LM.

torch and transformers are imported inside the functions that need them, so importing this module (and
``tlcli --help``) stays cheap.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from tlcli.console.errors import UsageError
from tlcli.llm.base import (
    LLM, Generation, call_as_dict, check_messages, check_tools, cut_at_stop, cut_stream_at_stop, render_plain,
    result_from_generation, sampling_params,
)
from tlcli.llm.spec import HFSpec


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or os.path.exists(os.path.expanduser(model))


def _placement(spec: HFSpec):
    """(device, torch dtype) from the one placement resolver (tlcli.device); ``dtype=`` in the spec wins."""
    import torch

    from tlcli.device import resolve

    placement = resolve("generate", spec.device)
    dtype = getattr(torch, spec.dtype) if spec.dtype != "auto" else placement.dtype
    return placement.device, dtype


class HFLLM(LLM):
    """Loads the model once; ``generate`` and ``chat`` run batches of prompts with left padding and draw
    the ``n`` samples of every prompt in the same forward pass (``num_return_sequences``)."""

    def __init__(self, spec: HFSpec):
        self.spec = f"hf:{spec.model}"
        self.options = spec
        self.tokenizer, self.model = _load(spec)
        self.device = str(self.model.device)
        self.use_chat_template = spec.chat_template == "on" or (
            spec.chat_template == "auto" and bool(getattr(self.tokenizer, "chat_template", None))
        )
        if spec.chat_template == "on" and not getattr(self.tokenizer, "chat_template", None):
            raise UsageError(f"{self.spec}: chat_template=on but the tokenizer has no chat template; "
                             "use chat_template=auto or off")
        #: Number of times model.generate ran (benchmarks and tests read it).
        self.forward_calls = 0
        #: Positions the model has (None when its config does not say); longer inputs crash its embedding.
        self.context_length = _context_length(self.model.config)

    @property
    def formats_chats(self) -> bool:
        return self.use_chat_template

    # -- prompts ----------------------------------------------------------------------------------

    def _format(self, prompt: str) -> str:
        if not self.use_chat_template:
            return prompt
        return self.render([{"role": "user", "content": prompt}])

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        """The text the model sees for a chat: its tokenizer's chat template when it has one (tools are
        passed to the template, which may describe them), else plain ``role: content`` lines."""
        if not self.use_chat_template:
            return render_plain(messages)
        wire = [_template_message(m) for m in messages]
        try:
            return self.tokenizer.apply_chat_template(wire, tools=tools or None, add_generation_prompt=True,
                                                      tokenize=False)
        except Exception as error:  # a template is user-supplied code: report its complaint in one line
            raise UsageError(f"{self.spec}: the chat template could not render these messages "
                             f"({type(error).__name__}: {_first_line(error)}); use ?chat_template=off") from None

    # -- the interface ------------------------------------------------------------------------------

    def generate(self, prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None):
        params = sampling_params(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        return self._generate([self._format(p) for p in prompts], params)

    def chat(self, messages, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None, tools=None):
        messages = check_messages(messages)
        tools = check_tools(tools)
        params = sampling_params(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        generation = self._generate([self.render(messages, tools)], params)[0]
        return result_from_generation(generation, self.spec)

    def chat_stream(self, messages, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None, tools=None):
        """Pieces as the model produces them (transformers' streamer, generation on a worker thread)."""
        import threading

        import torch
        from transformers import TextIteratorStreamer

        messages = check_messages(messages)
        params = sampling_params(n=1, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        encoded = self._encode([self.render(messages, check_tools(tools))], params.max_tokens)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run():
            try:
                with torch.inference_mode():
                    self.model.generate(**encoded, **self._generate_kwargs(params, n=1), streamer=streamer)
            except BaseException as error:  # re-raised on the caller's thread
                failure.append(error)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        yield from cut_stream_at_stop((piece for piece in streamer if piece), params.stop)
        worker.join()
        self.forward_calls += 1
        if failure:
            raise failure[0]

    # -- batches ------------------------------------------------------------------------------------

    def _generate(self, texts: list[str], params) -> list[Generation]:
        import torch

        if params.seed is not None:
            torch.manual_seed(params.seed)
        results: list[Generation] = []
        size = self.options.batch_size
        for start in range(0, len(texts), size):
            results.extend(self._generate_batch(texts[start:start + size], params))
        return results

    def _encode(self, texts: list[str], max_new_tokens: int):
        # A chat template already writes the special tokens (BOS and the like) into the text. Only ids
        # and mask go to the model: BERT-style tokenizers (the tiny model's) add token_type_ids, which
        # GPT-2 would add to its embeddings.
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, return_token_type_ids=False,
                                 add_special_tokens=not self.use_chat_template)
        longest = int(encoded["attention_mask"].sum(dim=1).max()) if len(texts) else 0
        if self.context_length is not None and longest + max_new_tokens > self.context_length:
            # Refused as the OpenAI API refuses it, instead of an IndexError from deep inside the model.
            raise UsageError(f"{self.spec}: a prompt of {longest} tokens plus --max-tokens {max_new_tokens} is "
                             f"more than the model's context of {self.context_length} tokens; shorten the "
                             "input (fewer or shorter passages, a shorter template) or lower --max-tokens")
        return {"input_ids": encoded["input_ids"].to(self.model.device),
                "attention_mask": encoded["attention_mask"].to(self.model.device)}

    def _generate_kwargs(self, params, n: int) -> dict:
        sampling = params.temperature > 0
        kwargs = dict(max_new_tokens=params.max_tokens, num_return_sequences=n, do_sample=sampling,
                      pad_token_id=self.tokenizer.pad_token_id)
        if sampling:
            # top_k=0: only temperature and top_p shape sampling, as in the OpenAI API, whatever the
            # model's generation_config says.
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=params.stop, tokenizer=self.tokenizer)
        return kwargs

    def _generate_batch(self, texts: list[str], params) -> list[Generation]:
        import torch

        encoded = self._encode(texts, params.max_tokens)
        with torch.inference_mode():
            if params.n > 1 and self.options.share_prefill and encoded["input_ids"].shape[1] > 1:
                output = self._generate_shared_prefill(encoded, params)
            else:
                output = self.model.generate(**encoded, **self._generate_kwargs(params, params.n))
        self.forward_calls += 1
        prompt_len = encoded["input_ids"].shape[1]
        generated = output[:, prompt_len:].tolist()
        prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
        return self._decode_rows(generated, prompt_tokens, params)

    def _generate_shared_prefill(self, encoded, params):
        """``n`` samples per prompt from one prefill.

        ``num_return_sequences`` copies each prompt ``n`` times *before* the forward pass, so the prompt
        is computed ``n`` times. Here the prompt (all but its last token) runs once, its KV cache is
        repeated to ``n`` rows per prompt (the same row order: prompt i's samples are rows i*n..i*n+n-1),
        and ``generate`` continues from that cache, so its sampling, stop strings and end-of-text handling
        are unchanged; it computes only the last prompt token and the new ones.
        """
        input_ids, mask = encoded["input_ids"], encoded["attention_mask"]
        # Positions as generate computes them for left-padded rows: count only real tokens.
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        # The body only: logits over the vocabulary for every prompt position would cost more than the
        # prefill itself on a small model (and nothing reads them).
        prefix = self.model.base_model(input_ids=input_ids[:, :-1], attention_mask=mask[:, :-1],
                                       position_ids=positions[:, :-1], use_cache=True)
        cache = getattr(prefix, "cache", None) or getattr(prefix, "past_key_values", None)
        if not hasattr(cache, "batch_repeat_interleave"):
            # A model without a standard KV cache (recurrent or custom): copy the prompts instead.
            return self.model.generate(**encoded, **self._generate_kwargs(params, params.n))
        cache.batch_repeat_interleave(params.n)
        return self.model.generate(
            input_ids=input_ids.repeat_interleave(params.n, dim=0),
            attention_mask=mask.repeat_interleave(params.n, dim=0),
            **{self._cache_argument(): cache}, **self._generate_kwargs(params, 1),
        )

    def _cache_argument(self) -> str:
        """transformers 5 renamed generate's ``past_key_values`` to ``cache``; accept both."""
        import inspect

        names = inspect.signature(self.model.prepare_inputs_for_generation).parameters
        return "cache" if "cache" in names else "past_key_values"

    def _decode_rows(self, generated: list[list[int]], prompt_tokens: list[int], params) -> list[Generation]:
        """Rows ``i*n .. i*n+n-1`` are prompt ``i``'s samples."""
        eos_ids = self._eos_ids()
        pad_id = self.tokenizer.pad_token_id
        results = []
        for i, count_in_prompt in enumerate(prompt_tokens):
            rows = generated[i * params.n:(i + 1) * params.n]
            texts, counts, reasons = [], [], []
            for row in rows:
                count, ended = _completion_length(row, eos_ids, pad_id, bool(params.stop))
                text = self.tokenizer.decode(row[:count], skip_special_tokens=True)
                text, stopped = cut_at_stop(text, params.stop)
                texts.append(text)
                counts.append(count)
                reasons.append("stop" if ended or stopped or count < params.max_tokens else "length")
            results.append(Generation(texts, int(count_in_prompt), counts, reasons))
        return results

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        if eos is None:
            return set()
        return set(eos) if isinstance(eos, (list, tuple)) else {int(eos)}

    def close(self) -> None:
        self.model = None


def _context_length(config) -> int | None:
    """The model's number of positions, from the config field its architecture uses."""
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length", "max_seq_len"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _template_message(message: dict) -> dict:
    """A message as chat templates expect it: tool calls in the wire form with their arguments parsed
    (most templates print them with ``tojson``), content never None."""
    import json

    out = {k: v for k, v in message.items() if k != "tool_calls"}
    out["content"] = message.get("content") or ""
    calls = message.get("tool_calls") or []
    if calls:
        wired = []
        for call in calls:
            call = call_as_dict(call)
            try:
                arguments = json.loads(call["function"]["arguments"])
            except ValueError:
                arguments = call["function"]["arguments"]
            wired.append({**call, "function": {**call["function"], "arguments": arguments}})
        out["tool_calls"] = wired
    return out


def _completion_length(row: list[int], eos_ids: set[int], pad_id: int | None,
                       stopped_early: bool) -> tuple[int, bool]:
    """Generated tokens up to and including the first end-of-text token. A row that a stop string ended
    is padded without an end-of-text token, so there (only) trailing padding is not counted.
    Returns (count, ended with an end-of-text token)."""
    for index, token in enumerate(row):
        if token in eos_ids:
            return index + 1, True
    count = len(row)
    while stopped_early and count and pad_id is not None and row[count - 1] == pad_id:
        count -= 1
    return count, False


ADAPTER_CONFIG = "adapter_config.json"
_MAX_ADAPTER_DEPTH = 8  # an adapter's base may itself be an adapter folder (DPO on an SFT adapter); no cycles


def model_folder(model_ref: str) -> Path | None:
    """The local folder an ``hf:`` reference names, or None for a Hugging Face id.

    A folder with ``config.json`` (what ``save_pretrained`` writes) or ``adapter_config.json`` (a PEFT
    adapter) is the model; a tlcli run folder stands for its ``model/``. Anything else is a one-line error."""
    if not _looks_like_path(model_ref):
        return None
    folder = Path(os.path.expanduser(model_ref))
    if not folder.is_dir():
        raise UsageError(f"hf model folder {model_ref!r} does not exist; pass a folder with config.json "
                         "and weights (hf:./my-model), a run folder of `tlcli sft`/`tlcli dpo`, or a Hugging "
                         "Face model id")
    if (folder / "events.jsonl").is_file() and not _is_model(folder / "model"):
        raise UsageError(f"{model_ref} is a tlcli run without an exported language model (no model/ with config.json "
                         "or adapter_config.json): is it still training, or not an sft/dpo run?")
    if _is_model(folder / "model") and ((folder / "events.jsonl").is_file() or not _is_model(folder)):
        folder = folder / "model"  # a run folder (its config.json is tlcli's, not a model's): its export
    if not _is_model(folder):
        raise UsageError(f"hf model folder {model_ref!r} has no config.json (nor a PEFT adapter_config.json); "
                         "point hf: at the folder that save_pretrained() wrote")
    return folder


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / ADAPTER_CONFIG).is_file()


def adapter_base(folder: Path) -> str:
    """The base model a PEFT adapter folder was trained on (its ``base_model_name_or_path``)."""
    import json

    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{folder / ADAPTER_CONFIG}: unreadable ({type(error).__name__}); re-export the adapter") from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base, str) or not base:
        raise UsageError(f"{folder / ADAPTER_CONFIG} names no base model (base_model_name_or_path); load the base "
                         "with hf:BASE and merge the adapter, or re-export it")
    return base


def load_causal_lm(model_ref: str, dtype, trust_remote_code: bool = False, name: str | None = None):
    """(tokenizer, model) for an ``hf:`` reference: a Hugging Face id, a ``save_pretrained`` folder, a PEFT
    adapter folder (its base loaded, the adapter merged in) or a tlcli run folder. The tokenizer is the
    adapter folder's when it has one (a tuned chat template travels with the adapter), else the base's.
    Exceptions from transformers propagate (callers turn them into one line)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    chain: list[Path] = []  # adapter folders, outermost first
    source: str = model_ref
    while True:
        folder = model_folder(source)
        if folder is None or (folder / "config.json").is_file():
            source = str(folder) if folder is not None else source
            break
        if len(chain) >= _MAX_ADAPTER_DEPTH:
            raise UsageError(f"hf model {name or model_ref!r}: more than {_MAX_ADAPTER_DEPTH} adapters stacked on "
                             "one another (a loop in base_model_name_or_path?)")
        chain.append(folder)
        base = adapter_base(folder)
        if not os.path.isabs(base) and (folder / base).exists():  # a relative base is relative to the adapter
            base = str(folder / base)
        source = base
    tokenizer_source = next((str(f) for f in chain if (f / "tokenizer_config.json").is_file()), source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's pickle-protocol notes would precede our one line
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, trust_remote_code=trust_remote_code)
        for adapter in reversed(chain):  # innermost first: each was trained on the merged model below it
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return tokenizer, model


def _load(spec: HFSpec):
    from transformers.utils import logging as hf_logging

    model_folder(spec.model)  # a missing or foreign folder: one line, before importing transformers' models
    # Progress bars and advice from transformers would mix with our stderr lines.
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    device, dtype = _placement(spec)
    try:
        tokenizer, model = load_causal_lm(spec.model, dtype, spec.trust_remote_code)
    except UsageError:
        raise
    except Exception as error:  # every way a folder or id can fail to load: one line naming the fix
        raise _load_error(spec, error) from None
    if tokenizer.pad_token is None:
        # Causal LMs often have no pad token; the end-of-text token is the usual stand-in.
        if tokenizer.eos_token is None:
            raise UsageError(f"hf model {spec.model!r}: the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    # Left padding keeps every prompt's last token next to its first generated token.
    tokenizer.padding_side = "left"
    model.to(device)
    model.eval()
    return tokenizer, model


def _load_error(spec: HFSpec, error: Exception) -> UsageError:
    name = spec.model
    if type(error).__name__ == "UnpicklingError" or "Weights only load failed" in str(error):
        return UsageError(
            f"hf model {name!r}: its weights are a pickle file that does not load safely (torch.load with "
            "weights_only=True refused it), and tlcli never loads pickles any other way; use a copy saved "
            "as safetensors (save_pretrained(..., safe_serialization=True))")
    if isinstance(error, OSError):
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1: only cached models load)" if offline else ""
        return UsageError(
            f"cannot load hf model {name!r}: not a local model folder and not in the Hugging Face "
            f"cache{hint}; download it first (huggingface-cli download {name}) or pass hf:PATH "
            f"[{type(error).__name__}: {_first_line(error)}]")
    if isinstance(error, ValueError) and "trust_remote_code" in str(error):
        return UsageError(f"hf model {name!r} ships its own Python code; if you trust it, say so on the "
                          f"command line: --llm 'hf:{name}?trust_remote_code=true'")
    return UsageError(f"cannot load hf model {name!r}: {type(error).__name__}: {_first_line(error)}")


def _first_line(error: Exception) -> str:
    from tlcli.console.secrets import safe_message

    text = safe_message(str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__
