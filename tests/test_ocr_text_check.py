"""OCR reads only pictures in which a quick detection finds text: photos skip it, receipts and signs do not."""

from __future__ import annotations

from PIL import Image

from tests.conftest import DATASETS, HOLIDAYS, SROIE
from loupe.tools.models import Models
from loupe.tools.models.ocr_backends import RapidOcrBackend


def test_a_photo_without_text_skips_reading_and_a_receipt_is_read_as_before(models: Models) -> None:
    every_image = RapidOcrBackend(text_check=False)
    photo = Image.open(HOLIDAYS / "images" / "100601.jpg").convert("RGB")  # a landscape, no printed text
    assert every_image.read(photo).lines  # the old pipeline "read" a hallucinated "JP" here
    assert not models.ocr.has_text(photo) and models.ocr.read(photo).lines == []
    for picture in (SROIE / "images" / "000.jpg", DATASETS / "icdar2015" / "images" / "img_1.jpg"):
        image = Image.open(picture).convert("RGB")
        assert models.ocr.has_text(image)
        assert models.ocr.read(image) == every_image.read(image)  # the same lines, boxes and confidences
