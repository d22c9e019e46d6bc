"""``scripted:REPLIES.json``: a backend that answers from a list, for tests and dry runs of pipelines.

Replies are used in turn (cycling when they run out); each sample of each prompt takes the next one.
A reply may also be a callable (in-process use) taking the prompt and the sample index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

from tlcli.errors import UsageError
from tlcli.llm.base import LLM, Generation, cut_at_stop, sampling_params

Reply = Union[str, Callable[[str, int], str]]


@dataclass
class GenerateCall:
    """What one ``generate`` call asked for (tests assert on these)."""

    prompts: list[str]
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str]
    seed: int | None


@dataclass
class ScriptedLLM(LLM):
    replies: list[Reply]
    spec: str = "scripted"
    calls: list[GenerateCall] = field(default_factory=list)
    _next: int = 0

    @classmethod
    def from_file(cls, path: Path) -> "ScriptedLLM":
        try:
            replies = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise UsageError(f"scripted replies file {path} cannot be read ({error.strerror}); "
                             "pass scripted:FILE.json with a JSON list of strings") from None
        except ValueError as error:
            raise UsageError(f"scripted replies file {path} is not JSON ({error})") from None
        if not isinstance(replies, list) or not replies or not all(isinstance(r, str) for r in replies):
            raise UsageError(f"scripted replies file {path} must hold a non-empty JSON list of strings")
        return cls(replies, spec=f"scripted:{path}")

    def generate(self, prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None):
        params = sampling_params(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        self.calls.append(GenerateCall(list(prompts), params.n, params.temperature, params.top_p,
                                       params.max_tokens, params.stop, params.seed))
        results = []
        for prompt in prompts:
            texts, reasons = [], []
            for sample in range(params.n):
                reply = self.replies[self._next % len(self.replies)]
                self._next += 1
                text = reply(prompt, sample) if callable(reply) else reply
                text, stopped = cut_at_stop(text, params.stop)
                texts.append(text)
                reasons.append("stop")
            results.append(Generation(texts, len(prompt.split()), [len(t.split()) for t in texts], reasons))
        return results
