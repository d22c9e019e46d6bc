"""The one interface every text-generation backend implements, and the pieces they share.

A backend turns prompts into completions. ``generate`` takes a batch of prompts and returns, for each
prompt, ``n`` sampled texts with token counts. Backends decide how to batch; callers never loop over
samples themselves, so a local model can draw all ``n`` samples in one batched forward pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tlcli.errors import UsageError


@dataclass(frozen=True)
class Generation:
    """The completions for one prompt.

    texts: the ``n`` completions, stop strings already cut off.
    prompt_tokens: tokens in the prompt as the backend counted them (after any chat template).
    completion_tokens: tokens generated for each text (same order as ``texts``).
    finish_reasons: ``"stop"`` (end of text or a stop string) or ``"length"`` (hit max_tokens), per text.
    """

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: list[int] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + sum(self.completion_tokens)


class SamplingParams(BaseModel):
    """How to sample; validated once so every backend sees the same meaning.

    temperature 0 means greedy decoding, which gives one answer: asking for n > 1 greedy samples is a
    mistake worth reporting rather than silently returning n copies.
    """

    model_config = ConfigDict(extra="forbid")

    n: int = Field(1, ge=1, le=128)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=1_000_000)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None

    @model_validator(mode="after")
    def _samples_need_temperature(self) -> "SamplingParams":
        if self.n > 1 and self.temperature == 0:
            raise ValueError(
                f"n={self.n} samples with temperature 0 would all be the same greedy answer; "
                "pass a temperature > 0 (e.g. 0.7)"
            )
        if any(s == "" for s in self.stop):
            raise ValueError("stop strings must not be empty")
        return self


def sampling_params(**values) -> SamplingParams:
    """Validate sampling options, turning a pydantic error into one usage line."""
    from pydantic import ValidationError

    try:
        return SamplingParams(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        prefix = f"{where}: " if where else ""
        raise UsageError(f"bad sampling option {prefix}{first['msg'].removeprefix('Value error, ')}") from None


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; returns (text, whether a stop string was found).

    Backends may stop generating at a stop string but still return it (transformers does); cutting here
    gives every backend the OpenAI meaning: the stop string is not part of the completion.
    """
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class LLM(ABC):
    """A text-generation backend.

    Implementations must be safe to call repeatedly; they load their model or open their connection on
    first use or in ``__init__`` and report a missing model or an unreachable server as
    :class:`tlcli.errors.UsageError` (one line naming the fix).
    """

    #: The spec string it was built from (``hf:...``, ``openai:...``), for logs and output.
    spec: str = ""

    @abstractmethod
    def generate(
        self,
        prompts: list[str],
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> list[Generation]:
        """One :class:`Generation` per prompt, in order, each with exactly ``n`` texts.

        All ``n`` samples of a prompt must come from the backend's batched path (one forward pass for a
        local model, the ``n`` parameter of the API for a server), not from ``n`` separate calls.
        """

    def stream(
        self,
        prompt: str,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Yield the completion of one prompt in pieces as they are produced.

        The default yields the whole text at once; backends that can stream (SSE) override it.
        """
        result = self.generate([prompt], 1, temperature, top_p, max_tokens, stop, seed)
        yield result[0].texts[0]

    def close(self) -> None:
        """Release connections or memory; the default has nothing to release."""

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
