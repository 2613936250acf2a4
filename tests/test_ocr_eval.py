"""OCR scoring against ground-truth boxes: hand-made cases, and the real OCR on real receipts."""

from __future__ import annotations

import pytest

from evals.ocr_eval import TruthBox, evaluate, read_truth, score_lines, score_words
from tests.conftest import DATASETS
from tools.models import Models
from tools.models.ocr_backends import OcrLine


def _line(text: str, x0: float, y0: float, x1: float, y1: float) -> OcrLine:
    return OcrLine(text=text, box=[[x0, y0], [x1, y0], [x1, y1], [x0, y1]], confidence=0.9)


def test_word_scoring_ignores_illegible_words_and_needs_overlap() -> None:
    truth = [TruthBox("EXIT", (0.1, 0.1, 0.2, 0.2)), TruthBox("###", (0.5, 0.5, 0.6, 0.6)),
             TruthBox("Dining", (0.3, 0.1, 0.4, 0.2)), TruthBox("far", (0.8, 0.8, 0.9, 0.9))]
    lines = [_line("exit dinning", 0.05, 0.05, 0.45, 0.25), _line("far", 0.0, 0.9, 0.05, 0.95)]
    read, counted, errors, characters = score_words(truth, lines)
    # EXIT read exactly; "Dining" vs "dinning" is 1 edit and not contained; "far" has no overlapping line.
    assert (read, counted, errors, characters) == (1, 3, 0 + 1 + 3, 4 + 6 + 3)


def test_line_scoring_allows_ten_percent_edits() -> None:
    truth = [TruthBox("TOTAL 9.00", (0.1, 0.5, 0.5, 0.55)), TruthBox("THANK YOU", (0.1, 0.8, 0.5, 0.85))]
    lines = [_line("TOTAL 9,00", 0.1, 0.5, 0.5, 0.55), _line("THANK", 0.1, 0.8, 0.3, 0.85)]
    assert score_lines(truth, lines) == (1, 2, 1 + 4, 10 + 9)


def test_truth_files_parse_text_with_commas(tmp_path) -> None:
    path = tmp_path / "gt.txt"
    path.write_text("\ufeff10,20,110,20,110,40,10,40,NO.53 55,57 & 59\n", encoding="utf-8")
    [box] = read_truth(path, 200, 100)
    assert box.text == "NO.53 55,57 & 59" and box.box == pytest.approx((0.05, 0.2, 0.55, 0.4))


def test_real_ocr_reads_most_receipt_lines(models: Models) -> None:
    images = sorted((DATASETS / "sroie" / "images").glob("*.jpg"))[:2]
    result = evaluate(models, images, lambda p: p.parent.parent / "box" / f"{p.stem}.csv", score_lines,
                      models.settings.max_pixels)
    assert result["counted"] > 40 and result["recall"] >= 0.7 and result["cer"] <= 0.15
