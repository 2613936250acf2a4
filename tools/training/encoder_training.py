"""Fine-tune the CNN image encoder on a user's own pictures (``loupe train-encoder``).

The method is the design write-up's: every picture (or every sub-folder of
pictures of one thing) is a class; each batch holds two heavily augmented
views of each picture, so the pairs of "the same picture, changed" the search
must match are what the model learns from; a classifier over those classes is
trained with focal loss, which keeps pushing on the hard pairs after the easy
ones are solved. Afterwards the classifier is thrown away and the pooled
1280-d features are the embedding, exactly as the untuned encoder uses them.

The classifier is a cosine classifier (normalised features against normalised
class weights), so training shapes the same cosine geometry the index searches.

The checkpoint also records thresholds calibrated on the training pictures
(copies versus unrelated pictures), because a tuned model's cosines no longer
match the untuned model's calibration.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from loupe.base.errors import LoupeError
from loupe.tools.image_file import SUPPORTED_SUFFIXES, read_image
from loupe.tools.models.efficientnet_torch import efficientnet_batch, efficientnet_input, gem_pool, load_efficientnet
from loupe.tools.models.efficientnet_inputs import TUNED_FORMAT
from loupe.tools.models.image_encoders import EfficientNetEncoder
from loupe.tools.training.thresholds import image_levels, near_duplicate_copy, unrelated_pairs

FOCAL_GAMMA = 2.0
COSINE_SCALE = 16.0  # softmax temperature of the cosine classifier
FROZEN_BLOCKS = 8  # of 16: the early, generic blocks keep their ImageNet weights
KEEP_SIDE = 400  # pictures are held in memory at this size while training


@dataclass
class TrainingReport:
    images: int
    classes: int
    epochs: int
    seconds: float
    device: str
    loss_per_epoch: list[float] = field(default_factory=list)
    similar_cosine: float = 0.0
    near_duplicate_cosine: float = 0.0
    skipped: list[str] = field(default_factory=list)


def labelled_images(folder: Path) -> tuple[list[Path], list[int], str]:
    """Image paths and their class numbers.

    When the pictures sit in two or more sub-folders, each sub-folder is one
    class (several photos of one thing); otherwise each picture is its own.
    """
    if not folder.is_dir():
        raise LoupeError(f"training folder {folder} does not exist or is not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
    groups = sorted({p.parent for p in paths})
    if len(groups) >= 2 and folder not in groups:
        return paths, [groups.index(p.parent) for p in paths], "sub-folder"
    return paths, list(range(len(paths))), "picture"


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Cross-entropy scaled by (1 - p_target)^gamma: confident, right answers count little."""
    log_p = F.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    return (-(1 - log_p.exp()).pow(gamma) * log_p).mean()


def heavy_augmentation(size: int) -> v2.Compose:
    """What a copy of a picture goes through: crops, phone-camera angle and light, blur, recompression."""
    return v2.Compose([
        v2.PILToTensor(),
        v2.RandomResizedCrop(size, scale=(0.35, 1.0), ratio=(0.6, 1.6), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.RandomPerspective(distortion_scale=0.35, p=1.0)], p=0.5),
        v2.RandomApply([v2.RandomRotation(15)], p=0.3),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.08)], p=0.8),
        v2.RandomGrayscale(p=0.15),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0))], p=0.3),
        v2.RandomApply([v2.JPEG((20, 90))], p=0.5),
    ])


