"""OCR backends: find the text lines in an image (detection) and read them (recognition).

``models.ocr`` picks one. The default, ``rapidocr``, runs PP-OCR: a DBNet-style
detector and an SVTR/CRNN-style recogniser, ONNX models shipped inside the
``rapidocr`` wheel, so it works with no hub; it detects once, at the picture's
own size, and recognises only the boxes found (``rapidocr-every-image`` runs
PP-OCR's stock settings on every picture, to compare). ``textract`` sends the
image to AWS Textract (detect_document_text), with credentials and region from
the usual AWS chain (environment, ~/.aws, instance role).

``yolo+rapidocr`` and ``yolo+textract`` find the text boxes with a YOLO
detector (``models.ocr_detector_weights``, from ``loupe train-detector``) and
read each cropped box with PP-OCR's recogniser or with Textract.

Boxes are stored as four corner points normalised to 0..1 of the image's width
and height, so they stay right whatever size the image is shown at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from PIL import Image

from loupe.base.config import Settings
from loupe.base.errors import ModelNotFoundError
from loupe.tools.models.registry import Factory, ModelKind, ModelSpec, register, require_extra


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


class Recogniser(Protocol):
    def recognise(self, crops: list[Image.Image]) -> list[tuple[str, float]]: ...


@register(ModelKind.OCR, "rapidocr")
def _rapidocr(spec: ModelSpec, settings: Settings) -> OcrBackend:
    return RapidOcrBackend()


@register(ModelKind.OCR, "rapidocr-every-image")
def _rapidocr_every_image(spec: ModelSpec, settings: Settings) -> OcrBackend:
    """PP-OCR's stock settings on every picture, as Loupe ran it before: to compare with the default."""
    return RapidOcrBackend(stock=True)


@register(ModelKind.OCR, "textract", extra="aws")
def _textract(spec: ModelSpec, settings: Settings) -> OcrBackend:
    return TextractBackend()


def _detect_then(recogniser: Callable[[], Recogniser]) -> Factory:
    """A YOLO text detector (weights from the spec) whose boxes ``recogniser`` reads."""
    def factory(spec: ModelSpec, settings: Settings) -> OcrBackend:
        from loupe.tools.models.text_detection import YoloTextDetector

        return DetectThenRecognise(spec.family, YoloTextDetector(spec.weights, settings.offline), recogniser())
    return factory


register(ModelKind.OCR, "yolo+rapidocr", "yolo+rapidocr[@detector.pt]",
         extra="train")(_detect_then(lambda: RapidOcrBackend()))
register(ModelKind.OCR, "yolo+textract", "yolo+textract[@detector.pt]",
         extra="train")(_detect_then(lambda: TextractBackend()))  # and [aws], which TextractBackend checks


