"""An image encoder's three cosine levels, measured from pictures rather than assumed.

Each encoder's cosines live on their own scale (a CNN's unrelated photos sit near 0.3, CLIP's near 0.5), so
the levels that turn a cosine into a label are measured per encoder, by one rule:

* near-duplicate: just under the 10th percentile of cosines between a picture and a copy of it (cropped by up
  to 10%, halved, recompressed at JPEG quality 30-70: what a re-saved or re-shared file looks like);
* similar: just above the 99th percentile of cosines between pictures of different scenes, so that about one
  unrelated pair in a hundred is shown as "similar";
* text match (encoders with a text tower): just above the 99th percentile of cosines between a caption and
  the other captions' photos.

``loupe train-encoder`` applies the first two to its checkpoint; ``loupe calibrate`` (evals/encoder_calibration.py)
to any encoder over the shared datasets. Numpy only: no torch needed.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image

NEAR_DUPLICATE_MARGIN, SIMILAR_MARGIN, TEXT_MARGIN = 0.02, 0.03, 0.01


@dataclass(frozen=True)
class Thresholds:
    similar_cosine: float
    near_duplicate_cosine: float
    text_match_cosine: float | None = None  # None: no text tower


def near_duplicate_copy(picture: Image.Image, rng: random.Random) -> Image.Image:
    """What a near-duplicate is: resized, cropped by up to 10%, recompressed."""
    width, height = picture.size
    dx, dy = int(width * rng.uniform(0, 0.1)), int(height * rng.uniform(0, 0.1))
    copy = picture.crop((dx, dy, width - int(width * rng.uniform(0, 0.1)), height - int(height * rng.uniform(0, 0.1))))
    copy = copy.resize((max(1, copy.width // 2), max(1, copy.height // 2)))
    buffer = io.BytesIO()
    copy.save(buffer, "JPEG", quality=rng.randint(30, 70))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def image_levels(copy_cosines: np.ndarray, unrelated_cosines: np.ndarray) -> tuple[float, float]:
    """(similar, near-duplicate) from the cosines of pictures with their copies and of unrelated pictures."""
    near_duplicate = float(np.clip(np.percentile(copy_cosines, 10) - NEAR_DUPLICATE_MARGIN, 0.80, 0.97))
    similar = float(np.clip(np.percentile(unrelated_cosines, 99) + SIMILAR_MARGIN, 0.40, near_duplicate - 0.05))
    return round(similar, 3), round(near_duplicate, 3)


def text_level(unrelated_cosines: np.ndarray) -> float:
    """The text-to-image floor from the cosines of captions with photos they do not describe."""
    return round(float(np.percentile(unrelated_cosines, 99) + TEXT_MARGIN), 3)


def unrelated_pairs(vectors: np.ndarray, groups: list[str]) -> np.ndarray:
    """Cosines of every pair of unit vectors whose groups (scenes) differ."""
    cosines = vectors @ vectors.T
    labels = np.array(groups)
    return cosines[labels[:, None] != labels[None, :]]
