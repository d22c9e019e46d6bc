"""Prompt tuning (Lester et al. 2021): N trainable virtual-token embeddings prepended to the input embeddings
of a frozen model. Two heads on it: a frozen encoder + linear classifier, and a frozen causal LM.

PEFT's ``PromptTuning`` is the reference: the same virtual-token embeddings give the same hidden states,
logits and loss (tests/text/test_prompt_tune.py checks it). Only the prompt (and the classifier head) are
trained and saved: the engine leaves the frozen base model out of checkpoints, so they stay a few KB.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tlcli.console.errors import UsageError

IGNORE_INDEX = -100


class SoftPrompt(nn.Module):
    """(num_tokens, dim) embeddings; ``forward(batch_size)`` gives them expanded to (batch, num_tokens, dim)."""

    def __init__(self, initial: torch.Tensor):
        super().__init__()
        self.embedding = nn.Parameter(initial.detach().clone().float())

    @property
    def num_tokens(self) -> int:
        return self.embedding.shape[0]

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.embedding.unsqueeze(0).expand(batch_size, -1, -1)


def initial_prompt(word_embeddings: nn.Embedding, tokenizer, num_tokens: int, init_text: str | None,
                   seed: int = 0) -> torch.Tensor:
    """From a phrase: its token embeddings, repeated or cut to ``num_tokens`` (PEFT's rule). Without one:
    embeddings of tokens drawn at random from the vocabulary (Lester et al.'s sampled-vocabulary init,
    PEFT's SAMPLE_VOCAB), which starts the prompt where real embeddings live."""
    weight = word_embeddings.weight.detach()
    if init_text:
        ids = tokenizer(init_text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UsageError(f"--init-text {init_text!r}: tokenizes to nothing; give a few words")
        ids = (ids * math.ceil(num_tokens / len(ids)))[:num_tokens]
    else:
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, weight.shape[0], (num_tokens,), generator=generator).tolist()
    return weight[torch.tensor(ids, device=weight.device)].float().cpu().clone()


class _FrozenBase(nn.Module):
    """A module around a frozen ``base``. Its parameters never need gradients; the engine keeps it in eval mode
    and out of checkpoints (``PromptTuneTask.frozen_modules``), and the export saves the rest only."""

    base: nn.Module

    def _freeze_base(self) -> None:
        self.base.requires_grad_(False)


class PromptedEncoderClassifier(_FrozenBase):
    """Frozen encoder (BERT-like) + soft prompt + linear head on the mean of the real tokens' states."""

    def __init__(self, encoder: nn.Module, prompt: torch.Tensor, num_classes: int):
        super().__init__()
        self.base = encoder
        self._freeze_base()
        self.prompt = SoftPrompt(prompt)
        self.head = nn.Linear(prompt.shape[1], num_classes)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, num_virtual + len, dim): the encoder's last hidden states with the prompt in front."""
        batch = input_ids.shape[0]
        embeds = self.base.get_input_embeddings()(input_ids)
        embeds = torch.cat([self.prompt(batch).to(embeds.dtype), embeds], dim=1)
        mask = torch.cat([attention_mask.new_ones(batch, self.prompt.num_tokens), attention_mask], dim=1)
        return self.base(inputs_embeds=embeds, attention_mask=mask).last_hidden_state

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_states(input_ids, attention_mask)[:, self.prompt.num_tokens:]
        real = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(input_ids, attention_mask))


class PromptedCausalLM(_FrozenBase):
    """Frozen causal LM with a soft prompt; the loss counts only positions whose label is not -100."""

    def __init__(self, lm: nn.Module, prompt: torch.Tensor):
        super().__init__()
        self.base = lm
        self._freeze_base()
        self.prompt = SoftPrompt(prompt)

    def _prefixed(self, input_ids, attention_mask):
        batch = input_ids.shape[0]
        embeds = self.base.get_input_embeddings()(input_ids)
        embeds = torch.cat([self.prompt(batch).to(embeds.dtype), embeds], dim=1)
        mask = torch.cat([attention_mask.new_ones(batch, self.prompt.num_tokens), attention_mask], dim=1)
        return embeds, mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits over the whole sequence, virtual tokens included: (batch, num_virtual + len, vocab)."""
        embeds, mask = self._prefixed(input_ids, attention_mask)
        return self.base(inputs_embeds=embeds, attention_mask=mask, use_cache=False).logits

    def token_losses(self, input_ids, attention_mask, labels) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-token cross-entropy, mask of counted tokens, correct-argmax flags), over shifted positions."""
        logits = self.forward(input_ids, attention_mask).float()
        ignore = labels.new_full((labels.shape[0], self.prompt.num_tokens), IGNORE_INDEX)
        targets = torch.cat([ignore, labels], dim=1)[:, 1:]
        logits = logits[:, :-1]
        losses = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none")
        counted = targets != IGNORE_INDEX
        return losses, counted, (logits.argmax(dim=-1) == targets) & counted

    def loss(self, input_ids, attention_mask, labels) -> torch.Tensor:
        """Mean cross-entropy over the target tokens of the batch (what transformers' LM loss computes)."""
        losses, counted, _ = self.token_losses(input_ids, attention_mask, labels)
        return losses.sum() / counted.sum().clamp(min=1)

    @torch.inference_mode()
    def generate(self, input_ids: list[int], max_new_tokens: int, eos_token_id: int | None) -> list[int]:
        """Greedy continuation of one input (no padding, so positions are exact), with the KV cache."""
        device = self.prompt.embedding.device
        ids = torch.tensor([input_ids], dtype=torch.long, device=device)
        embeds, mask = self._prefixed(ids, torch.ones_like(ids))
        out = self.base(inputs_embeds=embeds, attention_mask=mask, use_cache=True)
        generated: list[int] = []
        for _ in range(max_new_tokens):
            next_id = int(out.logits[0, -1].argmax())
            if eos_token_id is not None and next_id == eos_token_id:
                break
            generated.append(next_id)
            mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
            out = self.base(input_ids=torch.tensor([[next_id]], device=device), attention_mask=mask,
                            past_key_values=out.past_key_values, use_cache=True)
        return generated
