"""What an image encoder returns, in a module of its own so that every encoder (each in its own module, some
needing an extra) can return it without importing the others."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageEmbeddings:
    """Vectors for a batch of images, and class labels where the model has a classifier."""

    vectors: np.ndarray  # (n, dim), float32, L2-normalised
    labels: list[list[tuple[str, float]]] | None = None  # per image: (label, probability), best first
