"""Printed dates and totals read from OCR lines, folded text, and names found however they are typed."""

from __future__ import annotations

import pytest

from loupe.evals.document_fields_eval import truth_lines
from loupe.metadata import parse_price
from tests.conftest import SROIE
from loupe.tools.document_fields import (fold, fold_lines, iso_date, name_pattern, printed_currency, printed_date,
                                   printed_shop, printed_total)
from loupe.tools.records import MatchedRecord, MatchLabel, ordered
from loupe.tools.text_search import name_runs, spelled_as_stored

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier


@pytest.mark.parametrize(("text", "iso"), [
    ("19/10/2018 20:49:59", "2018-10-19"), ("DATE: 2018-03-23", "2018-03-23"), ("05 MAR 2018", "2018-03-05"),
    ("14-03-18", "2018-03-14"), ("12/28/2017", "2017-12-28"), ("March 5, 2018", "2018-03-05"),
    ("2018:03:23 12:00:00", "2018-03-23"), ("no date here 12.50", None), ("99/99/2018", None),
])
def test_dates_are_read_day_first_unless_that_cannot_be(text: str, iso: str | None) -> None:
    assert iso_date(text) == iso


def test_the_printed_date_prefers_a_line_that_says_date() -> None:
    assert printed_date("INVOICE 01/02/2017\nDate:\n25/12/2018 8:13 PM") == "2018-12-25"


def _line(text: str, left: float, top: float, width: float = 0.2) -> dict:
    return {"text": text, "box": [[left, top], [left + width, top], [left + width, top + 0.02], [left, top + 0.02]]}


def test_a_total_is_read_from_the_amount_in_its_row() -> None:
    """OCR reads the label and amount columns as separate lines: the amount is found beside its label."""
    lines = [_line("Sub Total", 0.05, 0.50), _line("Total Qty", 0.05, 0.53), _line("Rounding", 0.05, 0.56),
             _line("Total Sales (Inclusive of GST)", 0.05, 0.60, 0.5), _line("CASH", 0.05, 0.63),
             _line("CHANGE", 0.05, 0.66), _line("51.42", 0.8, 0.50), _line("7", 0.8, 0.53), _line("-0.02", 0.8, 0.56),
             _line("54.50", 0.8, 0.60), _line("60.00", 0.8, 0.63), _line("5.50", 0.8, 0.66)]
    assert printed_total(lines) == 54.50


def test_no_total_label_means_no_total() -> None:
    assert printed_total([_line("THANK YOU", 0.1, 0.9), _line("12.00", 0.8, 0.9)]) is None


def test_folding_forgives_case_accents_punctuation_and_number_words() -> None:
    assert fold("MR. D.I.Y. (M) SDN BHD") == "mr d i y m sdn bhd"
    assert fold("Café Déjà Vu") == "cafe deja vu"
    assert fold("Seven Eleven") == fold("7-ELEVEN") == "7 11"
    assert fold_lines("A.B\n\nC-D") == "a b\nc d"


@pytest.mark.parametrize(("typed", "printed", "found"), [
    ("DIY", "MR. D.I.Y. (M) SDN BHD", True), ("D I Y", "MR D.I.Y. (JOHOR)", True), ("Mr DIY", "MR.D.I.Y(M)SDN", True),
    ("7 Eleven", "7-ELEVEN MALAYSIA", True), ("Seven Eleven", "7-ELEVEN", True), ("99 speedmart", "99 SPEED MART", True),
    ("DIY", "KEDAI DIYANA", False), ("711", "TEL 0371123", False),
])
def test_names_match_at_word_boundaries_however_spaced(typed: str, printed: str, found: bool) -> None:
    run = "".join(fold(typed).split())
    assert bool(name_pattern(run).search(fold(printed))) is found


def test_name_runs_skip_request_words_at_their_ends() -> None:
    runs = [run for _, _, run in name_runs("the receipts from three stooges please")]
    assert runs[0] == "3stooges"  # number words fold to digits, as on "3 STOOGES" and "THREE STOOGES"
    assert "the" not in runs and "please" not in runs and "receipts" not in runs


def test_a_misspelt_name_is_spelled_as_stored() -> None:
    stored = {"lightroom", "gallery", "stationery", "popular"}
    assert spelled_as_stored("Lightroom Galery", stored) == "lightroom gallery"
    assert spelled_as_stored("lian hing stationary reciepts", stored) == "lian hing stationery reciepts"
    assert spelled_as_stored("starbucks", stored) == "starbucks"  # nothing alike: left as typed


