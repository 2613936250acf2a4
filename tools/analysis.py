"""What the models say about an image: embedding, OCR, caption and text vectors.

Indexing and every query image run the same analysis, so a query is compared
with the collection through exactly the same pipeline.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image

from loupe.tools.local_features import LocalFeatures, extract_features
from loupe.tools.models import Models
from loupe.tools.models.captioners import Caption
from loupe.tools.models.ocr_backends import OcrResult


class StageTimer:
    """Seconds spent per pipeline stage, summed over a run (for reports and benchmarks).

    Stages timed on several threads at once (the indexer's file readers) add up their threads' seconds.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[name] += time.perf_counter() - start


@dataclass(frozen=True)
class ImageAnalysis:
    image_vector: np.ndarray
    local_features: LocalFeatures
    ocr: OcrResult
    caption: Caption
    ocr_vector: np.ndarray  # zeros when there is no text
    caption_vector: np.ndarray


def analyse_images(models: Models, images: list[Image.Image], timer: StageTimer | None = None,
                   on_stage=None, local_features: list[LocalFeatures] | None = None) -> list[ImageAnalysis]:
    """Run every stage on a batch; ``on_stage(name)`` lets a progress bar show where it is.

    ``local_features`` are the images' ORB features when the caller extracted them already (the indexer's
    file readers do, on other threads).
    """
    timer = timer or StageTimer()
    notify = on_stage or (lambda name: None)

    notify("embed")
    with timer.stage("embed"):
        embeddings = models.image_encoder.embed_images(images)
    if local_features is None:
        with timer.stage("local-features"):
            local_features = [extract_features(image) for image in images]
    notify("ocr")
    with timer.stage("ocr"):
        ocr_results = [models.ocr.read(image) for image in images]
    notify("caption")
    with timer.stage("caption"):
        labels = embeddings.labels or [None] * len(images)
        captions = [models.captioner.describe(image, image_labels, len(ocr.lines))
                    for image, image_labels, ocr in zip(images, labels, ocr_results)]
    notify("text-embed")
    with timer.stage("text-embed"):
        text_vectors = embed_texts_or_zeros(models, [ocr.text for ocr in ocr_results] + [c.text for c in captions])
    count = len(images)
    return [
        ImageAnalysis(
            image_vector=embeddings.vectors[i],
            local_features=local_features[i],
            ocr=ocr_results[i],
            caption=captions[i],
            ocr_vector=text_vectors[i],
            caption_vector=text_vectors[count + i],
        )
        for i in range(count)
    ]


def embed_texts_or_zeros(models: Models, texts: list[str]) -> np.ndarray:
    """Embed the non-empty texts; empty ones get a zero vector (never searched)."""
    vectors = np.zeros((len(texts), models.text_embedder.dim), dtype=np.float32)
    present = [i for i, text in enumerate(texts) if text.strip()]
    if present:
        vectors[present] = models.text_embedder.embed([texts[i] for i in present])
    return vectors
