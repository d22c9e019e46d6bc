"""The pretraining Task the shared engine runs: a backbone under one pretext task's head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tlcli.data.decoded import DecodedImages, EvalImages, eval_transform, train_transform
from tlcli.engine.task import Task
from tlcli.models.vision import build_backbone
from tlcli_selfsup import heads, pretext
from tlcli_selfsup.config import PretrainConfig
from tlcli_selfsup.knn import knn_accuracy

MODEL_KIND = "backbone"


def simclr_transform(pre: dict):
    """SimCLR's augmentations: random resized crop, flip, colour jitter (p 0.8), greyscale (p 0.2),
    Gaussian blur (p 0.5, kernel about a tenth of the image)."""
    from torchvision import transforms as T

    crop = pre["crop"]
    kernel = max(3, (crop // 10) | 1)
    return T.Compose([
        T.RandomResizedCrop(crop, scale=(0.2, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([T.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5),
        T.ToTensor(),
        T.Normalize(pre["mean"], pre["std"]),
    ])


def jigsaw_tile_size(crop: int) -> int:
    """Tiles a little smaller than their cell (a gap of about an eighth), so neighbours share no edge."""
    cell = crop // pretext.GRID
    return max(1, cell - max(1, cell // 8))


class PretextImages(torch.utils.data.Dataset):
    """``dataset[(index, seed)]``: one training sample of the pretext task, all its randomness (crop,
    jitter, tile offsets, permutation, mask) drawn from ``seed``."""

    def __init__(self, decoded: DecodedImages, cfg: PretrainConfig, pre: dict):
        self.decoded, self.cfg, self.pre = decoded, cfg, pre
        self.transform = simclr_transform(pre) if cfg.task == "simclr" else train_transform(pre, "light")
        if cfg.task == "jigsaw":
            self.permutations = pretext.jigsaw_permutations(cfg.permutations)
            self.tile = jigsaw_tile_size(pre["crop"])

    def __len__(self) -> int:
        return len(self.decoded)

    def __getitem__(self, key):
        index, seed = key
        image = self.decoded.image(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            if self.cfg.task == "simclr":
                return self.transform(image), self.transform(image)
            tensor = self.transform(image)
            if self.cfg.task == "rotation":
                return tensor
            if self.cfg.task == "mae":
                patch = max(1, self.pre["crop"] // 8)
                return tensor, pretext.patch_mask(self.pre["crop"], patch, self.cfg.mask_ratio, generator)
            cell = self.pre["crop"] // pretext.GRID
            gap = cell - self.tile
            offsets = torch.randint(0, gap + 1, (pretext.GRID * pretext.GRID, 2), generator=generator).tolist()
            label = int(torch.randint(0, len(self.permutations), (1,), generator=generator))
            tiles = pretext.cut_tiles(tensor, self.tile, [tuple(o) for o in offsets])
            return pretext.shuffle_tiles(tiles, self.permutations[label]), label


class PretrainTask(Task):
    def __init__(self, cfg: PretrainConfig, train: DecodedImages, val: DecodedImages | None, preprocessing: dict,
                 run=None):
        self.cfg, self.preprocessing, self.run = cfg, preprocessing, run
        self._train, self._val = train, val
        self.feature_dim = 0

    def describe(self) -> dict:
        return {"model": self.cfg.model, "task": self.cfg.task, "knn_val": self._val is not None}

    def build_model(self):
        crop = self.preprocessing["crop"]
        # the backbone sees whole crops (a ViT is built for their size), except a jigsaw's tiles
        built, width = build_backbone(self.cfg.model, self.cfg.pretrained,
                                      image_size=None if self.cfg.task == "jigsaw" else crop)
        self.feature_dim = width
        if self.cfg.task == "rotation":
            head = heads.rotation_head(width)
        elif self.cfg.task == "jigsaw":
            head = heads.JigsawHead(width, self.cfg.permutations)
        elif self.cfg.task == "simclr":
            head = heads.projection_head(width)
        else:
            head = heads.LightDecoder(width, crop)
        return heads.PretextModel(built.model, head)

    def train_dataset(self):
        return PretextImages(self._train, self.cfg, self.preprocessing)

    def val_dataset(self):
        return None  # the kNN accuracy needs the whole set at once: see evaluate()

    def collate(self, items):
        from torch.utils.data import default_collate

        return default_collate(items)

    def batch_size_of(self, batch) -> int:
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        return first.shape[0]

    def training_step(self, model, batch):
        task = self.cfg.task
        if task == "rotation":
            images, targets = pretext.rotation_batch(batch)
            return F.cross_entropy(model(images), targets)
        if task == "jigsaw":
            tiles, targets = batch
            return F.cross_entropy(model(tiles.flatten(0, 1), pretext.GRID * pretext.GRID), targets)
        if task == "simclr":
            first, second = batch
            z = model(torch.cat([first, second]))
            return pretext.nt_xent(z[: first.shape[0]], z[first.shape[0]:], self.cfg.temperature)
        images, mask = batch
        hidden = mask.unsqueeze(1).to(images.dtype)
        reconstruction = model(images * (1 - hidden))
        return pretext.masked_mse(reconstruction, images, mask)

    @torch.no_grad()
    def evaluate(self, model, device):
        """kNN accuracy of the backbone's features on the labelled --val set (leave-one-out)."""
        if self._val is None:
            return None
        features, labels = embed(model.backbone, EvalImages(self._val, eval_transform(self.preprocessing)),
                                 device, self.cfg.eval_batch_size)
        return {"knn_accuracy": knn_accuracy(features, labels, self.cfg.knn_k)}

    def export(self, model, run_dir, result) -> None:
        export_backbone(self.run, model.backbone, self.cfg, self.preprocessing, self.feature_dim, run_dir)


@torch.no_grad()
def embed(backbone, dataset, device, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features and labels of a whole (unaugmented) dataset, in order."""
    was_training = backbone.training
    backbone.eval()
    features, labels = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        images = torch.stack([item[0] for item in items]).to(device)
        features.append(backbone(images).flatten(1).float().cpu())
        labels += [item[1] for item in items]
    backbone.train(was_training)
    return torch.cat(features), torch.tensor(labels, dtype=torch.long)


def export_backbone(run, backbone, cfg: PretrainConfig, preprocessing: dict, feature_dim: int, run_dir) -> None:
    """``model/``: the backbone's weights under its own parameter names (no head, projector or decoder),
    which `tlcli finetune --weights RUN_DIR` and `tlcli layers RUN_DIR` read."""
    import os
    import shutil
    from pathlib import Path

    from tlcli.runs.artifacts import write_model

    def write(folder):
        write_model(folder, kind=MODEL_KIND, plugin="selfsup", tensors=backbone.state_dict(),
                    preprocessing=preprocessing, model=cfg.model, pretext_task=cfg.task, feature_dim=feature_dim)

    if run is not None and hasattr(run, "model_writer"):
        with run.model_writer() as tmp:
            write(tmp)
        return
    final = Path(run_dir) / "model"
    tmp = Path(run_dir) / f".tmp-model-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