def pick_device(device: str) -> torch.device:
    """auto: a GPU when torch sees one; naming cuda without one is an error, not a silent CPU run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LoupeError("--device cuda was asked for, but torch sees no GPU on this machine")
    return torch.device(device)


def _load_pictures(paths: list[Path], labels: list[int], max_pixels: int,
                   skipped: list[str]) -> tuple[list[Image.Image], list[int]]:
    pictures, kept = [], []
    for path, label in zip(paths, labels):
        try:
            image = read_image(path, max_pixels).image
        except LoupeError as exc:
            skipped.append(f"{path}: {exc}")
            continue
        image.thumbnail((KEEP_SIDE, KEEP_SIDE))
        pictures.append(image)
        kept.append(label)
    return pictures, kept


def train_encoder(folder: Path, out: Path, *, epochs: int = 3, batch_size: int = 32, image_size: int = 224,
                  learning_rate: float = 1e-4, device: str = "auto", max_pixels: int = 256_000_000,
                  seed: int = 0, progress: Callable[[str], None] = print) -> TrainingReport:
    """Fine-tune EfficientNet-Lite0 on ``folder`` and write a checkpoint the encoder can load."""
    if batch_size < 2 or batch_size % 2:
        raise LoupeError("--batch-size must be an even number of at least 2 (two views per picture)")
    paths, labels, unit = labelled_images(folder)
    report = TrainingReport(images=0, classes=0, epochs=epochs, seconds=0.0, device="")
    pictures, labels = _load_pictures(paths, labels, max_pixels, report.skipped)
    classes = sorted(set(labels))
    if len(pictures) < 2 or len(classes) < 2:
        raise LoupeError(f"training needs at least two readable pictures in {folder}, found {len(pictures)}")
    labels = [classes.index(label) for label in labels]
    report.images, report.classes = len(pictures), len(classes)
    target = pick_device(device)
    report.device = str(target)
    progress(f"{len(pictures)} pictures, {len(classes)} classes (one per {unit}), training on {target}")

    random.seed(seed)
    torch.manual_seed(seed)
    model, _ = load_efficientnet("", offline=True)
    for parameter in [*model._conv_stem.parameters(), *model._bn0.parameters(),
                      *model._blocks[:FROZEN_BLOCKS].parameters(), *model._fc.parameters()]:
        parameter.requires_grad_(False)
    class_weights = torch.nn.Parameter(imprinted_weights(model, pictures, labels, len(classes)).to(target))
    model.to(target)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW([{"params": trainable, "lr": learning_rate},
                                   {"params": [class_weights], "lr": learning_rate * 10}], weight_decay=1e-4)
    augment = heavy_augmentation(image_size)
    pairs_per_batch = batch_size // 2
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        for module in model.modules():  # small batches: keep ImageNet's batch-norm statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
        order = list(range(len(pictures)))
        random.shuffle(order)
        losses = []
        for first in range(0, len(order), pairs_per_batch):
            chosen = order[first:first + pairs_per_batch] * 2  # two views of each picture
            batch = torch.stack([augment(pictures[i]) for i in chosen]).to(target)
            targets = torch.tensor([labels[i] for i in chosen], device=target)
            embedding = F.normalize(gem_pool(model.extract_features(efficientnet_input(batch)), 3.0), dim=-1)
            logits = COSINE_SCALE * embedding @ F.normalize(class_weights, dim=-1).T
            loss = focal_loss(logits, targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        report.loss_per_epoch.append(float(np.mean(losses)))
        progress(f"epoch {epoch + 1}/{epochs}: focal loss {report.loss_per_epoch[-1]:.4f} "
                 f"({time.perf_counter() - start:.0f}s)")
    report.seconds = time.perf_counter() - start

    model.eval().to("cpu")
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    report.similar_cosine, report.near_duplicate_cosine = calibrate(model, pictures)
    fingerprint = hashlib.sha256(b"".join(t.numpy().tobytes() for t in state.values())).hexdigest()[:10]
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": TUNED_FORMAT, "state_dict": state, "fingerprint": fingerprint,
                "similar_cosine": report.similar_cosine, "near_duplicate_cosine": report.near_duplicate_cosine,
                "trained_on": {"folder": str(folder), "images": report.images, "classes": report.classes,
                               "epochs": epochs, "image_size": image_size}}, out)
    return report


@torch.no_grad()
def imprinted_weights(model: torch.nn.Module, pictures: list[Image.Image], labels: list[int],
                      classes: int) -> torch.Tensor:
    """Each class's weight starts as the mean embedding of its pictures under the untuned model.

    With random class weights the backbone first chases noise and its
    features collapse (measured: unrelated pictures at cosine 0.9 after five
    epochs on 500 photos); imprinted weights make the loss about invariance
    to the augmentations from the first step.
    """
    model.eval()
    vectors = embed_pictures(model, pictures)
    sums = torch.zeros(classes, vectors.shape[1]).index_add_(0, torch.tensor(labels), vectors)
    return F.normalize(sums, dim=-1)


def embed_pictures(model: torch.nn.Module, pictures: list[Image.Image], batch: int = 32) -> torch.Tensor:
    """Unit-length embeddings exactly as EfficientNetEncoder computes them (its size and GeM power), on CPU."""
    size, power = EfficientNetEncoder.input_size, EfficientNetEncoder.gem_power
    vectors = [gem_pool(model.extract_features(efficientnet_batch(pictures[i:i + batch], size)), power)
               for i in range(0, len(pictures), batch)]
    return F.normalize(torch.cat(vectors), dim=-1)


@torch.inference_mode()
def calibrate(model: torch.nn.Module, pictures: list[Image.Image], sample: int = 200) -> tuple[float, float]:
    """(similar, near-duplicate) cosine thresholds by tools/training/thresholds.py's rule. Unrelated means
    different files here, which undercounts only when the folder holds several photos of one scene."""
    rng = random.Random(0)
    chosen = rng.sample(pictures, min(sample, len(pictures)))

    originals = embed_pictures(model, chosen).numpy()
    copies = embed_pictures(model, [near_duplicate_copy(p, rng) for p in chosen]).numpy()
    copy_cosines = (originals * copies).sum(axis=1)
    return image_levels(copy_cosines, unrelated_pairs(originals, [str(i) for i in range(len(chosen))]))
