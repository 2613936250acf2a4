"""YOLO text detection: a tiny real training run, and the detect-then-recognise OCR backends."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from moto import mock_aws
from moto.textract.models import TextractBackend as MockedTextract
from PIL import Image
from typer.testing import CliRunner

from loupe.evals.ocr_eval import TruthBox, score_detection
from loupe.cli import app
from loupe.base.errors import ConfigError, ModelNotFoundError
from tests.conftest import DATASETS, SROIE, load_model
from loupe.tools.models.ocr_backends import (
    DetectThenRecognise,
    OcrResult,
    RapidOcrBackend,
    TextractBackend,
)
from loupe.tools.models.registry import ModelKind
from loupe.tools.models.text_detection import YoloTextDetector
from loupe.tools.training.text_boxes import held_out, read_text_boxes
from loupe.tools.training.text_detector_training import boxes_in_window, square_windows, yolo_label


class GroundTruthDetector:
    """Stands in for a trained detector (none can be trained in a test): the receipt's labelled boxes."""

    def __init__(self, label_file: Path) -> None:
        self.boxes = [(*b.box, 1.0) for b in read_text_boxes(label_file)]

    def detect(self, image: Image.Image) -> list[tuple[float, ...]]:
        return self.boxes


def test_yolo_labels_are_normalised_centres_and_clipped() -> None:
    assert yolo_label((10, 20, 30, 60), 100, 200) == "0 0.200000 0.200000 0.200000 0.200000"
    assert yolo_label((-10, 20, 30, 60), 100, 200) == "0 0.150000 0.200000 0.300000 0.200000"
    assert yolo_label((99, 20, 130, 60), 100, 200) is None  # under 2 px wide once clipped


def test_square_windows_cover_the_picture_and_keep_boxes_mostly_inside() -> None:
    windows = square_windows(1280, 720, 640)
    assert windows == [(0, 0, 640, 640), (640, 0, 1280, 640), (0, 80, 640, 720), (640, 80, 1280, 720)]
    assert square_windows(300, 1000, 640) == [(0, 0, 300, 640), (0, 360, 300, 1000)]
    boxes = [(600, 10, 700, 30), (620, 10, 700, 30), (10, 630, 50, 660)]
    # the first box is 40 of 100 px inside the first window, the second 20 of 80, the third 10 of 30 high
    assert boxes_in_window(boxes, (0, 0, 640, 640)) == []
    assert boxes_in_window(boxes, (640, 0, 1280, 640)) == [(0, 10, 60, 30), (0, 10, 60, 30)]
    assert boxes_in_window(boxes, (0, 80, 640, 720)) == [(10, 550, 50, 580)]


def test_held_out_split_is_the_last_fifth_in_natural_order() -> None:
    images = sorted((DATASETS / "icdar2015" / "images").glob("*.jpg"))
    unseen = held_out(images, 0.2)
    assert len(unseen) == 50 and {p.name for p in unseen} == {f"img_{n}.jpg" for n in range(201, 251)}


def test_detection_scoring_by_hand() -> None:
    truth = read_truth_from([("EXIT", (0.1, 0.1, 0.2, 0.2)), ("###", (0.5, 0.5, 0.6, 0.6)),
                             ("SALE", (0.3, 0.1, 0.4, 0.2))])
    found = [(0.1, 0.1, 0.2, 0.21), (0.05, 0.05, 0.45, 0.25), (0.5, 0.5, 0.6, 0.6), (0.8, 0.8, 0.9, 0.9)]
    # EXIT: IoU 0.95 with box 1; SALE: only inside the line box 2 (covered, IoU 0.11);
    # boxes 1 and 3 lie on text, box 2 is 2/8 text, box 4 is on nothing.
    assert score_detection(truth, found) == (1, 2, 2, 2, 4)


def read_truth_from(items: list[tuple[str, tuple]]) -> list[TruthBox]:
    return [TruthBox(text, box) for text, box in items]