# Lines whose tops are closer than this share of the shorter line's height are one row ("ITEM ... 9.90"). It was a
# row number from each line's top divided by its own height, so lines of different heights on one row could
# land rows apart (a shop's name read fifth on SROIE 046). 0.3 and 0.5 gave the same field scores on both halves
# of SROIE's receipts, 0.7 less (evals/document_fields_eval.py).
SAME_ROW = 0.5


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Top-to-bottom rows, left-to-right within a row."""
    def top(line: OcrLine) -> float:
        return min(p[1] for p in line.box)

    def height(line: OcrLine) -> float:
        return max(p[1] for p in line.box) - top(line)

    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=top):
        if rows and top(line) - top(rows[-1][0]) < SAME_ROW * min(height(rows[-1][0]), height(line)):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda line: min(p[0] for p in line.box))]


# PP-OCR's stock detector scales the short side of an image up to 736 px: a 1 x 500 px picture would become
# 736 x 368,000 px (3 GB of floats). A picture is padded (right and bottom, white) to at most this ratio first,
# so its pixels keep their coordinates. At 6, the worst case (a 2048 px long side) is detected at 736 x 4,416 px
# for 540 MB more RSS (10 would cost 900 MB); receipts (SROIE's tallest is 1:3.5) are untouched.
MAX_ASPECT_RATIO = 6


def _no_extreme_aspect(image: Image.Image) -> Image.Image:
    width, height = image.size
    if max(width, height) <= MAX_ASPECT_RATIO * min(width, height):
        return image
    side = -(-max(width, height) // MAX_ASPECT_RATIO)  # ceiling
    canvas = Image.new("RGB", (max(width, side), max(height, side)), "white")
    canvas.paste(image, (0, 0))
    return canvas


# Tuned on the shared sets (ICDAR 2015's 250 scene-text images and SROIE's 100 receipts; loupe eval
# evals/querysets/icdar2015.jsonl --compare rapidocr,rapidocr-every-image, and sroie_ocr.jsonl): PP-OCR's stock
# settings scale a picture's short side up to 736 px (18 times the pixels of a 200 px photo), turn each line by a
# direction classifier and keep boxes above 0.5. Detecting at the picture's own size (at most DETECTION_SIDE on the
# long side) with boxes from 0.3 and no classifier read more and cost less on both sets: SROIE line recall 0.835 ->
# 0.848, ICDAR word recall 0.687 -> 0.712, 1.72 -> 1.53 s a receipt, 0.63 -> 0.54 s a scene. Leaving out the classifier
# alone raised recall on both sets (0.835 -> 0.846, 0.687 -> 0.698): it turned more upright lines over than it
# righted.
DETECTION_SIDE = 1280
DETECTION_BOX_THRESHOLD = 0.3
# A picture larger than DETECTION_SIDE is first looked over at TEXT_CHECK_SIDE (about half the pixels), and
# detected in full only where that finds text: most photos have none. Smaller pictures are detected once,
# which is the check itself: where it finds no box, nothing is recognised.
TEXT_CHECK_SIDE = 960


def _detector_params(side: int) -> dict:
    return {"Global.log_level": "error", "Det.limit_type": "max", "Det.limit_side_len": side,
            "Det.box_thresh": DETECTION_BOX_THRESHOLD}


class RapidOcrBackend:
    """PP-OCR (detection + recognition) on onnxruntime, detecting at the picture's own size (see
    DETECTION_SIDE); ``stock`` runs RapidOCR's own settings (upscaled detection, direction classifier) on every
    picture, as Loupe did before, to compare against."""

    name = "rapidocr"

    def __init__(self, stock: bool = False) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise ModelNotFoundError("OCR backend rapidocr is not installed: `pip install rapidocr onnxruntime`") from exc
        self._stock = stock
        self._engine = RapidOCR(params={"Global.log_level": "error"} if stock else _detector_params(DETECTION_SIDE))
        # A second engine of which only the detector ever loads: its own size limit, no shared state to flip.
        self._checker = None if stock else RapidOCR(params=_detector_params(TEXT_CHECK_SIDE))
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)

    def has_text(self, image: Image.Image) -> bool:
        """Whether detection finds any text box (always True for the stock pipeline, which reads every picture)."""
        if self._stock:
            return True
        picture = _no_extreme_aspect(image.convert("RGB"))
        return self._finds_text(self._checker if self._is_large(picture) else self._engine, picture)

    @staticmethod
    def _is_large(picture: Image.Image) -> bool:
        return max(picture.size) > DETECTION_SIDE

    @staticmethod
    def _finds_text(engine: Callable, picture: Image.Image) -> bool:
        output = engine(picture, use_det=True, use_cls=False, use_rec=False)
        return output.boxes is not None and len(output.boxes) > 0

    def read(self, image: Image.Image) -> OcrResult:
        picture = _no_extreme_aspect(image.convert("RGB"))  # what both the check and the full pipeline see
        if not self._stock and self._is_large(picture) and not self._finds_text(self._checker, picture):
            return OcrResult(lines=[])
        # The use_* flags are given every time: RapidOCR keeps the last call's flags. Where detection finds no
        # box, RapidOCR recognises nothing.
        output = self._engine(picture, use_det=True, use_cls=self._stock, use_rec=True)
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

    def detect(self, image: Image.Image) -> list[tuple[float, float, float, float, float]]:
        """PP-OCR's DBNet boxes alone, as (x0, y0, x1, y1, score) in pixels: to compare detectors."""
        output = self._engine(_no_extreme_aspect(image.convert("RGB")), use_det=True, use_cls=False, use_rec=False)
        if output.boxes is None:
            return []
        scores = output.scores if output.scores is not None else [1.0] * len(output.boxes)
        return [(float(min(b[:, 0])), float(min(b[:, 1])), float(max(b[:, 0])), float(max(b[:, 1])), float(score))
                for b, score in zip(output.boxes, scores)]

    def recognise(self, crops: list[Image.Image]) -> list[tuple[str, float]]:
        """Each crop read as one line, by the recogniser alone (no detection)."""
        results = []
        for crop in crops:
            output = self._engine(crop.convert("RGB"), use_det=False, use_cls=False, use_rec=True)
            results.append((str(output.txts[0]).strip(), float(output.scores[0])) if output.txts else ("", 0.0))
        return results


class TextractBackend:
    """AWS Textract's synchronous text detection; LINE blocks become lines."""

    name = "textract"
    MAX_BYTES = 5 * 1024 * 1024  # the synchronous API's limit for inline image bytes

    def __init__(self) -> None:
        require_extra("aws", "OCR backend textract")
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

    def recognise(self, crops: list[Image.Image]) -> list[tuple[str, float]]:
        """Each crop sent on its own (one request per box); its lines joined with spaces."""
        results = []
        for crop in crops:
            lines = self.read(crop).lines
            text = " ".join(line.text for line in lines)
            results.append((text, min((line.confidence for line in lines), default=0.0)))
        return results

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


class DetectThenRecognise:
    """A text detector's boxes, each cropped and read by a recogniser."""

    def __init__(self, name: str, detector, recogniser: Recogniser) -> None:
        self.name = name
        self._detector = detector
        self._recogniser = recogniser

    def detect(self, image: Image.Image) -> list[tuple[float, float, float, float, float]]:
        return self._detector.detect(image)

    def read(self, image: Image.Image) -> OcrResult:
        from loupe.tools.models.text_detection import crop_boxes

        boxes = self._detector.detect(image)
        texts = self._recogniser.recognise(crop_boxes(image, boxes)) if boxes else []
        width, height = image.size
        lines = [
            OcrLine(text=text,
                    box=[[round(x / width, 4), round(y / height, 4)] for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))],
                    confidence=round(confidence, 4))
            for (x0, y0, x1, y1, _), (text, confidence) in zip(boxes, texts)
            if text
        ]
        return OcrResult(lines=reading_order(lines))
