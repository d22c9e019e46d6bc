"""Accuracy against gold answers; a question without an extracted answer counts as wrong and is also
reported on its own line, since "the model said nothing usable" and "the model was wrong" call for
different fixes (answer regex or template vs. model)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tlcli.console.errors import UsageError
from tlcli.prompts.answers import normalize


def gold_of(question: dict, source: str) -> str:
    if question.get("answer") in (None, ""):
        raise UsageError(f"{source}: question {question['id']!r} has no 'answer' field; eval needs the gold "
                         "answer on every line")
    return normalize(question["answer"])


@dataclass
class Score:
    template: str
    questions: int = 0
    correct: int = 0
    no_answer: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wrong_ids: list = field(default_factory=list)

    def add(self, record: dict, gold: str) -> bool:
        self.questions += 1
        self.prompt_tokens += record["tokens"]["prompt"]
        self.completion_tokens += record["tokens"]["completion"]
        if record["answer"] is None:
            self.no_answer += 1
            self.wrong_ids.append(record["id"])
            return False
        if record["answer"] == gold:
            self.correct += 1
            return True
        self.wrong_ids.append(record["id"])
        return False

    @property
    def wrong(self) -> int:
        return self.questions - self.correct - self.no_answer

    @property
    def accuracy(self) -> float:
        return self.correct / self.questions if self.questions else 0.0

    def summary(self, n: int) -> dict:
        return {"template": self.template, "n": n, "questions": self.questions, "correct": self.correct,
                "wrong": self.wrong, "no_answer": self.no_answer, "accuracy": round(self.accuracy, 4),
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}