def test_detected_boxes_are_cropped_and_read_by_the_recogniser() -> None:
    backend = DetectThenRecognise("yolo+rapidocr", GroundTruthDetector(SROIE / "box" / "000.csv"), RapidOcrBackend())
    image = Image.open(SROIE / "images" / "000.jpg")
    lines = backend.read(image).lines
    truth = {b.text for b in read_text_boxes(SROIE / "box" / "000.csv")}
    assert len(lines) > 0.8 * len(truth)
    assert sum(line.text in truth for line in lines) > 0.6 * len(truth)
    assert all(0 <= x <= 1 and 0 <= y <= 1 for line in lines for x, y in line.box)


def test_textract_reads_detected_crops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    polygon = [{"X": 0, "Y": 0}, {"X": 1, "Y": 0}, {"X": 1, "Y": 1}, {"X": 0, "Y": 1}]
    monkeypatch.setattr(MockedTextract, "BLOCKS", [
        {"BlockType": "LINE", "Id": "1", "Text": "TOTAL 9.00", "Confidence": 98.0, "Geometry": {"Polygon": polygon}}])
    detector = GroundTruthDetector(SROIE / "box" / "000.csv")
    detector.boxes = detector.boxes[:3]
    with mock_aws():
        result = DetectThenRecognise("yolo+textract", detector, TextractBackend()).read(
            Image.open(SROIE / "images" / "000.jpg"))
    assert [line.text for line in result.lines] == ["TOTAL 9.00"] * 3  # one request per detected box
    assert result.lines[0].confidence == 0.98


def test_yolo_backend_needs_weights_and_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="loupe train-detector"):
        load_model(ModelKind.OCR, "yolo+rapidocr", str(tmp_path / "missing.pt"))
    with pytest.raises(ModelNotFoundError, match="loupe train-detector"):
        load_model(ModelKind.OCR, "yolo+rapidocr")
    with pytest.raises(ConfigError, match="yolo\\+rapidocr"):
        load_model(ModelKind.OCR, "tesseract")


def test_tiny_training_run_writes_weights_the_backend_loads(tmp_path: Path) -> None:
    data = tmp_path / "icdar"
    for folder in ("images", "gt"):
        (data / folder).mkdir(parents=True)
    for number in (1, 2, 3, 4, 5):
        shutil.copyfile(DATASETS / "icdar2015" / "images" / f"img_{number}.jpg", data / "images" / f"img_{number}.jpg")
        shutil.copyfile(DATASETS / "icdar2015" / "gt" / f"gt_img_{number}.txt", data / "gt" / f"gt_img_{number}.txt")
    weights = tmp_path / "detector.pt"
    result = CliRunner().invoke(app, ["train-detector", str(data), "--out", str(weights), "--work", str(tmp_path / "work"),
                                      "--synthetic", "3", "--epochs", "1", "--image-size", "64", "--batch-size", "4",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    # 4 pictures to train on, up to 4 squares of 64 px with text from each (img_4 has 3), and 3 synthetic pictures
    assert "trained on 18 pictures and squares" in result.output and "validated on 4" in result.output
    squares = sorted((tmp_path / "work" / "dataset" / "images" / "val").glob("*.jpg"))
    assert [p.name for p in squares] == [f"icdar-img_5-{n}.jpg" for n in range(4)]
    assert all(Image.open(p).size == (64, 64) for p in squares)  # cut at the picture's own resolution, not shrunk
    assert all((tmp_path / "work" / "dataset" / "labels" / "val" / f"{p.stem}.txt").read_text() for p in squares)
    detector = YoloTextDetector(str(weights), offline=True)
    image = Image.open(data / "images" / "img_1.jpg")
    boxes = detector.detect(image, image_size=64)  # one epoch from random weights: boxes may be few or none
    assert all(len(box) == 5 and 0 <= box[0] <= box[2] <= image.width for box in boxes)
    assert isinstance(load_model(ModelKind.OCR, "yolo+rapidocr", str(weights)).read(image), OcrResult)


def test_loading_ultralytics_keeps_corrupt_images_a_clear_error(tmp_path: Path) -> None:
    from loupe.base.errors import ImageRejected
    from loupe.tools.image_file import read_image
    from loupe.tools.models.text_detection import load_yolo_class

    load_yolo_class()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageRejected):
        read_image(broken, 10**8)
