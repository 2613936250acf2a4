"""The text bridge: words find pictures with an image encoder that has no text tower.

EfficientNet-Lite0 knows pixels, MiniLM knows words, and nothing relates the two but the three ImageNet
labels stored as tags. The bridge is one matrix, learnt from image-caption pairs
(tools/training/bridge.py, ``loupe train-bridge``), that carries a query's text embedding into the image
encoder's space, where the table's own vector search over ``image_vector`` ranks the pictures. An index
built before the bridge existed needs no new column and no model run: only the query is mapped.

A map belongs to one pair of models, so it is used only when the configured image encoder and text embedder
are the ones it was trained on (a tuned encoder's vectors live elsewhere, and get no bridge).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from loupe.base.errors import LoupeError

PACKAGED_BRIDGE = Path(__file__).with_name("text_bridge.npz")
FORMAT = "loupe-text-bridge-1"


@dataclass(frozen=True)
class TextBridge:
    """A (text dim x image dim) map, the models it joins, and how it was made.

    ``floor``: a bridged hit whose cosine with the mapped query is below it is dropped; chosen with the
    map (tools/training/bridge.py).
    """

    matrix: np.ndarray
    image_encoder: str
    text_embedder: str
    floor: float
    provenance: dict = field(default_factory=dict)

    def to_image_space(self, text_vectors: np.ndarray) -> np.ndarray:
        """Text embeddings (n, text dim) as unit vectors (n, image dim) to search ``image_vector`` with."""
        mapped = np.asarray(text_vectors, np.float32) @ self.matrix
        return mapped / np.maximum(np.linalg.norm(mapped, axis=1, keepdims=True), 1e-12)

    def joins(self, image_encoder: str, text_embedder: str) -> bool:
        return (self.image_encoder, self.text_embedder) == (image_encoder, text_embedder)

    def save(self, path: Path) -> None:
        """Write the map as float16 (half the size; rankings are unchanged) with its provenance as JSON."""
        np.savez_compressed(path, format=np.array(FORMAT), matrix=self.matrix.astype(np.float16),
                            image_encoder=np.array(self.image_encoder), text_embedder=np.array(self.text_embedder),
                            floor=np.array(self.floor, np.float32), provenance=np.array(json.dumps(self.provenance)))


def load_bridge(path: Path) -> TextBridge:
    """The map in ``path``; a one-line LoupeError when it is missing or is not a map ``save`` wrote."""
    if not path.is_file():
        raise LoupeError(f"text bridge {path} does not exist: write one with `loupe train-bridge`")
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["format"]) != FORMAT:
                raise LoupeError(f"text bridge {path} has format {str(stored['format'])!r}, not {FORMAT!r}")
            bridge = TextBridge(matrix=stored["matrix"].astype(np.float32),
                                image_encoder=str(stored["image_encoder"]), text_embedder=str(stored["text_embedder"]),
                                floor=float(stored["floor"]), provenance=json.loads(str(stored["provenance"])))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise LoupeError(f"text bridge {path} is unreadable ({type(exc).__name__}): write it again with "
                         "`loupe train-bridge`") from exc
    if bridge.matrix.ndim != 2:
        raise LoupeError(f"text bridge {path} holds no 2-d map")
    return bridge


@cache
def packaged_bridge() -> TextBridge:
    """The map that ships with Loupe, read once per process."""
    return load_bridge(PACKAGED_BRIDGE)


def bridge_for(image_encoder: str, text_embedder: str, image_dim: int, text_dim: int) -> TextBridge | None:
    """The packaged map when it joins these two models at these widths, else None (no bridge)."""
    bridge = packaged_bridge()
    if bridge.joins(image_encoder, text_embedder) and bridge.matrix.shape == (text_dim, image_dim):
        return bridge
    return None
