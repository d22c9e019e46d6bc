"""The text half of `tlcli predict` and `tlcli evaluate`: any run whose predictor has ``modality == "text"``.

``tlcli/cli/predict.py`` loads the run's predictor (the plugin that made the run registers it) and hands text
predictors to :func:`predict_texts` / :func:`evaluate_texts`. The text commands' own ``predict`` aliases and
``text zeroshot`` print through :func:`emit_text_predictions`, so every text classifier line has one shape:
``{"text", "label", "score", "top": [{"label", "score"}, ...]}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Sequence

# Texts per predict_texts call: big enough for the encoder's batches, small enough that a pipe sees lines soon.
CHUNK = 256


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def emit_text_predictions(texts: Sequence[str], labels: Sequence[str], scores, top_k: int, report,
                          score_name: str = "score") -> None:
    """One record per text, in order (a JSON line each with ``--json``), and one table for people."""
    from tlcli.classify.evaluation import classifier_records

    rows = []
    for text, fields in zip(texts, classifier_records(scores, list(labels), top_k)):
        report.record({"text": text, **fields})
        rows.append([_short(text), fields["label"], f"{fields['score']:.3f}",
                     ", ".join(f"{t['label']} {t['score']:.2f}" for t in fields["top"][1:])])
    if rows:
        report.table(None, ["text", "label", score_name, "next"], rows)


def predict_texts(predictor, inputs: Sequence[str], top_k: int, report, input_file: Path | None = None,
                  stdin: IO | None = None, columns=None) -> int:
    """Classify texts: each of ``inputs`` is a text, ``-`` reads one text per stdin line, ``input_file`` adds a
    CSV/JSONL/lines file's texts. With ``--json`` lines stream out chunk by chunk. Returns how many."""
    from tlcli.data.texts import read_texts

    texts = read_texts(list(inputs), input_file, stdin, columns=columns)
    labels = list(predictor.labels)
    if report.json_output:
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start:start + CHUNK]
            emit_text_predictions(chunk, labels, probabilities(predictor, chunk), top_k, report)
    else:
        emit_text_predictions(texts, labels, probabilities(predictor, texts), top_k, report, score_name="prob")
    return len(texts)


def evaluate_texts(predictor, data_path: Path, report, confusion: Path | None = None,
                   title: str | None = None, columns=None, top_losses: int = 0) -> dict:
    """Score a text classifier on labelled data (CSV text,label or JSONL): accuracy, top-5 accuracy, mean
    recall, per-class precision/recall/support, confusion matrix (and its picture when ``confusion`` is given),
    and with ``top_losses`` the texts it gets most wrong (records and a table). Shown to people through
    ``report``; returned for the summary."""
    import numpy as np

    from tlcli.data.texts import read_labelled_texts
    from tlcli.console.errors import UsageError
    from tlcli.classify.evaluation import classification_report, show_metrics, write_confusion_picture
    from tlcli.console.output import display_path

    labels = list(predictor.labels)
    samples = read_labelled_texts(data_path, columns=columns, default_split="test")
    index_of = {label: i for i, label in enumerate(labels)}
    unknown = sorted({s.label for s in samples} - set(index_of))
    if unknown:
        raise UsageError(f"{display_path(data_path)}: labels the model does not know: {', '.join(unknown[:5])}; "
                         f"the model knows {', '.join(labels[:10])}")
    texts = [s.text for s in samples]
    probs = np.concatenate([probabilities(predictor, texts[i:i + CHUNK]) for i in range(0, len(texts), CHUNK)])
    targets = np.asarray([index_of[s.label] for s in samples])
    scored = classification_report(probs, targets, labels)
    if confusion is not None:
        write_confusion_picture(scored["confusion"], labels, confusion)
        scored["confusion_picture"] = str(confusion)
    show_metrics(report, title or f"{display_path(data_path)}: {scored['n']} texts", scored)
    if top_losses:
        from tlcli.classify.evaluation import show_top_losses

        show_top_losses(report, texts, "text", probs, targets, labels, top_losses)
    if confusion is not None:
        report.info(f"confusion matrix written to {confusion}")
    return scored


def probabilities(predictor, texts: list[str]):
    """The predictor's class probabilities for ``texts``, checked (shape, finite)."""
    import numpy as np

    from tlcli.console.errors import JobFailed

    probs = np.asarray(predictor.predict_texts(texts), dtype=np.float64)
    if probs.shape != (len(texts), len(predictor.labels)):
        raise JobFailed(f"the predictor returned scores of shape {probs.shape} for {len(texts)} texts and "
                        f"{len(predictor.labels)} labels")
    if not np.isfinite(probs).all():
        raise JobFailed("the model produced non-finite scores (NaN or inf); its export is broken, re-train it")
    return probs
