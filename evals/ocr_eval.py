"""OCR quality against ground-truth boxes.

    python -m evals.ocr_eval [--datasets ../shared/datasets] [--limit N]

* icdar2015 (blurry phone-camera scene text, word-level boxes, '###' = illegible,
  not counted): word recall (a ground-truth word is read if a predicted line whose
  box overlaps it contains it, case-insensitive) and CER (per ground-truth word,
  the edit distance to the closest word of the overlapping predicted lines; a word
  with no overlapping line costs its length).
* sroie (scanned receipts, line-level boxes): line recall (a ground-truth line is
  read if an overlapping predicted line is within 10% edits of it) and CER per line.

The configured OCR backend runs on each image as indexing would (same decoding).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from evals.metrics import character_error_rate, edit_distance, percentile
from evals.retrieval import DEFAULT_DATASETS, RESULTS
from loupe.config import load_settings
from tools.image_file import read_image
from tools.models import Models
from tools.models.ocr_backends import OcrLine

LINE_MATCH_EDITS = 0.10


@dataclass(frozen=True)
class TruthBox:
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 normalised to 0..1


def read_truth(path: Path, width: int, height: int) -> list[TruthBox]:
    """ICDAR-style lines: x1,y1,...,x4,y4,TEXT (the text may itself contain commas)."""
    boxes = []
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        parts = line.strip().split(",", 8)
        if len(parts) < 9:
            continue
        xs = [float(v) / width for v in parts[0:8:2]]
        ys = [float(v) / height for v in parts[1:8:2]]
        boxes.append(TruthBox(parts[8].strip(), (min(xs), min(ys), max(xs), max(ys))))
    return boxes


def _bounds(line: OcrLine) -> tuple[float, float, float, float]:
    xs = [p[0] for p in line.box]
    ys = [p[1] for p in line.box]
    return min(xs), min(ys), max(xs), max(ys)


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def score_words(truth: list[TruthBox], lines: list[OcrLine]) -> tuple[int, int, int, int]:
    """(words read, words counted, edit operations, reference characters) for one image."""
    read = counted = errors = characters = 0
    for word in truth:
        if word.text == "###":
            continue
        target = _normalise(word.text)
        counted += 1
        characters += len(target)
        candidates = [w for line in lines if _overlaps(word.box, _bounds(line))
                      for w in _normalise(line.text).split()]
        best = min((edit_distance(target, c) for c in candidates), default=len(target))
        errors += best
        read += any(target in _normalise(line.text) for line in lines if _overlaps(word.box, _bounds(line)))
    return read, counted, errors, characters


def score_lines(truth: list[TruthBox], lines: list[OcrLine]) -> tuple[int, int, int, int]:
    """(lines read, lines counted, edit operations, reference characters) for one receipt."""
    read = errors = characters = 0
    for expected in truth:
        target = _normalise(expected.text)
        characters += len(target)
        best = min((edit_distance(target, _normalise(line.text)) for line in lines
                    if _overlaps(expected.box, _bounds(line))), default=len(target))
        errors += best
        read += best <= LINE_MATCH_EDITS * len(target)
    return read, len(truth), errors, characters


def evaluate(models: Models, images: list[Path], truth_file, scorer, max_pixels: int) -> dict:
    totals = [0, 0, 0, 0]
    seconds = []
    for path in images:
        image = read_image(path, max_pixels)
        start = time.perf_counter()
        lines = models.ocr.read(image.image).lines
        seconds.append(time.perf_counter() - start)
        truth = read_truth(truth_file(path), image.width, image.height)  # boxes are in original pixels
        totals = [t + s for t, s in zip(totals, scorer(truth, lines))]
    read, counted, errors, characters = totals
    return {"images": len(images), "counted": counted, "recall": read / counted if counted else 0.0,
            "cer": character_error_rate(errors, characters), "ocr_p50_s": percentile(seconds, 50),
            "ocr_p95_s": percentile(seconds, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--limit", type=int, default=0, help="images per dataset (0: all)")
    args = parser.parse_args()
    settings = load_settings()
    models = Models(settings)
    limit = args.limit or None
    icdar = sorted((args.datasets / "icdar2015" / "images").glob("*.jpg"))[:limit]
    sroie = sorted((args.datasets / "sroie" / "images").glob("*.jpg"))[:limit]
    results = {
        "ocr": settings.models.ocr,
        "icdar2015_words": evaluate(models, icdar, lambda p: p.parent.parent / "gt" / f"gt_{p.stem}.txt",
                                    score_words, settings.max_pixels),
        "sroie_lines": evaluate(models, sroie, lambda p: p.parent.parent / "box" / f"{p.stem}.csv",
                                score_lines, settings.max_pixels),
    }
    for name in ("icdar2015_words", "sroie_lines"):
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in results[name].items()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ocr.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
