"""Item lines and a picture's printed title, read from OCR lines with their boxes."""

from __future__ import annotations

import json

import pytest

from loupe.evals.document_fields_eval import truth_lines
from loupe.evals.printed_title_eval import same_title
from loupe.evals.receipt_items_eval import match, written_items
from loupe.tools.printed_title import printed_title
from loupe.tools.receipt_items import Item, described, printed_items
from tests.conftest import SROIE

pytestmark = pytest.mark.fast


def _line(text: str, left: float, top: float, width: float = 0.2, height: float = 0.02,
          confidence: float = 1.0) -> dict:
    return {"text": text, "confidence": confidence,
            "box": [[left, top], [left + width, top], [left + width, top + height], [left, top + height]]}


def _receipt(stem: str) -> list[dict]:
    return truth_lines(SROIE / "images" / f"{stem}.jpg", SROIE / "box" / f"{stem}.csv")


def test_names_printed_below_their_numbers_are_read_with_their_counts() -> None:
    """026: a bar code, count, unit price, discount and amount, then "- IK YELLOW 70GRAMS" below."""
    items = printed_items(_receipt("026"))
    assert items[0] == Item("IK YELLOW 70GRAMS", 10.0, 105.66)
    assert Item("CBE A4 SIZE 20 POCKETS REFILLABLE NEW CLEAR HOLDER", 1.0, 8.40) in items  # two printed lines
    assert len(items) == 7 and round(sum(item.amount for item in items), 2) == 144.68  # its subtotal


def test_without_a_column_header_the_items_start_at_the_first_amount() -> None:
    """AEON prints no header and its till's date below the totals; "GST ID" under the address ends nothing."""
    lines = [_line("AEON CO. (M) BHD (126926-H)", 0.27, 0.10, 0.4), _line("3RD FLR, AEON TAMAN MALURI SC", 0.26, 0.12),
             _line("GST ID :002017394688", 0.31, 0.20), _line("MON-SUN:1000 HRS - 2200 HRS", 0.28, 0.25),
             _line("000008190901", 0.21, 0.30), _line("5.90SR", 0.75, 0.30, 0.1), _line("STERILE FILTRAT", 0.22, 0.33),
             _line("Sub-total", 0.10, 0.38), _line("5.90", 0.79, 0.38, 0.1), _line("09/02/2018 12:53", 0.11, 0.61)]
    assert printed_items(lines) == [Item("STERILE FILTRAT", 1.0, 5.90)]
    assert printed_items(_receipt("071")) == [Item("SAKUMASHIKIDROP", 1.0, 5.90), Item("BINDER CLIP -BL", 1.0, 5.90),
                                              Item("150YEN CAR NECK", 1.0, 5.90)]


def test_a_header_with_a_stray_number_is_a_header_and_a_tax_code_in_the_amount_is_no_name() -> None:
    """099 as Loupe's OCR read it: "11" left of the column names; 052's "10.00 ZRL" (zero-rated)."""
    lines = [_line("Time: 16:15:00", 0.56, 0.44), _line("Salesperson", 0.05, 0.47), _line("Ref. :", 0.56, 0.47),
             _line("11", 0.05, 0.52, 0.02), _line("Qty", 0.34, 0.52, 0.05), _line("S/Price", 0.47, 0.52, 0.1),
             _line("Amount", 0.63, 0.52, 0.1), _line("Tax", 0.79, 0.52, 0.05),
             _line("1470", 0.06, 0.55, 0.05), _line("3", 0.36, 0.55, 0.02), _line("15.90", 0.49, 0.55, 0.08),
             _line("47.70", 0.67, 0.55, 0.08), _line("SR", 0.81, 0.55, 0.03), _line("25KG SIKA CREAM-88", 0.06, 0.58),
             _line("Total Qty:", 0.15, 0.61), _line("3", 0.37, 0.61, 0.02), _line("47.70", 0.69, 0.61, 0.08)]
    assert printed_items(lines) == [Item("25KG SIKA CREAM-88", 3.0, 47.70)]
    zero_rated = [_line("Item", 0.05, 0.30), _line("Amt", 0.7, 0.30, 0.1), _line("02", 0.05, 0.33, 0.03),
                  _line("10.00 ZRL", 0.7, 0.33, 0.15), _line("SUB TOTAL", 0.05, 0.36), _line("10.00", 0.7, 0.36, 0.1)]
    assert printed_items(zero_rated) == []  # a code and an amount: no name is printed, so no item is made up


