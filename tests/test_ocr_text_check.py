"""OCR detects at the picture's own size and reads only what it detects: photos skip reading, receipts and signs
are read (how well, against PP-OCR's stock pipeline, is measured by evals/ocr_eval.py)."""

from __future__ import annotations

from PIL import Image

from tests.conftest import DATASETS, HOLIDAYS, SROIE
from loupe.evals.ocr_eval import read_truth, score_lines, score_words
from loupe.tools.models import Models
from loupe.tools.models.ocr_backends import DETECTION_SIDE, RapidOcrBackend


def test_a_photo_without_text_is_not_read_and_a_receipt_and_a_street_scene_are(models: Models) -> None:
    stock = RapidOcrBackend(stock=True)
    photo = Image.open(HOLIDAYS / "images" / "100601.jpg").convert("RGB")  # a landscape, no printed text
    assert stock.read(photo).lines  # the stock pipeline "read" a hallucinated "JP" here
    assert not models.ocr.has_text(photo) and models.ocr.read(photo).lines == []
    cases = [(SROIE / "images" / "000.jpg", SROIE / "box" / "000.csv", score_lines),  # 44 lines
             (DATASETS / "icdar2015" / "images" / "img_2.jpg", DATASETS / "icdar2015" / "gt" / "gt_img_2.txt",
              score_words)]  # 10 legible words
    for picture, labels, score in cases:
        image = Image.open(picture).convert("RGB")
        assert models.ocr.has_text(image)
        read, counted, _, _ = score(read_truth(labels, *image.size), models.ocr.read(image).lines)
        assert counted >= 10 and read >= 0.8 * counted


def test_a_picture_larger_than_the_detection_side_is_checked_first_and_still_read(models: Models) -> None:
    receipt = Image.open(SROIE / "images" / "000.jpg").convert("RGB")
    scale = 2 * DETECTION_SIDE / max(receipt.size)
    large = receipt.resize((int(receipt.width * scale), int(receipt.height * scale)))
    blank = Image.new("RGB", large.size, "white")
    assert models.ocr.has_text(large) and not models.ocr.has_text(blank)
    lines = [line.text for line in models.ocr.read(large).lines]
    assert len(lines) >= 0.8 * len(models.ocr.read(receipt).lines) and models.ocr.read(blank).lines == []
