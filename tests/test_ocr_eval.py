"""OCR scoring against ground-truth boxes: hand-made cases, and the real OCR on real receipts."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from loupe.evals.ocr_eval import TruthBox, evaluate, read_truth, score_lines, score_words
from loupe.cli import app
from tests.conftest import DATASETS
from loupe.tools.models import Models
from loupe.tools.models.ocr_backends import OcrLine


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
    result = evaluate(models.ocr, images, lambda p: p.parent.parent / "box" / f"{p.stem}.csv", score_lines,
                      models.settings.max_pixels)
    assert result["counted"] > 40 and result["recall"] >= 0.7 and result["cer"] <= 0.15


def test_loupe_eval_runs_an_ocr_query_set_with_detection_on_held_out_images(tmp_path) -> None:
    query_set = tmp_path / "receipts_ocr.jsonl"
    query_set.write_text("\n".join(json.dumps(line) for line in [
        {"task": "ocr", "scoring": "lines"},
        {"id": "000", "image": "sroie/images/000.jpg", "truth": "sroie/box/000.csv", "held_out": False},
        {"id": "001", "image": "sroie/images/001.jpg", "truth": "sroie/box/001.csv", "held_out": True},
    ]))
    result = CliRunner().invoke(app, ["eval", str(query_set), "--datasets", str(DATASETS), "--out", str(tmp_path),
                                      "--compare", "rapidocr"])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "receipts_ocr.json").read_text())["pipelines"]["rapidocr"]
    assert scores["images"] == 2 and scores["recall"] >= 0.7
    assert scores["held_out"]["images"] == 1 and 0 < scores["held_out"]["counted"] < scores["counted"]
    assert scores["detection"]["images"] == 1 and scores["detection"]["recall_covered"] >= 0.7
    assert "| rapidocr |" in (tmp_path / "receipts_ocr.md").read_text()


def test_ocr_query_set_errors_name_the_problem(tmp_path) -> None:
    query_set = tmp_path / "bad.jsonl"
    query_set.write_text('{"task": "ocr", "scoring": "words"}\n{"id": "x", "image": "nowhere.jpg", "truth": "no.txt"}\n')
    result = CliRunner().invoke(app, ["eval", str(query_set), "--datasets", str(tmp_path), "--out", str(tmp_path)])
    assert result.exit_code == 1 and "2 files of the OCR query set are missing" in result.output
    query_set.write_text('{"task": "ocr", "scoring": "words"}\n'
                         '{"id": "x", "image": "icdar2015/images/img_1.jpg", "truth": "icdar2015/gt/gt_img_1.txt"}\n')
    result = CliRunner().invoke(app, ["eval", str(query_set), "--datasets", str(DATASETS), "--out", str(tmp_path),
                                      "--compare", "tesseract"])
    assert result.exit_code == 1 and "unknown OCR backend 'tesseract'" in result.output
