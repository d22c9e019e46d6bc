"""Chats as token ids for training: the chat template, which tokens learn, and preference pairs.

The template is the model's own when its tokenizer has one; otherwise tlcli's plain template
(:data:`PLAIN_TEMPLATE`), which is written into the exported tokenizer so that every later use of the
model (``tlcli generate``, ``--llm hf:RUN/model``, transformers, vLLM) prompts it exactly as it was trained::

    system: You are terse.
    user: What is 2 + 2?
    assistant: 4<eos>

A prompt for generation ends with ``assistant:``; the model continues with the reply and its end-of-text
token. It is the text tlcli's ``hf:`` backend writes for a model without a template (``render_plain``).

Which tokens learn (SFT's assistant-only loss): a template with ``{% generation %}`` blocks (the plain one
has them) marks them itself (transformers' ``return_assistant_tokens_mask``, what TRL's
``assistant_only_loss`` uses); for any other template each assistant turn is the tokens between the chat
before it, rendered with the generation prompt, and the chat up to and including it (TRL's rule for a
prompt/completion pair, turn by turn). Preference pairs are split as TRL's DPOTrainer splits them.
"""

from __future__ import annotations

import re

from tlcli.console.errors import UsageError
from tlcli_tune.data import Pair

IGNORE = -100  # the label of a token that does not learn (PyTorch's cross-entropy ignore_index)

# One line, whitespace controlled: the text is exactly "role: content" lines joined by newlines, each
# assistant reply followed by the end-of-text token.
PLAIN_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if not loop.first -%}{{ '\\n' }}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ 'assistant:' }}{% generation %}{{ ' ' + message['content'] + eos_token }}{% endgeneration %}"
    "{%- else -%}"
    "{{ message['role'] + ': ' + message['content'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{%- if messages -%}{{ '\\n' }}{%- endif -%}{{ 'assistant:' }}{%- endif -%}"
)
_GENERATION_BLOCK = re.compile(r"\{%-?\s*generation\s*-?%\}")


def common_prefix_length(ids: list[int], other: list[int]) -> int:
    length = 0
    for a, b in zip(ids, other):
        if a != b:
            break
        length += 1
    return length


def prepare_tokenizer(tokenizer, config=None, template: str = "auto") -> str:
    """Give the tokenizer what training and the export need, in place: an end-of-text token (the model
    config's when the tokenizer names none, as BERT-style tokenizers do), a pad token (the end-of-text token
    when it has none) and a chat template (``auto``: its own, else the plain one; ``plain``: the plain one).
    Returns where the template came from: ``model`` or ``plain``."""
    if tokenizer.eos_token is None:
        eos_id = getattr(config, "eos_token_id", None) if config is not None else None
        if isinstance(eos_id, (list, tuple)):
            eos_id = eos_id[0] if eos_id else None
        if eos_id is None:
            raise UsageError("the model's tokenizer has no end-of-text token and its config names none "
                             "(eos_token_id): a tuned model could never learn to stop; use another model")
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(int(eos_id))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if template == "plain" or not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_TEMPLATE
        return "plain"
    return "model"


class ChatFormat:
    """Token ids of chats for one (prepared) tokenizer."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.template = tokenizer.chat_template
        self.marked = bool(_GENERATION_BLOCK.search(self.template or ""))

    def _apply(self, messages: list[dict], generation_prompt: bool = False, mask: bool = False):
        try:
            out = self.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                     add_generation_prompt=generation_prompt,
                                                     return_assistant_tokens_mask=mask)
        except Exception as error:  # a template is user-supplied code: its complaint in one line
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UsageError(f"the chat template could not render an example ({type(error).__name__}: "
                             f"{first[:200]}); fix the data or pass --chat-template plain") from None
        return out

    def ids(self, messages: list[dict], generation_prompt: bool = False) -> list[int]:
        return list(self._apply(messages, generation_prompt)["input_ids"])

    def sft(self, messages: list[dict]) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)``: labels are the ids on assistant tokens, IGNORE elsewhere."""
        if self.marked:
            out = self._apply(messages, mask=True)
            ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        else:
            ids = self.ids(messages)
            mask = [0] * len(ids)
            for i, message in enumerate(messages):
                if message["role"] != "assistant":
                    continue
                start = common_prefix_length(self.ids(messages[:i], generation_prompt=True), ids) if i else 0
                end = common_prefix_length(self.ids(messages[: i + 1]), ids)
                mask[start:end] = [1] * max(0, end - start)
        return ids, [token if keep else IGNORE for token, keep in zip(ids, mask)]

    def pair(self, pair: Pair) -> tuple[list[int], list[int], list[int]]:
        """``(prompt_ids, chosen_ids, rejected_ids)`` as TRL's DPOTrainer tokenizes a conversational pair:
        the prompt with the generation prompt, each whole chat, and the completion starting where the
        tokenised prompt and both chats stop agreeing."""
        prompt = self.ids(pair.prompt, generation_prompt=True)
        chosen = self.ids(pair.prompt + pair.chosen)
        rejected = self.ids(pair.prompt + pair.rejected)
        cut = min(common_prefix_length(prompt, chosen), common_prefix_length(prompt, rejected))
        return prompt[:cut], chosen[cut:], rejected[cut:]
