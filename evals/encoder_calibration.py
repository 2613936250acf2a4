"""An image encoder's cosine levels, measured on the shared datasets (``loupe calibrate``).

    python -m loupe.evals.encoder_calibration [--encoder SPEC] [--datasets ../shared/datasets] [--sample 200]

The levels that turn a cosine into "near-duplicate" or "similar", and a text-to-image cosine into a match,
are each encoder's own (tools/training/thresholds.py says how they are measured). This runs the rule for any
encoder the registry can load (``loupe`` is the configured one; with real CLIP weights, for example
``open_clip:ViT-B-32@laion2b_s34b_b79k``):

* Holidays' 422 photos, grouped by scene from its ground truth: unrelated pairs are pairs of different scenes;
* copies of a sample of them (cropped, halved, recompressed) for the near-duplicate level;
* for an encoder with a text tower, Flickr8k's first caption of each photo against the other photos.

Each level is measured on one half of the scenes (or photos) and checked on the other, both ways, so the
printed rates are of pictures the level was not measured on; the levels to configure are then measured on
all of them and printed as the ``[models]`` lines of loupe.toml.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from loupe.base.config import Settings, load_settings
from loupe.evals.harness import pipeline_settings
from loupe.evals.paths import DATASETS
from loupe.tools.image_file import read_image
from loupe.tools.models import Models
from loupe.tools.models.image_encoders import ImageEncoder
from loupe.tools.process import configure_process
from loupe.tools.training.thresholds import (
    Thresholds,
    image_levels,
    near_duplicate_copy,
    text_level,
    unrelated_pairs,
)

BATCH = 16


@dataclass(frozen=True)
class Pictures:
    """Unit vectors of photos, the scene (or photo) each belongs to, and of copies of some of them."""

    vectors: np.ndarray
    groups: list[str]
    copied: np.ndarray  # indices of the photos that have a copy
    copy_vectors: np.ndarray


def embed(encoder: ImageEncoder, pictures: list[Image.Image]) -> np.ndarray:
    return np.concatenate([encoder.embed_images(pictures[i:i + BATCH]).vectors for i in range(0, len(pictures), BATCH)])


def embed_files(encoder: ImageEncoder, paths: list[Path], max_pixels: int,
                on_picture: Callable[[int, Image.Image], None] | None = None) -> np.ndarray:
    """The files' vectors, read BATCH at a time (not every photo decoded at once: Holidays' are up to 7 MP);
    ``on_picture`` sees each decoded picture with its index first."""
    vectors = []
    for start in range(0, len(paths), BATCH):
        pictures = [read_image(path, max_pixels).image.convert("RGB") for path in paths[start:start + BATCH]]
        for index, picture in enumerate(pictures, start):
            if on_picture is not None:
                on_picture(index, picture)
        vectors.append(encoder.embed_images(pictures).vectors)
    return np.concatenate(vectors)


def holidays(encoder: ImageEncoder, folder: Path, sample: int, max_pixels: int) -> Pictures:
    """Every Holidays photo with its scene (the ground truth's query photo), and copies of ``sample`` of them."""
    truth = json.loads((folder / "groundtruth.json").read_text(encoding="utf-8"))
    scene = {name: query for query, relevant in truth.items() for name in (query, *relevant)}
    paths = sorted((folder / "images").glob("*.jpg"))
    rng = random.Random(0)
    copied = np.array(sorted(rng.sample(range(len(paths)), min(sample, len(paths)))))
    chosen, copies = set(copied.tolist()), []

    def copy_if_chosen(index: int, picture: Image.Image) -> None:
        if index in chosen:  # in index order, as the copies' own random draws always were
            copies.append(near_duplicate_copy(picture, rng))

    vectors = embed_files(encoder, paths, max_pixels, copy_if_chosen)
    return Pictures(vectors, [scene.get(p.name, p.name) for p in paths], copied, embed(encoder, copies))


def half_of(group: str) -> int:
    return int(hashlib.sha256(group.encode()).hexdigest(), 16) % 2


def image_report(pictures: Pictures) -> tuple[list[str], Thresholds]:
    """Per half: the levels measured there, and on the other half the share of copies labelled near-duplicate,
    of unrelated pairs reaching "similar", and of same-scene pairs reaching it."""
    halves = np.array([half_of(g) for g in pictures.groups])
    copy_cosines = (pictures.vectors[pictures.copied] * pictures.copy_vectors).sum(axis=1)
    lines = ["| levels measured on | similar | near-duplicate | other half: copies >= near-dup | unrelated >= similar"
             " | same scene >= similar |", "|---|---|---|---|---|---|"]
    for half in (0, 1):
        mine, other = halves == half, halves != half
        similar, near = image_levels(copy_cosines[mine[pictures.copied]],
                                     unrelated_pairs(pictures.vectors[mine], _groups(pictures, mine)))
        vectors, groups = pictures.vectors[other], np.array(_groups(pictures, other))
        cosines = vectors @ vectors.T
        same = (groups[:, None] == groups[None, :]) & ~np.eye(len(groups), dtype=bool)
        unrelated = cosines[groups[:, None] != groups[None, :]]
        lines.append(f"| half {half} | {similar:.3f} | {near:.3f} | "
                     f"{np.mean(copy_cosines[other[pictures.copied]] >= near):.3f} | "
                     f"{np.mean(unrelated >= similar):.4f} | {np.mean(cosines[same] >= similar):.3f} |")
    similar, near = image_levels(copy_cosines, unrelated_pairs(pictures.vectors, pictures.groups))
    return lines, Thresholds(similar, near)


def _groups(pictures: Pictures, mask: np.ndarray) -> list[str]:
    return [group for group, keep in zip(pictures.groups, mask) if keep]


def flickr_text_report(encoder: ImageEncoder, folder: Path, max_pixels: int) -> tuple[list[str], float]:
    """Per half of the photos: the text level measured there, and on the other half the share of captions
    whose own photo reaches it and of captions reaching a photo they do not describe."""
    first: dict[str, str] = {}
    with (folder / "captions.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            first.setdefault(row["image"], row["caption"].strip())
    names = sorted(first)
    photos = embed_files(encoder, [folder / "images" / n for n in names], max_pixels)
    texts = encoder.embed_texts([first[n] for n in names])
    cosines = texts @ photos.T
    halves = np.array([half_of(n) for n in names])
    lines = ["| level measured on | text match | other half: own photo >= level | other photos >= level |",
             "|---|---|---|---|"]
    for half in (0, 1):
        mine, other = halves == half, halves != half
        level = text_level(cosines[np.ix_(mine, mine)][~np.eye(mine.sum(), dtype=bool)])
        block = cosines[np.ix_(other, other)]
        off = block[~np.eye(other.sum(), dtype=bool)]
        lines.append(f"| half {half} | {level:.3f} | {np.mean(np.diag(block) >= level):.3f} | "
                     f"{np.mean(off >= level):.4f} |")
    return lines, text_level(cosines[~np.eye(len(names), dtype=bool)])


def calibration_report(spec: str, datasets: Path, sample: int, settings: Settings) -> str:
    """The levels of the encoder ``spec`` names, per half and as loupe.toml lines (``loupe calibrate``)."""
    settings = pipeline_settings(spec, settings)
    encoder = Models(settings).image_encoder
    parts = [f"## {encoder.name}: levels now similar {encoder.similar_cosine}, near-duplicate "
             f"{encoder.near_duplicate_cosine}, text match {encoder.text_match_cosine}\n"]
    lines, measured = image_report(holidays(encoder, datasets / "holidays", sample, settings.max_pixels))
    parts.append("\n".join(lines) + "\n")
    toml = [f"similar_cosine = {measured.similar_cosine}", f"near_duplicate_cosine = {measured.near_duplicate_cosine}"]
    if encoder.has_text_tower:
        text_lines, level = flickr_text_report(encoder, datasets / "flickr8k", settings.max_pixels)
        parts.append("\n".join(text_lines) + "\n")
        toml.append(f"text_match_cosine = {level}")
    parts.append("Measured on all of them; to use these levels, put under [models] in loupe.toml:\n")
    parts.append("\n".join(toml))
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="loupe", help="a registry string, or loupe (the configured one)")
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--sample", type=int, default=200, help="photos copied for the near-duplicate level")
    args = parser.parse_args()
    configure_process()
    print(calibration_report(args.encoder, args.datasets, args.sample, load_settings()))


if __name__ == "__main__":
    main()
