"""Small stand-ins for the model Protocols, for the fast test tier (``pytest -m fast``).

They are not mock objects: each computes a real, deterministic answer from its input (pixels, words),
cheap enough that a whole index-search-answer cycle over a real LanceDB table takes a second. What
they cannot show (how good the real models are) is the real-model suite's job.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image

from loupe.base.config import Settings
from loupe.tools.models import Models
from loupe.tools.models.captioners import Caption
from loupe.tools.models.image_embeddings import ImageEmbeddings
from loupe.tools.models.ocr_backends import OcrLine, OcrResult


class PixelEncoder:
    """The image as a 12 x 12 colour thumbnail, centred and L2-normalised: copies land close, others far."""

    name = "fake-pixels"
    dim = 12 * 12 * 3
    has_text_tower = False
    similar_cosine = 0.6
    near_duplicate_cosine = 0.95
    text_match_cosine = 1.0

    def embed_images(self, images: list[Image.Image]) -> ImageEmbeddings:
        vectors = []
        for image in images:
            pixels = np.asarray(image.convert("RGB").resize((12, 12), Image.Resampling.BILINEAR), np.float32)
            vector = (pixels - pixels.mean()).ravel()
            vectors.append(vector / (np.linalg.norm(vector) or 1.0))
        labels = [[("a picture", 1.0)] for _ in images]
        return ImageEmbeddings(np.asarray(vectors, np.float32), labels)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError("no text tower")


class HashedWordsEmbedder:
    """Words hashed into 64 buckets: texts sharing words get a high cosine."""

    name = "fake-words"
    dim = 64

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


class LinesBySize:
    """OCR that 'reads' the lines given for pictures of one size: the tests choose what each picture says."""

    name = "fake-ocr"

    def __init__(self, lines: dict[tuple[int, int], list[str]]) -> None:
        self._lines = lines

    def read(self, image: Image.Image) -> OcrResult:
        texts = self._lines.get(image.size, [])
        return OcrResult([OcrLine(text, [[0, i / 10], [1, i / 10], [1, (i + 1) / 10], [0, (i + 1) / 10]], 0.99)
                          for i, text in enumerate(texts)])


class LabelCaptioner:
    name = "tags"

    def describe(self, image: Image.Image, labels: list[tuple[str, float]] | None, ocr_lines: int) -> Caption:
        return Caption("a picture" + (", printed text" if ocr_lines else ""), "tags")


def fake_models(settings: Settings, ocr_lines: dict[tuple[int, int], list[str]]) -> Models:
    """A Models whose four models are the fakes above (no model file is loaded)."""
    models = Models(settings)
    models.__dict__.update(image_encoder=PixelEncoder(), text_embedder=HashedWordsEmbedder(),
                           ocr=LinesBySize(ocr_lines), captioner=LabelCaptioner())
    return models
