"""The pretext tasks' pure parts: how inputs and targets are made, and the contrastive loss. No model here.

- rotation (RotNet, Gidaris et al. 2018): every image is shown at 0, 90, 180 and 270 degrees; the target is
  which rotation it got.
- jigsaw (Noroozi & Favaro 2016): the image is cut into a 3x3 grid, the tiles are shuffled by one of a fixed
  set of permutations chosen far apart (Hamming distance), and the target is which permutation.
- SimCLR (Chen et al. 2020): two augmented views of each image; the NT-Xent loss pulls their projections
  together and pushes the other 2N-2 views of the batch away.
- masked autoencoder: square patches of the input are blanked out; the model reconstructs the pixels and
  the loss counts only the blanked ones.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

GRID = 3  # jigsaw tiles per side


# --- rotation -------------------------------------------------------------------------------------------------

def rotation_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(4N, C, H, W)`` images (each input at 0, 90, 180, 270 degrees counter-clockwise, in that order per
    rotation block) and their targets 0..3. Square inputs only (rotating a rectangle changes its shape)."""
    if images.shape[-1] != images.shape[-2]:
        raise ValueError("rotation needs square images")
    rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)])
    targets = torch.arange(4, device=images.device).repeat_interleave(images.shape[0])
    return rotated, targets


# --- jigsaw -----------------------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def jigsaw_permutations(count: int, seed: int = 0) -> np.ndarray:
    """``count`` permutations of the 9 tiles, chosen greedily so each new one is as far as possible (in
    Hamming distance) from all chosen before (Noroozi & Favaro's maximal set). Fixed for a given
    ``count`` and ``seed``, so a run and its resume, and a later run, use the same set."""
    if not 2 <= count <= 1000:
        raise ValueError("the jigsaw permutation count must be between 2 and 1000")
    every = np.array(list(itertools.permutations(range(GRID * GRID))), dtype=np.int8)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(every)))]
    nearest = (every != every[chosen[0]]).sum(axis=1)  # distance of each candidate to the chosen set
    for _ in range(count - 1):
        best = np.flatnonzero(nearest == nearest.max())
        pick = int(best[rng.integers(len(best))])
        chosen.append(pick)
        nearest = np.minimum(nearest, (every != every[pick]).sum(axis=1))
    return every[chosen].astype(np.int64)


def cut_tiles(image: torch.Tensor, tile: int, offsets: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """The 3x3 grid of ``image`` (C, S, S) as ``(9, C, tile, tile)`` in reading order. Each cell is S//3
    wide; ``offsets`` (one per cell) place the tile inside its cell, so tiles do not share edges (a shortcut
    the network would otherwise use); None centres them."""
    cell = image.shape[-1] // GRID
    tiles = []
    for index in range(GRID * GRID):
        row, col = divmod(index, GRID)
        dy, dx = offsets[index] if offsets is not None else ((cell - tile) // 2, (cell - tile) // 2)
        top, left = row * cell + dy, col * cell + dx
        tiles.append(image[:, top:top + tile, left:left + tile])
    return torch.stack(tiles)


def shuffle_tiles(tiles: torch.Tensor, permutation) -> torch.Tensor:
    """Tile ``i`` of the result is tile ``permutation[i]`` of the input."""
    return tiles[torch.as_tensor(permutation, dtype=torch.long)]


# --- SimCLR -------------------------------------------------------------------------------------------------------

def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The NT-Xent loss of SimCLR: for each of the 2N projections, cross-entropy of its positive (the other
    view of the same image) against the 2N-2 negatives, with cosine similarities divided by
    ``temperature``; averaged over all 2N anchors."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    similarity = z @ z.t() / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_mask, float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(similarity, positives)


# --- masked autoencoder -------------------------------------------------------------------------------------------

def patch_mask(size: int, patch: int, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """A ``(size, size)`` float mask, 1 where the input is hidden: ``ratio`` of the ``patch``-sized squares
    (rounded to a whole count, at least one), chosen with ``generator``."""
    per_side = -(-size // patch)
    count = per_side * per_side
    hidden = max(1, round(ratio * count))
    chosen = torch.randperm(count, generator=generator)[:hidden]
    grid = torch.zeros(count)
    grid[chosen] = 1.0
    grid = grid.view(per_side, per_side)
    return grid.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[:size, :size]


def masked_mse(reconstruction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hidden pixels only (``mask`` (N, S, S), 1 = hidden)."""
    squared = (reconstruction.float() - target.float()).pow(2).mean(dim=1)  # over channels
    return (squared * mask).sum() / mask.sum().clamp(min=1.0)
