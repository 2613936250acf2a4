"""Ground-truth text boxes in the ICDAR format, as ICDAR 2015 and SROIE ship them.

One line per box: ``x1,y1,x2,y2,x3,y3,x4,y4,TEXT`` in the original image's
pixels (the text may itself contain commas; ``###`` marks illegible text).
Used both to train the text detector and to score OCR.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DONT_CARE = "###"
HELD_OUT_SHARE = 0.2  # of each labelled dataset: validation for training, the test set for evals/ocr_eval.py


@dataclass(frozen=True)
class TextBox:
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels: the quad's bounding rectangle

    @property
    def legible(self) -> bool:
        return self.text != DONT_CARE


def read_text_boxes(path: Path) -> list[TextBox]:
    """The boxes of one label file; lines that are not boxes (headers, blanks) are skipped."""
    boxes = []
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        parts = line.strip().split(",", 8)
        if len(parts) < 9:
            continue
        try:
            xs = [float(v) for v in parts[0:8:2]]
            ys = [float(v) for v in parts[1:8:2]]
        except ValueError:
            continue
        boxes.append(TextBox(parts[8].strip(), (min(xs), min(ys), max(xs), max(ys))))
    return boxes


def label_file_for(image: Path) -> Path | None:
    """Where a dataset keeps an image's boxes: ``gt/gt_<stem>.txt`` (ICDAR) or ``box/<stem>.csv`` (SROIE)."""
    root = image.parent.parent
    for candidate in (root / "gt" / f"gt_{image.stem}.txt", root / "box" / f"{image.stem}.csv",
                      root / "labels" / f"{image.stem}.txt"):
        if candidate.is_file():
            return candidate
    return None


def natural_key(path: Path) -> list:
    """img_2 before img_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def held_out(images: list[Path], share: float) -> set[Path]:
    """The last ``share`` of a dataset in natural order: never trained on, used to measure the detector."""
    ordered = sorted(images, key=natural_key)
    count = round(len(ordered) * share)
    return set(ordered[len(ordered) - count:]) if count else set()


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def share_inside(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Share of box a's area that lies in box b."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    area = (a[2] - a[0]) * (a[3] - a[1])
    return width * height / area if width > 0 and height > 0 and area > 0 else 0.0