def test_names_printed_above_and_discounts_below_are_read() -> None:
    assert printed_items(_receipt("000")) == [Item("KF MODELLING CLAY KIDDY FISH", 1.0, 9.00)]
    assert printed_items(_receipt("072")) == [  # "2pc @ 9.89" under the name; "Member Discount -1.20"
        Item("TOMBOW C/TAPE CX5N", 2.0, 19.78), Item("L11 X-VENTURE UNEXPLA[BK]", 1.0, 10.80),
        Item("PU EXPANDING FILE-TS", 1.0, 18.81)]
    assert printed_items(_receipt("001"))[1] == Item("GF-TABLE LAMP/STITCH <I>", 1.0, 50.31)  # "@DISC 10.00% -5.59"


def test_a_unit_column_and_a_tax_code_do_not_hide_the_item() -> None:
    """As OCR reads 066: the name above, then count, unit, prices and a tax code right of the amount."""
    lines = [_line("QTY UOM", 0.1, 0.30), _line("Price", 0.4, 0.30), _line("Tax Code", 0.75, 0.30),
             _line("MAGNUM ALMOND 90ML", 0.1, 0.33, 0.4), _line("1", 0.1, 0.36, 0.02), _line("WALK", 0.18, 0.36),
             _line("4.50", 0.4, 0.36), _line("4.50", 0.6, 0.36), _line("ZRL", 0.82, 0.36, 0.05),
             _line("*Total Qty: 1.00", 0.1, 0.40, 0.4), _line("4.50", 0.82, 0.40),
             _line("GST Summary", 0.1, 0.50), _line("Amount (RM)", 0.4, 0.50), _line("Tax(RM)", 0.7, 0.50),
             _line("ZRL", 0.1, 0.53), _line("4.50", 0.4, 0.53), _line("0.00", 0.7, 0.53)]
    assert printed_items(lines) == [Item("MAGNUM ALMOND 90ML", 1.0, 4.50)]


def test_a_picture_without_item_lines_has_none() -> None:
    assert printed_items([_line("STOP", 0.4, 0.4), _line("AHEAD", 0.4, 0.45)]) == []
    assert printed_items([]) == []


def test_stored_items_are_shown_in_words() -> None:
    stored = json.dumps([Item("IK YELLOW 70GRAMS", 10.0, 105.66).as_dict(), Item("ARTLINE 70", 1.0, 0.85).as_dict()])
    assert described(stored) == "IK YELLOW 70GRAMS x10 105.66; ARTLINE 70 0.85"
    assert described("[]") == described(None) == ""


def test_items_are_scored_by_amount_and_name_once_each() -> None:
    written = [Item("GARBAGE BAG (BLUE) 74C", 1.0, 1.25), Item("GARBAGE BAG (GREEN) 74", 1.0, 1.25)]
    read = [Item("GARBAGE BAG (BLUE) 74C", 1.0, 1.25), Item("GARBAGE BAG (BLUE) 74C", 1.0, 1.25),
            Item("SUBTOTAL", 1.0, 2.50)]
    assert match(read, written) == (2, 2, 2)  # a name a few letters apart still counts, each written item once
    assert match([Item("WALK", 1.0, 1.25)], written)[0] == 0  # the right amount with another name does not
    assert len(written_items()) == 100  # the hand-written set covers every SROIE receipt


def test_the_title_is_the_largest_confident_text_with_the_lines_stacked_on_it() -> None:
    cover = [_line("JIM CARREY", 0.3, 0.05, 0.4, 0.04), _line("ACE VENTURA", 0.1, 0.40, 0.8, 0.12),
             _line("PET DETECTIVE", 0.2, 0.53, 0.6, 0.11), _line("4BEASTPICTURE", 0.1, 0.80, 0.8, 0.15, 0.6),
             _line("DVD", 0.8, 0.95, 0.1, 0.03)]
    assert printed_title(cover) == "ACE VENTURA PET DETECTIVE"  # the unsure, taller line is left out
    assert printed_title([_line("12 34", 0.1, 0.1, 0.5, 0.2)]) is None
    assert same_title("CROWEE ABEAUTIFUL MIND", "A BEAUTIFUL MIND") and not same_title("CROWEE", "A BEAUTIFUL MIND")
