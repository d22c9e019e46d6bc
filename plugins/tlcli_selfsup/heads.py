"""The pretext tasks' networks: the backbone (its classifier removed) under a small task head. Only the
backbone is exported; the heads, the projector and the decoder are dropped after pretraining."""

from __future__ import annotations

import torch
from torch import nn

from tlcli_selfsup.pretext import GRID


class PretextModel(nn.Module):
    """``backbone`` (images -> pooled features) and ``head`` (the task's own part)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images).flatten(1)

    def forward(self, images: torch.Tensor, per_sample: int = 1) -> torch.Tensor:
        """The head on the features; ``per_sample`` consecutive images (a jigsaw's tiles) are one sample.
        Training goes through here, not ``head(features(...))``: DistributedDataParallel synchronises the
        gradients of what its forward computed, and only of that."""
        features = self.features(images)
        if per_sample > 1:
            features = features.view(-1, per_sample, features.shape[1])
        return self.head(features)


def rotation_head(width: int) -> nn.Module:
    return nn.Linear(width, 4)


class JigsawHead(nn.Module):
    """The context-free network's top: the 9 tiles' features concatenated in order, then an MLP that
    names the permutation."""

    def __init__(self, width: int, permutations: int, hidden: int = 512):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(GRID * GRID * width, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, permutations))

    def forward(self, tile_features: torch.Tensor) -> torch.Tensor:  # (N, 9, width)
        return self.mlp(tile_features.flatten(1))


def projection_head(width: int, out: int = 128) -> nn.Module:
    """SimCLR's projector g(h): Linear-BN-ReLU-Linear; the loss sees g(h), fine-tuning uses h."""
    return nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True), nn.Linear(width, out))


class LightDecoder(nn.Module):
    """A small decoder from the pooled feature vector back to pixels: a linear map to a 64x4x4 grid, then
    upsample+conv steps to the image size. Kept light on purpose (as in MAE): the encoder must do the work."""

    def __init__(self, width: int, size: int, channels: int = 3, hidden: int = 64):
        super().__init__()
        self.size, self.hidden = size, hidden
        self.project = nn.Linear(width, hidden * 16)
        steps = []
        grid = 4
        while grid < size:
            steps += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(hidden, hidden, 3, padding=1),
                      nn.GELU()]
            grid *= 2
        self.up = nn.Sequential(*steps)
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.project(features).view(-1, self.hidden, 4, 4)
        x = self.out(self.up(x))
        if x.shape[-1] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x
