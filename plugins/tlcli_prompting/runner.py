"""Running a template over questions on an LLM backend, one batched generate call per chunk of
questions; every question's n samples come from that same call (self-consistency never loops)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from tlcli.llm import LLM, SamplingParams, sampling_params
from tlcli.prompts.answers import extract_answer, majority_vote
from tlcli.prompts.templates import Exemplar, Template

# Sampling several answers greedily gives n copies; when the user asks for n > 1 and neither they nor
# the template chose a temperature, use the value Wang et al. found robust for self-consistency.
SAMPLING_TEMPERATURE = 0.7


@dataclass(frozen=True)
class RunSettings:
    sampling: SamplingParams
    batch_size: int = 8
    answer_regex: re.Pattern | None = None


def settings_for(template: Template, n=None, temperature=None, top_p=None, max_tokens=None, stop=None,
                 seed=None, batch_size=8, answer_regex=None) -> RunSettings:
    """Flags override the template's defaults; the result is validated once."""
    meta = template.meta
    n = meta.n if n is None else n
    if temperature is None:
        temperature = meta.temperature
        if n > 1 and temperature == 0:
            temperature = SAMPLING_TEMPERATURE
    params = sampling_params(n=n, temperature=temperature, top_p=top_p,
                             max_tokens=meta.max_tokens if max_tokens is None else max_tokens,
                             stop=list(meta.stop if not stop else stop), seed=seed)
    return RunSettings(params, batch_size, answer_regex)


def render_all(template: Template, questions: list[dict], exemplars: list[Exemplar] | None) -> list[str]:
    return [template.render(q, exemplars) for q in questions]


def run_questions(llm: LLM, template: Template, questions: list[dict], exemplars: list[Exemplar] | None,
                  settings: RunSettings) -> Iterator[dict]:
    """Yield one record per question, in input order, as soon as its chunk is done:
    ``{id, prompt, completions, answer, votes, tokens}``."""
    prompts = render_all(template, questions, exemplars)  # render all first: a bad record fails early
    p = settings.sampling
    for start in range(0, len(questions), settings.batch_size):
        chunk = questions[start:start + settings.batch_size]
        generations = llm.generate(prompts[start:start + len(chunk)], n=p.n, temperature=p.temperature,
                                   top_p=p.top_p, max_tokens=p.max_tokens, stop=p.stop, seed=p.seed)
        for question, prompt, generation in zip(chunk, prompts[start:], generations):
            has_choices = bool(question.get("choices"))
            answers = [extract_answer(text, has_choices, settings.answer_regex, template.meta.answer_fallback)
                       for text in generation.texts]
            answer, votes = majority_vote(answers)
            yield {
                "id": question["id"],
                "prompt": prompt,
                "completions": generation.texts,
                "answers": answers,
                "answer": answer,
                "votes": votes,
                "tokens": {"prompt": generation.prompt_tokens, "completion": sum(generation.completion_tokens)},
            }
