"""YOLO text detection (ultralytics): boxes around text, for a recogniser to read.

The design write-up found a YOLO detector better than DBNet-style ones at
finding blurry text in a single scene. No text-detection weights can be
downloaded here, so the weights come from ``loupe train-detector``
(tools/training/text_detector_training.py) or from the user's own file.

ultralytics reaches for the network twice unless told not to: for hub checks
(``YOLO_OFFLINE=1``, set by :func:`~tools.process.configure_process`) and for the
Arial font its plots use, which :func:`ultralytics_offline` puts in place before
ultralytics is imported.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from PIL import Image

from loupe.base.errors import ModelNotFoundError
from loupe.tools.models.resolver import ModelSource, resolve
from loupe.tools.process import configure_process

DETECTION_CONFIDENCE = 0.25
MAX_DETECTION_SIZE = 1920  # px: larger pictures are shrunk to this, their text is big enough to survive it
CROP_PADDING = 0.15  # of the box height, on every side: recognisers misread glyphs cut at the edge


def load_yolo_class():
    """ultralytics' YOLO class, imported offline and without its global patch of PIL.Image.open.

    On import, ultralytics replaces PIL.Image.open with a version that, for a
    file Pillow cannot identify, tries to pip-install pi-heif: offline that
    raises ModuleNotFoundError instead of PIL's UnidentifiedImageError, and a
    corrupt file in the collection would stop indexing instead of being skipped.
    """
    ultralytics_offline()
    from ultralytics import YOLO
    from ultralytics.utils import patches  # imported now, so it cannot patch again later

    Image.open = patches._image_open  # Pillow's own function, which ultralytics keeps here
    return YOLO


def ultralytics_offline() -> Path:
    """Make sure ultralytics' settings folder (set by configure_process) has its font; returns that folder."""
    configure_process()
    folder = Path(os.environ["YOLO_CONFIG_DIR"])
    font = folder / "Ultralytics" / "Arial.ttf"
    if not font.is_file():
        import matplotlib

        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    return folder


class YoloTextDetector:
    """Axis-aligned text boxes from a YOLO model trained with one class, text."""

    def __init__(self, weights: str, offline: bool, device: str = "cpu") -> None:
        path = resolve(
            ModelSource(
                name="YOLO text-detection weights",
                local_path=weights,
                how_to_get="No pretrained text detector can be downloaded: train one with `loupe train-detector` "
                           "and set ocr_detector_weights under [models] to its .pt file.",
            ),
            offline,
        )
        YOLO = load_yolo_class()  # noqa: N806 - the class, under its usual name
        try:
            self._model = YOLO(str(path), task="detect")
        except Exception as exc:  # noqa: BLE001 - ultralytics raises many types for a bad file
            raise ModelNotFoundError(f"YOLO text-detection weights {path} cannot be loaded: {exc}") from exc
        self._device = device

    def detect(self, image: Image.Image, image_size: int | None = None) -> list[tuple[float, float, float, float, float]]:
        """(x0, y0, x1, y1, confidence) in pixels, most confident first.

        By default at the picture's own size (up to MAX_DETECTION_SIZE): `loupe train-detector` trains on
        squares cut at the pictures' own resolution, so that is the scale the detector knows text at.
        """
        if image_size is None:
            image_size = min(MAX_DETECTION_SIZE, math.ceil(max(image.size) / 32) * 32)
        result = self._model.predict(image.convert("RGB"), imgsz=image_size, conf=DETECTION_CONFIDENCE,
                                     device=self._device, verbose=False)[0]
        boxes = result.boxes
        found = [(*map(float, xyxy), float(conf)) for xyxy, conf in zip(boxes.xyxy.tolist(), boxes.conf.tolist())]
        return sorted(found, key=lambda box: -box[4])


def crop_boxes(image: Image.Image, boxes: list[tuple[float, ...]]) -> list[Image.Image]:
    """Each box cut out with a margin, clipped to the picture."""
    crops = []
    for x0, y0, x1, y1, *_ in boxes:
        pad = (y1 - y0) * CROP_PADDING
        crops.append(image.crop((max(0, int(x0 - pad)), max(0, int(y0 - pad)),
                                 min(image.width, int(x1 + pad) + 1), min(image.height, int(y1 + pad) + 1))))
    return crops
