"""Load a probe or CoOp run's model/ folder for `tlcli predict` and `tlcli evaluate`."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tlcli.runs.artifacts import read_model
from tlcli.console.errors import UsageError
from tlcli.models.clip import ClipModel, load_clip


class ClipHeadPredictor:
    """CLIP image tower + a linear head on normalised features (``logit_scale`` folded into the head)."""

    modality = "image"

    def __init__(self, clip: ClipModel, labels: list[str], weight: torch.Tensor, bias: torch.Tensor,
                 pretrained: str | None = None):
        self.clip, self.labels = clip, labels
        self.weight, self.bias = weight.float(), bias.float()
        self.transform = clip.preprocess
        self.pretrained = pretrained  # model.json's, to rebuild the tower in fp32 for an export

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        return self.predict_with_features(batch)[0]

    def predict_with_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and the image embedding (not normalised) they were computed from."""
        embedding = self.clip.encode_images(batch)
        probs = (F.normalize(embedding, dim=-1) @ self.weight.T + self.bias).softmax(dim=-1)
        return probs, embedding


    def export_module(self):
        """For `tlcli export`: the image tower and the head as one graph (pixels -> logits), in fp32."""
        from tlcli.export.spec import image_exportable

        clip = self.clip.fp32_on_cpu(self.pretrained)
        return image_exportable(TowerAndHead(clip.model.visual, self.weight, self.bias), self.labels,
                                clip.eval_preprocessing())


class TowerAndHead(nn.Module):
    """What ``ClipHeadPredictor.predict`` computes before its softmax, as one module: the image embedding
    (open_clip's ``encode_image`` is its ``visual``), normalised, through the linear head."""

    def __init__(self, visual: nn.Module, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.visual = visual
        self.register_buffer("weight", weight.float().clone())
        self.register_buffer("bias", bias.float().clone())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(pixels).float(), dim=-1) @ self.weight.T + self.bias


def _pretrained(meta: dict, folder: Path | None) -> str | None:
    """model.json's ``pretrained``. A weights file inside the model folder (`tlcli merge` of a CLIP-LoRA run
    writes clip.safetensors) is named relative to it, so the folder can move."""
    pretrained = meta.get("pretrained")
    if (folder is not None and isinstance(pretrained, str) and "/" not in pretrained and "\\" not in pretrained
            and (folder / pretrained).is_file()):
        pretrained = str(folder / pretrained)
    return pretrained


def _load_clip(meta: dict, device: str, folder: Path | None = None) -> ClipModel:
    if not isinstance(meta.get("model"), str):
        raise UsageError("model.json names no CLIP model; re-run the probe or coop")
    pretrained = _pretrained(meta, folder)
    try:
        return load_clip(meta["model"], pretrained, device, meta.get("precision", "auto"))
    except UsageError as error:
        if "--precision" not in str(error):
            raise
        return load_clip(meta["model"], pretrained, device, "auto")  # e.g. an fp16 run on a CPU


def load_probe_predictor(model_dir: Path, device: str = "cpu") -> ClipHeadPredictor:
    files = read_model(Path(model_dir))
    if files.kind != "clip-probe":
        raise UsageError(f"{model_dir}: a {files.kind!r} model, expected 'clip-probe'")
    head = files.tensors()
    if set(head) != {"weight", "bias"} or tuple(head["weight"].shape)[:1] != (len(files.labels),):
        raise UsageError(f"{files.path}: the head does not match its {len(files.labels)} labels; re-run the probe")
    return ClipHeadPredictor(_load_clip(files.meta, device, files.path), files.labels, head["weight"], head["bias"],
                             _pretrained(files.meta, files.path))


def load_coop_predictor(model_dir: Path, device: str = "cpu") -> ClipHeadPredictor:
    from tlcli_clip.coop import load_prompt_run

    run = load_prompt_run(Path(model_dir))
    clip = _load_clip(run.meta, device)
    head = run.head(clip, run.labels)
    weight = clip.logit_scale() * head
    bias = torch.full((len(run.labels),), clip.logit_bias() or 0.0)
    return ClipHeadPredictor(clip, run.labels, weight, bias, run.meta.get("pretrained"))
