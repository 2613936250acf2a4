"""The Textract OCR backend: the real boto3 request and block parsing against moto's Textract."""

from __future__ import annotations

import pytest
from moto import mock_aws
from moto.textract.models import TextractBackend as MockedTextract
from PIL import Image

from loupe.base.errors import ModelNotFoundError
from tests.conftest import SROIE, load_model
from loupe.tools.models.ocr_backends import TextractBackend
from loupe.tools.models.registry import ModelKind


def _line(text: str, x: float, y: float, confidence: float) -> dict:
    polygon = [{"X": x, "Y": y}, {"X": x + 0.3, "Y": y}, {"X": x + 0.3, "Y": y + 0.04}, {"X": x, "Y": y + 0.04}]
    return {"BlockType": "LINE", "Id": text, "Text": text, "Confidence": confidence,
            "Geometry": {"Polygon": polygon, "BoundingBox": {"Left": x, "Top": y, "Width": 0.3, "Height": 0.04}}}


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(MockedTextract, "BLOCKS", [
        {"BlockType": "PAGE", "Id": "page", "Geometry": {"Polygon": []}},
        _line("TOTAL 9.00", 0.1, 0.80, 99.1),
        _line("BOOK TA .K (TAMAN DAYA) SDN BHD", 0.1, 0.05, 97.5),
        {"BlockType": "WORD", "Id": "w", "Text": "TOTAL", "Confidence": 99.0, "Geometry": {"Polygon": []}},
    ])
    with mock_aws():
        yield


def test_textract_lines_are_parsed_in_reading_order(aws) -> None:
    backend = load_model(ModelKind.OCR, "textract")
    result = backend.read(Image.open(SROIE / "images" / "000.jpg"))
    assert [line.text for line in result.lines] == ["BOOK TA .K (TAMAN DAYA) SDN BHD", "TOTAL 9.00"]
    assert result.lines[0].confidence == 0.975
    assert result.lines[1].box[0] == [0.1, 0.8] and len(result.lines[1].box) == 4
    assert result.text == "BOOK TA .K (TAMAN DAYA) SDN BHD\nTOTAL 9.00"


def test_large_images_are_shrunk_under_the_request_limit(aws) -> None:
    backend = TextractBackend()
    backend.MAX_BYTES = 200_000
    noisy = Image.effect_noise((2000, 2000), 120).convert("RGB")
    data = backend.encode(noisy)
    assert len(data) <= 200_000


def test_textract_without_credentials_says_what_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ModelNotFoundError, match="AWS_DEFAULT_REGION"):
        load_model(ModelKind.OCR, "textract")
