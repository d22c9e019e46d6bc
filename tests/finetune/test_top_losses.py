"""`tlcli evaluate --top-losses N`: the N images the model gets most wrong, checked against the probabilities
`tlcli predict` gives for the same images and against PyTorch's own per-sample loss; --confusion unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = ["--model", "timm:test_resnet", "--pretrained", "none", "--image-size", "24", "--batch-size", "6",
        "--workers", "0", "--precision", "fp32", "--device", "cpu", "--quiet"]


def test_top_losses_are_the_worst_predictions(cli, colour_data):
    import torch

    assert cli("finetune", colour_data, *TINY, "--epochs", "1", "--out", "run").exit_code == 0
    predicted = cli("predict", "run", colour_data, "--top-k", "3", "--json").json_lines()[:-1]
    probability = {(line["path"], t["label"]): t["score"] for line in predicted for t in line["top"]}
    predicted_as = {line["path"]: (line["label"], line["score"]) for line in predicted}

    evaluated = cli("evaluate", "run", colour_data, "--top-losses", "5", "--json", "--confusion", "c.png")
    assert evaluated.exit_code == 0, evaluated.stderr
    *worst, summary = evaluated.json_lines()
    assert summary["metrics"]["accuracy"] is not None and Path("c.png").read_bytes()[:4] == b"\x89PNG"
    assert len(worst) == 5 and [r["loss"] for r in worst] == sorted((r["loss"] for r in worst), reverse=True)
    for record in worst:
        true_label = Path(record["path"]).parent.name
        assert record["true_label"] == true_label
        assert record["true_score"] == pytest.approx(probability[(record["path"], true_label)], abs=2e-6)
        assert (record["label"], record["score"]) == pytest.approx(predicted_as[record["path"]], abs=2e-6)
    # PyTorch's cross-entropy of the same probabilities, for every image: the five largest are these five.
    paths = [line["path"] for line in predicted]
    true_p = torch.tensor([[probability[(p, Path(p).parent.name)]] for p in paths], dtype=torch.float64)
    losses = torch.nn.functional.nll_loss(true_p.log(), torch.zeros(len(paths), dtype=torch.long), reduction="none")
    assert [r["loss"] for r in worst] == pytest.approx(sorted(losses.tolist(), reverse=True)[:5], abs=1e-4)

    people = cli("evaluate", "run", colour_data, "--top-losses", "2")
    assert "top 2 losses" in people.stdout and worst[0]["path"] in people.stdout
    assert Path("run/confusion.svg").is_file()  # the default picture, as before
    assert cli("evaluate", "run", colour_data, "--top-losses", "0").exit_code == 2
