"""OCR quality against ground-truth boxes.

    python -m loupe.evals.ocr_eval [--datasets ../shared/datasets] [--detector-weights text-detector.pt]
    loupe eval evals/querysets/icdar2015.jsonl --compare rapidocr,yolo+rapidocr@text-detector.pt

* icdar2015 (blurry phone-camera scene text, word-level boxes, '###' = illegible,
  not counted): word recall (a ground-truth word is read if a predicted line whose
  box overlaps it contains it, case-insensitive) and CER (per ground-truth word,
  the edit distance to the closest word of the overlapping predicted lines; a word
  with no overlapping line costs its length).
* sroie (scanned receipts, line-level boxes): line recall (a ground-truth line is
  read if an overlapping predicted line is within 10% edits of it) and CER per line.

* detection (ICDAR 2015's held-out fifth, which `loupe train-detector` never
  trains on): recall of legible words at IoU >= 0.5, share of words inside a
  detected box, and the share of detected boxes that lie on text.

Each OCR backend runs on each image as indexing would (same decoding). The
images and label files come from the query sets icdar2015.jsonl and
sroie_ocr.jsonl.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from loupe.evals.metrics import character_error_rate, edit_distance, percentile
from loupe.evals.paths import DATASETS, QUERY_SETS, RESULTS
from loupe.evals.query_files import read_query_file
from loupe.base.config import Settings, load_settings
from loupe.base.errors import LoupeError
from loupe.tools.image_file import read_image
from loupe.tools.models.ocr_backends import OcrBackend, OcrLine
from loupe.tools.models.registry import ModelKind, load, parse
from loupe.tools.process import configure_process
from loupe.tools.training.text_boxes import DONT_CARE, iou, read_text_boxes, share_inside

LINE_MATCH_EDITS = 0.10


@dataclass(frozen=True)
class TruthBox:
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 normalised to 0..1


def read_truth(path: Path, width: int, height: int) -> list[TruthBox]:
    """A label file's boxes, normalised to 0..1 of the original image's size."""
    return [TruthBox(b.text, (b.box[0] / width, b.box[1] / height, b.box[2] / width, b.box[3] / height))
            for b in read_text_boxes(path)]


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
        if word.text == DONT_CARE:
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


def evaluate(backend: OcrBackend, images: list[Path], truth_file, scorer, max_pixels: int,
             held_out: frozenset[Path] = frozenset()) -> dict:
    """Recall and CER over all images, and over the ``held_out`` ones alone where there are any: a
    detector from `loupe train-detector` has seen the others, so only those compare it fairly."""
    totals, unseen_totals = [0, 0, 0, 0], [0, 0, 0, 0]
    seconds = []
    for path in images:
        image = read_image(path, max_pixels)
        start = time.perf_counter()
        lines = backend.read(image.image).lines
        seconds.append(time.perf_counter() - start)
        truth = read_truth(truth_file(path), image.width, image.height)  # boxes are in original pixels
        scores = scorer(truth, lines)
        totals = [t + s for t, s in zip(totals, scores)]
        if path in held_out:
            unseen_totals = [t + s for t, s in zip(unseen_totals, scores)]
    result = {"images": len(images), **_recall_and_cer(*totals), "ocr_p50_s": percentile(seconds, 50),
              "ocr_p95_s": percentile(seconds, 95)}
    if held_out:
        result["held_out"] = {"images": len(held_out), **_recall_and_cer(*unseen_totals)}
    return result


def _recall_and_cer(read: int, counted: int, errors: int, characters: int) -> dict:
    return {"counted": counted, "recall": read / counted if counted else 0.0,
            "cer": character_error_rate(errors, characters)}


Detector = Callable[[Image.Image], list[tuple[float, float, float, float, float]]]
DETECTION_IOU = 0.5
COVERED = 0.5


def score_detection(truth: list[TruthBox], found: list[tuple[float, ...]]) -> tuple[int, int, int, int, int]:
    """(legible words matched at IoU >= 0.5, words at least half inside a found box, legible words,
    found boxes that are mostly on text, found boxes), boxes normalised to 0..1.

    Two recalls, because ICDAR 2015 boxes words while PP-OCR's detector boxes
    whole lines: IoU matching is the standard protocol, "covered" credits a
    line box for the words in it. Illegible (###) words are not counted as
    misses, and a box on one is not a false alarm.
    """
    legible = [t.box for t in truth if t.text != DONT_CARE]
    matched = sum(any(iou(word, box[:4]) >= DETECTION_IOU for box in found) for word in legible)
    covered = sum(any(share_inside(word, box[:4]) >= COVERED for box in found) for word in legible)
    on_text = sum(sum(share_inside(box[:4], t.box) for t in truth) >= COVERED for box in found)
    return matched, covered, len(legible), on_text, len(found)


def evaluate_detection(detect: Detector, images: list[Path], truth_file, max_pixels: int) -> dict:
    totals = [0, 0, 0, 0, 0]
    seconds = []
    for path in images:
        image = read_image(path, max_pixels)
        start = time.perf_counter()
        found = detect(image.image)
        seconds.append(time.perf_counter() - start)
        w, h = image.image.size
        boxes = [(x0 / w, y0 / h, x1 / w, y1 / h) for x0, y0, x1, y1, _ in found]
        totals = [t + s for t, s in zip(totals, score_detection(read_truth(truth_file(path), image.width,
                                                                           image.height), boxes))]
    matched, covered, words, on_text, found_boxes = totals
    return {"images": len(images), "words": words, "recall_iou50": matched / words if words else 0.0,
            "recall_covered": covered / words if words else 0.0,
            "precision": on_text / found_boxes if found_boxes else 0.0,
            "boxes_per_image": found_boxes / len(images) if images else 0.0,
            "detect_p50_s": percentile(seconds, 50)}


def load_backend(spec: str, settings: Settings) -> OcrBackend:
    """An OCR backend from a ``--compare`` entry: a backend name, with ``@weights`` for a YOLO detector."""
    return load(parse(ModelKind.OCR, spec, settings.models.ocr_detector_weights), settings)


def check_specs(specs: list[str], settings: Settings) -> None:
    for spec in specs:
        parse(ModelKind.OCR, spec)  # the error lists the registered backends


def run_query_file(path: Path, header: dict, entries: list[dict], specs: list[str] | None, settings: Settings,
                   datasets: Path, index_root: Path) -> dict:
    """The OCR task's runner (see evals/tasks.py): ``specs`` None means the configured backend."""
    return run_query_set(header, entries, specs or [settings.models.ocr], settings, datasets)


def run_query_set(header: dict, entries: list[dict], specs: list[str], settings: Settings, datasets: Path) -> dict:
    """Score each OCR backend on the set's images; detection too, on the held-out images, where it has a detector."""
    scorers = {"words": score_words, "lines": score_lines}
    if header.get("scoring") not in scorers:
        raise LoupeError("an OCR query set's header needs \"scoring\": \"words\" or \"lines\"")
    try:
        truth = {datasets / e["image"]: datasets / e["truth"] for e in entries}
    except (KeyError, TypeError) as exc:
        raise LoupeError(f"every OCR query needs image and truth ({exc})") from exc
    missing = [str(path) for path in [*truth, *truth.values()] if not path.is_file()]
    if missing:
        raise LoupeError(f"{len(missing)} files of the OCR query set are missing, e.g. {missing[0]} (use --datasets)")
    unseen = [datasets / e["image"] for e in entries if e.get("held_out")]
    results: dict = {"task": "ocr", "queries": len(entries), "held_out": len(unseen), "pipelines": {}}
    for spec in specs:
        backend = load_backend(spec, settings)
        scores = evaluate(backend, list(truth), truth.__getitem__, scorers[header["scoring"]], settings.max_pixels,
                          frozenset(unseen))
        detect = getattr(backend, "detect", None)
        if detect is not None and unseen:
            scores["detection"] = evaluate_detection(detect, unseen, truth.__getitem__, settings.max_pixels)
        results["pipelines"][spec] = scores
    return results


def markdown(results: dict) -> str:
    lines = [f"## {results['query_set']}: OCR on {results['queries']} images "
             f"(detection on the {results['held_out']} held out)", "",
             "| backend | recall | CER | recall, held out | CER, held out | OCR p50 s "
             "| detection recall (IoU 0.5) | words inside a box | box precision |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, scores in results["pipelines"].items():
        unseen, found = scores.get("held_out"), scores.get("detection")
        held_out = f"{unseen['recall']:.3f} | {unseen['cer']:.3f}" if unseen else "- | -"
        detection = (f"{found['recall_iou50']:.3f} | {found['recall_covered']:.3f} | {found['precision']:.3f}"
                     if found else "- | - | -")
        lines.append(f"| {name} | {scores['recall']:.3f} | {scores['cer']:.3f} | {held_out} | "
                     f"{scores['ocr_p50_s']:.2f} | {detection} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--detector-weights", default="",
                        help="a YOLO text detector (loupe train-detector) to compare with the configured OCR")
    args = parser.parse_args()
    settings = load_settings()
    specs = [settings.models.ocr] + ([f"yolo+rapidocr@{args.detector_weights}"] if args.detector_weights else [])
    results = {}
    for name in ("icdar2015", "sroie_ocr"):
        header, entries = read_query_file(QUERY_SETS / f"{name}.jsonl")
        results[name] = {"query_set": name, **run_query_set(header, entries, specs, settings, args.datasets)}
        print(markdown(results[name]))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ocr.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
