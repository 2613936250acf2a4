"""OCR lines in reading order: rows top to bottom, left to right within a row, whatever each line's height."""

from __future__ import annotations

import pytest

from loupe.tools.models.ocr_backends import OcrLine, reading_order

pytestmark = pytest.mark.fast


def _line(text: str, left: float, top: float, height: float) -> OcrLine:
    right, bottom = left + 0.2, top + height
    return OcrLine(text=text, box=[[left, top], [right, top], [right, bottom], [left, bottom]], confidence=0.9)


def test_a_tall_line_and_a_short_one_with_close_tops_share_a_row_above_the_next() -> None:
    # SROIE 046's case: the shop's name (short box) sat between taller address lines and was read fifth.
    lines = [_line("379, JALAN PERMAS SATU,", 0.39, 0.1912, 0.0157), _line("9.90", 0.7, 0.1810, 0.0157),
             _line("PASAR MINI JIN SENG", 0.40, 0.1807, 0.0131), _line("A03155", 0.50, 0.1362, 0.0301)]
    assert [line.text for line in reading_order(lines)] == ["A03155", "PASAR MINI JIN SENG", "9.90",
                                                            "379, JALAN PERMAS SATU,"]


def test_no_lines_stay_no_lines() -> None:
    assert reading_order([]) == []
