"""The pretext tasks' inputs, targets and loss against hand-written references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from tlcli_selfsup import pretext


def nt_xent_reference(z1: np.ndarray, z2: np.ndarray, temperature: float) -> float:
    """SimCLR's loss written out anchor by anchor (Chen et al. 2020, algorithm 1), in float64."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        positive = (i + n) % n2
        numerator = math.exp(z[i] @ z[positive] / temperature)
        denominator = sum(math.exp(z[i] @ z[k] / temperature) for k in range(n2) if k != i)
        total += -math.log(numerator / denominator)
    return total / n2


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_the_reference(temperature):
    rng = np.random.default_rng(3)
    z1, z2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    got = pretext.nt_xent(torch.tensor(z1, dtype=torch.float64), torch.tensor(z2, dtype=torch.float64), temperature)
    assert got.item() == pytest.approx(nt_xent_reference(z1, z2, temperature), rel=1e-6)


def test_nt_xent_is_low_when_views_agree_and_high_when_they_do_not():
    z = torch.eye(4) * 5
    assert pretext.nt_xent(z, z.clone(), 0.1) < 0.01
    assert pretext.nt_xent(z, z.roll(1, dims=0), 0.1) > 5


def test_rotation_labels_match_the_rotation_applied():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    image = torch.cat([image, image + 100])  # two images
    rotated, labels = pretext.rotation_batch(image)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for picture, label in zip(rotated, labels):
        source = image[0] if picture.min() < 100 else image[1]
        # numpy's rot90 (counter-clockwise) k times is the reference
        assert np.array_equal(picture[0].numpy(), np.rot90(source[0].numpy(), int(label)))
    # 90 degrees counter-clockwise: the top row becomes the left column, read bottom to top
    assert rotated[2, 0, :, 0].tolist() == [3.0, 2.0, 1.0, 0.0]


def test_jigsaw_permutation_set_is_fixed_distinct_and_spread():
    first, again = pretext.jigsaw_permutations(30), pretext.jigsaw_permutations(30)
    assert np.array_equal(first, again)
    assert len({tuple(p) for p in first}) == 30
    assert all(sorted(p) == list(range(9)) for p in first)
    distances = [(a != b).sum() for a, b in itertools.combinations(first, 2)]
    assert min(distances) >= 6  # greedy max-min Hamming: far apart, unlike 30 random picks (often 2-4)


def test_jigsaw_tiles_and_label_for_a_known_image():
    # each 3x3 cell of a 9x9 single-channel image holds its own cell number
    image = torch.tensor(np.kron(np.arange(9).reshape(3, 3), np.ones((3, 3))), dtype=torch.float32)[None]
    tiles = pretext.cut_tiles(image, tile=3)
    assert [int(t.mean()) for t in tiles] == list(range(9))
    permutation = pretext.jigsaw_permutations(10)[4]
    shuffled = pretext.shuffle_tiles(tiles, permutation)
    assert [int(t.mean()) for t in shuffled] == list(permutation)
    # the label names the permutation, so putting tile i back at position permutation[i] restores the order
    restored = torch.empty_like(shuffled)
    restored[torch.as_tensor(permutation)] = shuffled
    assert torch.equal(restored, tiles)


def test_jigsaw_dataset_label_is_the_permutation_used(colour_data):
    from tlcli.data.bad_files import BadFiles
    from tlcli_selfsup.config import PretrainConfig
    from tlcli_selfsup.images import preprocessing_for, unlabelled_images
    from tlcli_selfsup.pretrain_task import PretextImages

    cfg = PretrainConfig(data=[str(colour_data)], task="jigsaw", permutations=12, model="timm:test_resnet",
                         image_size=24)
    pre = {**preprocessing_for(cfg.model, "none", 24), "mean": [0, 0, 0], "std": [1, 1, 1]}
    decoded = unlabelled_images(cfg.data, pre, BadFiles(), 0)
    dataset = PretextImages(decoded, cfg, pre)
    tiles, label = dataset[(0, 1234)]
    again, same_label = dataset[(0, 1234)]
    assert torch.equal(tiles, again) and label == same_label  # seeded
    assert tiles.shape == (9, 3, 7, 7)
    labels = {dataset[(0, seed)][1] for seed in range(40)}
    assert len(labels) > 5 and labels <= set(range(12))


def test_patch_mask_hides_the_asked_share():
    mask = pretext.patch_mask(24, 3, 0.5, torch.Generator().manual_seed(0))
    assert mask.shape == (24, 24)
    assert mask.mean().item() == pytest.approx(0.5)
    blocks = mask.view(8, 3, 8, 3).permute(0, 2, 1, 3).reshape(64, 9)
    assert ((blocks.sum(1) == 0) | (blocks.sum(1) == 9)).all()  # whole patches


def test_masked_mse_counts_only_hidden_pixels():
    target = torch.zeros(1, 3, 4, 4)
    reconstruction = torch.ones(1, 3, 4, 4)
    mask = torch.zeros(1, 4, 4)
    mask[0, :2] = 1
    reconstruction[0, :, 2:] = 100.0  # errors where the input was visible do not count
    assert pretext.masked_mse(reconstruction, target, mask).item() == pytest.approx(1.0)


def test_knn_accuracy_matches_scikit_learn_leave_one_out():
    from sklearn.neighbors import KNeighborsClassifier

    from tlcli_selfsup.knn import knn_accuracy

    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 8)) + np.repeat(np.eye(4, 8) * 2, 10, axis=0)
    labels = np.repeat(np.arange(4), 10)
    normed = features / np.linalg.norm(features, axis=1, keepdims=True)
    correct = 0
    for i in range(40):
        rest = np.arange(40) != i
        knn = KNeighborsClassifier(n_neighbors=1).fit(normed[rest], labels[rest])
        correct += int(knn.predict(normed[i:i + 1])[0] == labels[i])
    assert knn_accuracy(torch.tensor(features), torch.tensor(labels), k=1) == pytest.approx(correct / 40)
