"""EfficientNet-Lite0 in PyTorch: for training, for a GPU, and as the reference the ONNX graph is checked against.

Only the ``[train]`` extra installs torch; the default path runs the encoder
on ONNX Runtime (tools/models/efficientnet_onnx.py) and imports nothing here.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from loupe.base.errors import ModelNotFoundError
from loupe.tools.models.efficientnet_inputs import (
    PIXEL_CENTRE,
    PIXEL_SCALE,
    TUNED_FORMAT,
    efficientnet_pixels,
    efficientnet_weights,
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


def efficientnet_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (n, 3, h, w) scaled the way EfficientNet-Lite was trained."""
    return (pixels.float() - PIXEL_CENTRE) / PIXEL_SCALE


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


class TorchEfficientNet:
    """The pooled head on PyTorch, on the GPU when there is one: (n, 3, h, w) floats in, arrays out."""

    def __init__(self, weights: str, offline: bool, power: float) -> None:
        model, _ = load_efficientnet(weights, offline)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self._head = PooledHead(model.eval(), power).eval().to(self.device)

    @torch.inference_mode()
    def run(self, pixels: np.ndarray) -> list[np.ndarray]:
        pooled, probabilities = self._head(torch.from_numpy(pixels).to(self.device))
        return [pooled.float().cpu().numpy(), probabilities.float().cpu().numpy()]


def cuda_available() -> bool:
    return torch.cuda.is_available()
