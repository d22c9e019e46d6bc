"""Build a sentiment task where topic words do not decide the label: negation flips it.

Each sentence says that a thing was good or bad, plainly or negated ("The soup was good." / "The soup was
not good."). The label (positive / negative) is the adjective's polarity XOR the negation, so no single
word carries it: "good" appears in positive and negative sentences alike, and so does "not". A frozen
mean-pooled encoder nearly adds its tokens' vectors, and a linear head on a sum of word vectors cannot
compute an XOR; the encoder has to be adapted (LoRA or full fine-tuning) to read the negation.

The test sentences use held-out vocabulary (other things, other adjectives; the same sentence frames), so
memorising words does not help either. Deterministic; nothing is downloaded. From the repository root:

    python examples/text_hard/build.py [OUT_DIR]      # writes OUT_DIR/train.csv and OUT_DIR/test.csv

(default OUT_DIR: this folder; the CSVs there were written by this script).
"""

from __future__ import annotations

import csv
import random
import sys
from itertools import product
from pathlib import Path

HERE = Path(__file__).resolve().parent

THINGS = {
    "train": ["the soup", "the film", "the hotel room", "the service", "the concert", "the book", "the laptop",
              "the coffee", "the flight", "the museum tour", "the pizza", "the lecture"],
    "test": ["the pasta", "the play", "the apartment", "the staff", "the festival", "the novel", "the phone",
             "the tea", "the train ride", "the exhibition", "the burger", "the seminar"],
}
POSITIVE = {"train": ["good", "great", "excellent", "wonderful", "enjoyable", "pleasant"],
            "test": ["fantastic", "superb", "delightful", "impressive", "lovely", "brilliant"]}
NEGATIVE = {"train": ["bad", "terrible", "awful", "boring", "disappointing", "poor"],
            "test": ["dreadful", "horrible", "mediocre", "dull", "unpleasant", "lousy"]}
# Pairs of frames: the same words but for the negation, so the two differ by it alone.
FRAMES = [
    ("{thing} was {adj}.", "{thing} was not {adj}."),
    ("I thought {thing} was {adj}.", "I did not think {thing} was {adj}."),
    ("Honestly, {thing} was really {adj}.", "Honestly, {thing} was not {adj} at all."),
    ("Everyone agreed that {thing} was {adj}.", "Nobody agreed that {thing} was {adj}."),
    ("{thing} turned out {adj}.", "{thing} never turned out {adj}."),
]
PER_CLASS = {"train": 200, "test": 150}


def sentences(part: str) -> list[tuple[str, str]]:
    """Every (sentence, label) of one part's vocabulary."""
    rows = []
    for thing, (plain, negated) in product(THINGS[part], FRAMES):
        for polarity, adjectives in (("positive", POSITIVE[part]), ("negative", NEGATIVE[part])):
            other = "negative" if polarity == "positive" else "positive"
            for adj in adjectives:
                for frame, label in ((plain, polarity), (negated, other)):
                    text = frame.format(thing=thing, adj=adj)
                    rows.append((text[0].upper() + text[1:], label))
    return rows


def sample(part: str, seed: int = 0) -> list[tuple[str, str]]:
    """PER_CLASS[part] rows of each label, half of them negated, in a seeded order."""
    rng = random.Random(f"{part}-{seed}")
    rows = sentences(part)
    chosen = []
    for label in ("negative", "positive"):
        for negated in (False, True):
            pool = [r for r in rows if r[1] == label and (" not " in r[0] or " never " in r[0]
                                                          or r[0].startswith("Nobody")) == negated]
            chosen += rng.sample(pool, PER_CLASS[part] // 2)
    rng.shuffle(chosen)
    return chosen


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def main(out: Path) -> None:
    for part in ("train", "test"):
        write(out / f"{part}.csv", sample(part))
    print(f"wrote {out / 'train.csv'} ({2 * PER_CLASS['train']} rows) and {out / 'test.csv'} "
          f"({2 * PER_CLASS['test']} rows, held-out vocabulary)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