def test_results_order_by_amount_or_date_with_unknown_values_last() -> None:
    def record(name: str, **meta) -> MatchedRecord:
        return MatchedRecord(id=name, path=name, file_name=name, score=1.0, match=MatchLabel.TEXT_MATCH, why="",
                             metadata=meta)
    records = [record("a", total=9.0, date="2018-03-01"), record("b", price=3.0, total=50.0),
               record("c"), record("d", total=20.0, date="2017-01-05")]
    assert [r.id for r in ordered(records, "amount", False)] == ["b", "a", "d", "c"]  # a price beats a total
    assert [r.id for r in ordered(records, "amount", True)] == ["d", "a", "b", "c"]
    assert [r.id for r in ordered(records, "date", True)] == ["a", "d", "b", "c"]


def _receipt(stem: str) -> list[dict]:
    """A SROIE receipt's ground-truth lines (box/ID.csv), boxes normalised as Loupe stores OCR lines."""
    return truth_lines(SROIE / "images" / f"{stem}.jpg", SROIE / "box" / f"{stem}.csv")


@pytest.mark.parametrize(("stem", "shop"), [
    ("008", "PERNIAGAAN ZHENG HUI"),  # the first line
    ("009", "GERBANG ALAF RESTAURANTS SDN BHD"),  # after a till number, "1950"
    ("029", "C W KHOO HARDWARE SDN BHD"),  # after two number lines
    ("060", "BENS INDEPENDENT GROCER SDN. BHD"),  # the legal name, not the logo "B.I.G." above it
    ("011", "AIK HUAT HARDWARE ENTERPRISE (SETIA ALAM) SDN BHD"),  # over three lines
    ("072", "POPULAR BOOK CO. (M) SDN BHD"),  # "POPULAR BOOK" / "CO. (M) SDN BHD"
    ("012", "HOME MASTER HARDWARE & ELECTRICAL"),  # "... HARDWARE &" / "ELECTRICAL"
    ("031", "AEON CO. (M) BHD"),  # its registration number "(126926-H)" dropped
    ("077", "BANH MI CAFE SDN BHD"),  # "DIMILIKI: BANH MI CAFE SDN BHD 1110644-W": owned by
    ("043", "32 PUB & BISTRO OWN BY CNU TRADING"),
])
def test_the_shop_is_read_from_a_receipts_first_lines(stem: str, shop: str) -> None:
    assert printed_shop([line["text"] for line in _receipt(stem)]) == shop


def test_no_line_that_could_be_a_name_means_no_shop() -> None:
    assert printed_shop([]) is None
    assert printed_shop(["3180303", "TEL: 03-7731 8169", "12.00"]) is None


@pytest.mark.parametrize(("printed", "iso"), [  # every way SROIE's keys write a date, and receipts print one
    ("25/12/2018", "2018-12-25"), ("15/01/2018", "2018-01-15"), ("5/3/2018", "2018-03-05"),
    ("4/02/2017", "2017-02-04"),
    ("18/03/18", "2018-03-18"), ("12-01-19", "2019-01-12"), ("18-11-18", "2018-11-18"), ("23-01-2019", "2019-01-23"),
    ("2018-03-12", "2018-03-12"), ("12 MAR 2018", "2018-03-12"), ("28 MAR 18", "2018-03-28"),
    ("20180304", "2018-03-04"), ("INVOICE NO: 2018030610100080498", None),
])
def test_every_date_format_of_sroie_is_read(printed: str, iso: str | None) -> None:
    assert iso_date(printed) == iso


@pytest.mark.parametrize(("keyed", "amount"), [("9.00", 9.0), ("327.00", 327.0), ("RM 3.90", 3.9), ("$8.20", 8.2),
                                               ("", None)])
def test_every_amount_format_of_sroie_keys_is_read(keyed: str, amount: float | None) -> None:
    assert parse_price(keyed) == amount


@pytest.mark.parametrize(("stem", "total", "currency"), [
    ("000", 9.00, "MYR"), ("006", 327.00, None), ("030", 8.20, "$"), ("081", 3.90, "MYR"), ("031", 75.00, None),
])
def test_a_receipts_total_and_currency_are_read_from_its_lines(stem: str, total: float, currency: str | None) -> None:
    lines = _receipt(stem)
    assert printed_total(lines) == total
    assert printed_currency("\n".join(line["text"] for line in lines)) == currency


def test_currency_signs_and_codes_stand_apart_from_words() -> None:
    assert printed_currency("TOTAL RM9.00\nCASH RM 10.00\nPERMAS JAYA, FORM 3") == "MYR"
    assert printed_currency("US$ 4.00") == "USD" and printed_currency("€ 3,50 £1") in ("EUR", "GBP")
    assert printed_currency("PERMAS FORM") is None
