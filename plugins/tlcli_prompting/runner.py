"""Running a template over questions on an LLM backend; every question's n samples come from one call
(self-consistency never loops).

A backend with a chat API (a /chat/completions server, a model with a chat template) gets chat messages: the
template's ``system`` line, then the rendered prompt as the user's turn, one ``chat`` call per question. Any
other backend gets the raw prompt to continue, one batched ``generate`` call per chunk of questions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from tlcli.llm import LLM, Generation, SamplingParams, sampling_params
from tlcli.llm.base import split_total
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


def chat_messages(template: Template, prompt: str) -> list[dict]:
    """The conversation for one question: the template's system message (if any), then the prompt as the
    user's turn."""
    system = [{"role": "system", "content": template.meta.system}] if template.meta.system else []
    return [*system, {"role": "user", "content": prompt}]


def run_questions(llm: LLM, template: Template, questions: list[dict], exemplars: list[Exemplar] | None,
                  settings: RunSettings) -> Iterator[dict]:
    """Yield one record per question, in input order, as soon as its chunk is done:
    ``{id, prompt, completions, answers, answer, votes, tokens}`` (and ``messages`` when sent as a chat)."""
    prompts = render_all(template, questions, exemplars)  # render all first: a bad record fails early
    # A backend that formats chats itself gets the template's system line and the prompt as the user's
    # turn; elsewhere the raw prompt, written to be continued as it is, goes to ``generate``.
    as_chat = llm.formats_chats
    for start in range(0, len(questions), settings.batch_size):
        chunk = questions[start:start + settings.batch_size]
        chunk_prompts = prompts[start:start + len(chunk)]
        if as_chat:
            generations = _chat_generations(llm, template, chunk_prompts, settings.sampling)
        else:
            p = settings.sampling
            generations = llm.generate(chunk_prompts, n=p.n, temperature=p.temperature, top_p=p.top_p,
                                       max_tokens=p.max_tokens, stop=p.stop, seed=p.seed)
        for question, prompt, generation in zip(chunk, chunk_prompts, generations):
            has_choices = bool(question.get("choices"))
            answers = [extract_answer(text, has_choices, settings.answer_regex, template.meta.answer_fallback)
                       for text in generation.texts]
            answer, votes = majority_vote(answers)
            record = {
                "id": question["id"],
                "prompt": prompt,
                "completions": generation.texts,
                "answers": answers,
                "answer": answer,
                "votes": votes,
                "tokens": {"prompt": generation.prompt_tokens, "completion": sum(generation.completion_tokens)},
            }
            if as_chat:
                record["messages"] = chat_messages(template, prompt)
            yield record


def _chat_generations(llm: LLM, template: Template, prompts: list[str], p: SamplingParams) -> list[Generation]:
    """One ``chat`` call per question, all ``n`` samples in it; a server gets the chunk's calls in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    def one(prompt: str) -> Generation:
        result = llm.chat(chat_messages(template, prompt), n=p.n, temperature=p.temperature, top_p=p.top_p,
                          max_tokens=p.max_tokens, stop=p.stop, seed=p.seed)
        counts = split_total(result.usage.completion_tokens, len(result.choices))
        return Generation([c.text for c in result.choices], result.usage.prompt_tokens, counts)

    workers = min(len(prompts), llm.concurrency)
    if workers <= 1:
        return [one(prompt) for prompt in prompts]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, prompts))
