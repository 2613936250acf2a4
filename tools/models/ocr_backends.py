"""OCR backends: find the text lines in an image (detection) and read them (recognition).

``models.ocr`` picks one. The default, ``rapidocr``, runs PP-OCR: a DBNet-style
detector and an SVTR/CRNN-style recogniser, ONNX models shipped inside the
``rapidocr`` wheel, so it works with no hub. ``textract`` sends the image to
AWS Textract (detect_document_text), with credentials and region from the usual
AWS chain (environment, ~/.aws, instance role).

Boxes are stored as four corner points normalised to 0..1 of the image's width
and height, so they stay right whatever size the image is shown at.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Protocol

from PIL import Image

from loupe.errors import ConfigError, ModelNotFoundError


@dataclass(frozen=True)
class OcrLine:
    text: str
    box: list[list[float]]  # four (x, y) corners, normalised to 0..1
    confidence: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class OcrResult:
    lines: list[OcrLine]

    @property
    def text(self) -> str:
        """Lines in reading order, one per line: what is embedded and searched."""
        return "\n".join(line.text for line in self.lines)


class OcrBackend(Protocol):
    name: str

    def read(self, image: Image.Image) -> OcrResult: ...


def load_ocr_backend(name: str) -> OcrBackend:
    if name == "rapidocr":
        return RapidOcrBackend()
    if name == "textract":
        return TextractBackend()
    raise ConfigError(f"unknown OCR backend {name!r}: use 'rapidocr' or 'textract'")


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Top-to-bottom, then left-to-right within a row of similar height."""
    def key(line: OcrLine) -> tuple[float, float]:
        ys = [p[1] for p in line.box]
        height = max(ys) - min(ys)
        row = round(min(ys) / max(height, 1e-3) / 0.8)  # lines whose tops are close share a row
        return (row, min(p[0] for p in line.box))
    return sorted(lines, key=key)


class RapidOcrBackend:
    """PP-OCR (detection + direction classifier + recognition) on onnxruntime."""

    name = "rapidocr"

    def __init__(self) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise ModelNotFoundError("OCR backend rapidocr is not installed: `pip install rapidocr onnxruntime`") from exc
        self._engine = RapidOCR(params={"Global.log_level": "error"})
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)

    def read(self, image: Image.Image) -> OcrResult:
        output = self._engine(image.convert("RGB"))
        if output.boxes is None or output.txts is None:
            return OcrResult(lines=[])
        width, height = image.size
        lines = [
            OcrLine(
                text=str(text).strip(),
                box=[[round(float(x) / width, 4), round(float(y) / height, 4)] for x, y in box],
                confidence=round(float(score), 4),
            )
            for box, text, score in zip(output.boxes, output.txts, output.scores)
            if str(text).strip()
        ]
        return OcrResult(lines=reading_order(lines))


class TextractBackend:
    """AWS Textract's synchronous text detection; LINE blocks become lines."""

    name = "textract"
    MAX_BYTES = 5 * 1024 * 1024  # the synchronous API's limit for inline image bytes

    def __init__(self) -> None:
        import boto3

        session = boto3.Session()
        if session.get_credentials() is None or not session.region_name:
            raise ModelNotFoundError(
                "OCR backend textract needs AWS credentials and a region from the usual AWS chain: "
                "set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and AWS_DEFAULT_REGION, "
                "or use ocr = 'rapidocr' to read text locally"
            )
        self._client = session.client("textract")

    def read(self, image: Image.Image) -> OcrResult:
        response = self._client.detect_document_text(Document={"Bytes": self.encode(image)})
        lines = [
            OcrLine(
                text=block["Text"].strip(),
                box=[[round(point["X"], 4), round(point["Y"], 4)] for point in block["Geometry"]["Polygon"]],
                confidence=round(block.get("Confidence", 0.0) / 100, 4),
            )
            for block in response.get("Blocks", [])
            if block.get("BlockType") == "LINE" and block.get("Text", "").strip()
        ]
        return OcrResult(lines=reading_order(lines))

    def encode(self, image: Image.Image) -> bytes:
        """JPEG bytes under the API's size limit, shrinking the image if it must."""
        import io

        picture = image.convert("RGB")
        while True:
            buffer = io.BytesIO()
            picture.save(buffer, "JPEG", quality=90)
            if buffer.tell() <= self.MAX_BYTES:
                return buffer.getvalue()
            picture = picture.resize((picture.width * 3 // 4, picture.height * 3 // 4))
