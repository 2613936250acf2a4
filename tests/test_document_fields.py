"""Printed dates and totals read from OCR lines, folded text, and names found however they are typed."""

from __future__ import annotations

import random

import pytest

from loupe.evals.document_fields_eval import truth_lines
from loupe.metadata import parse_price
from tests.conftest import SROIE
from loupe.tools.document_fields import (MIN_MISREAD_LETTERS, dollar_for_ringgit, fold, fold_lines, iso_date,
                                         misread_name_pattern, name_pattern, printed_currency,
                                         printed_date, printed_shop, printed_total)
from loupe.tools.records import MatchedRecord, MatchLabel, ordered
from loupe.tools.text_search import _near_copy, name_runs, spelled_as_stored

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


@pytest.mark.parametrize(("label", "amount", "total"), [
    ("Net Amt :", "53.55", 53.55),  # a restaurant's label for the amount due
    ("Tatal Sales (Inclusive of GST) :", "32.70", 32.70),  # OCR read the O of TOTAL as A
    ("GRAND TOTAL", "10 00", 10.00),  # OCR read the decimal point as a space
    ("GrossAmt", "47.80", None),  # before service tax: not what was paid
    ("Item", "10 00", None),  # a pair of numbers beside no total label stays a pair
    ("TOTAL", "7-00", 7.00),  # OCR read the point as a hyphen
    ("TL:RM", "28.60", 28.60),  # a till's abbreviation
    ("TL", "28.60", None),  # a bare "TL" may be anything
])
def test_labels_and_amounts_as_ocr_reads_them(label: str, amount: str, total: float | None) -> None:
    assert printed_total([_line(label, 0.05, 0.70, 0.4), _line(amount, 0.8, 0.70)]) == total


def test_where_no_total_label_shows_an_amount_the_tender_less_the_change_is_the_total() -> None:
    """026 as Loupe's OCR read it: TOTAL and CASH shared one printed amount, read as a line in CASH's row; the
    tax summary's "TOTAL :" below is the amount before tax."""
    lines = [_line("TOTAL", 0.05, 0.671), _line("CASH", 0.05, 0.688), _line("153.35", 0.8, 0.693),
             _line("CHANGE", 0.05, 0.708), _line("0.00", 0.8, 0.716),
             _line("GST SUMMARY", 0.3, 0.77), _line("TOTAL :", 0.05, 0.847), _line("144.68", 0.5, 0.853)]
    assert printed_total(lines) == 153.35
    no_change = [line for line in lines if line["text"] not in ("CHANGE", "0.00")]
    assert printed_total(no_change) == 144.68  # cash handed over may be more than the bill: not taken alone


def test_no_total_label_means_no_total() -> None:
    assert printed_total([_line("THANK YOU", 0.1, 0.9), _line("12.00", 0.8, 0.9)]) is None
    amounts = [_line("9.00", 0.8, 0.5), _line("3.00", 0.8, 0.53), _line("13.00", 0.8, 0.56)]
    assert printed_total(amounts) is None  # 9 + 3 is not 13: no amount adds up the others


def test_without_a_total_label_the_amount_its_column_adds_up_to_is_the_total() -> None:
    """047 as Loupe's OCR read it, tilted: close rows, CASH's amount a row below it, no change row."""
    lines = [_line("OPT.05", 0.30, 0.375, 0.07), _line("RM 149.00", 0.386, 0.377, 0.083),
             _line("RN 21.00", 0.392, 0.387, 0.078), _line("DPI.O4", 0.30, 0.39, 0.07),
             _line("CASH", 0.30, 0.414, 0.04),
             _line("170.00", 0.372, 0.425, 0.096), _line("RM", 0.317, 0.428, 0.04)]
    assert printed_total(lines) == 170.00
    elsewhere = [line if line["text"] != "RN 21.00" else _line("RN 21.00", 0.2, 0.387, 0.078) for line in lines]
    assert printed_total(elsewhere) is None  # 21.00 in another column: 149.00 alone adds up to nothing


def test_a_rounded_bill_that_is_not_a_multiple_of_5_cents_is_misread_and_the_tender_says_what_it_was() -> None:
    """008 as Loupe's OCR read it: subtotal 106.10, GST 6.37 and rounding -0.02 make 112.45, as CASH says."""
    lines = [_line("Rounding (RM) :", 0.05, 0.62), _line("-0.02", 0.8, 0.62), _line("Total (RM) :", 0.05, 0.64),
             _line("112.46", 0.8, 0.64), _line("CASH :", 0.05, 0.66), _line("112.45", 0.8, 0.66),
             _line("Change (RM) :", 0.05, 0.68), _line("0.00", 0.8, 0.68)]
    assert printed_total(lines) == 112.45
    unrounded = [line for line in lines if line["text"] not in ("Rounding (RM) :", "-0.02")]
    assert printed_total(unrounded) == 112.46  # without a rounding line a bill may end in any cent
    far = [line if line["text"] != "112.45" else _line("102.45", 0.8, 0.66) for line in lines]
    assert printed_total(far) == 112.46  # ten dollars apart is no misread cent


def test_folding_forgives_case_accents_punctuation_and_number_words() -> None:
    assert fold("MR. D.I.Y. (M) SDN BHD") == "mr d i y m sdn bhd"
    assert fold("Café Déjà Vu") == "cafe deja vu"
    assert fold("Seven Eleven") == fold("7-ELEVEN") == "7 11"
    assert fold_lines("A.B\n\nC-D") == "a b\nc d"


@pytest.mark.parametrize(("typed", "printed", "found"), [
    ("DIY", "MR. D.I.Y. (M) SDN BHD", True), ("D I Y", "MR D.I.Y. (JOHOR)", True), ("Mr DIY", "MR.D.I.Y(M)SDN", True),
    ("7 Eleven", "7-ELEVEN MALAYSIA", True), ("Seven Eleven", "7-ELEVEN", True),
    ("99 speedmart", "99 SPEED MART", True),
    ("DIY", "KEDAI DIYANA", False), ("711", "TEL 0371123", False),
])
def test_names_match_at_word_boundaries_however_spaced(typed: str, printed: str, found: bool) -> None:
    run = "".join(fold(typed).split())
    assert bool(name_pattern(run).search(fold(printed))) is found


@pytest.mark.parametrize(("typed", "printed", "found"), [
    ("lian hing", "LJAN HING STATIONERY SDN BHD", True), ("99 speedmart", "79 SPEED MART S/D", True),
    ("99 speed mart", "99 SPEED MART", True),  # no letter misread is a match too
    ("lian hing", "LAN HING STATIONERY SDN BHD", True),  # one letter lost (SROIE 073)
    ("lian hing", "LIAN CHI PU TIAN", False), ("lian hing", "LN HING", False),  # two letters differ or lost
    ("99 speedmart", "A99 SPEED MART", False), ("lian hing", "LIAN HINGS", False),  # still whole words
    ("99 spedmart", "99 SPEED MART", True),  # a letter the typist lost
])
def test_a_long_name_may_have_one_character_misread_or_lost(typed: str, printed: str, found: bool) -> None:
    run = "".join(fold(typed).split())
    assert len(run) >= MIN_MISREAD_LETTERS
    assert bool(misread_name_pattern(run).search(fold(printed))) is found


def test_name_runs_skip_request_words_at_their_ends() -> None:
    runs = [run for _, _, run in name_runs("the receipts from three stooges please")]
    assert runs[0] == "3stooges"  # number words fold to digits, as on "3 STOOGES" and "THREE STOOGES"
    assert "the" not in runs and "please" not in runs and "receipts" not in runs


def test_the_near_copy_test_lets_through_every_text_the_misread_pattern_finds() -> None:
    """Text search tries the misread pattern (costly to compile) only on texts that pass _near_copy, so it must
    never turn away one the pattern would find: random names, each text holding a copy with a letter
    replaced, lost or put in."""
    chance = random.Random(0)
    for _ in range(3000):
        run = "".join(chance.choice("abc") for _ in range(chance.randint(MIN_MISREAD_LETTERS, 12)))
        text = "".join(chance.choice("abc ") for _ in range(chance.randint(0, 20)))
        changed = list(run)
        kind = chance.random()
        if kind < 0.34:
            changed[chance.randrange(len(run))] = chance.choice("abz")
        elif kind < 0.67:
            del changed[chance.randrange(len(run))]
        else:
            changed.insert(chance.randrange(1, len(run)), chance.choice("abz"))
        at = chance.randint(0, len(text))
        text = text[:at] + " " + "".join(changed) + " " + text[at:]
        if misread_name_pattern(run).search(text):
            assert _near_copy(run, text.replace(" ", "")), (run, text)
    assert not _near_copy("lianhing", "lainhignstationery")  # two letters swapped is two misread


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
    ("000", 9.00, "MYR"), ("006", 327.00, None), ("030", 8.20, "MYR"), ("081", 3.90, "MYR"), ("031", 75.00, None),
    ("072", 49.40, "MYR"), ("061", 129.30, "MYR"), ("022", 9.00, None), ("047", 170.00, "MYR"),
])  # 030: UNIHAKKA prints "$8.20" in Johor; 072: TOTAL INCL. GST 49.39, rounding 0.01, TOTAL 49.40; 061: "Amt Due";
# 022: a "Tax Code" column heads its items, above the total; 047: no total label, but its amounts add up
def test_a_receipts_total_and_currency_are_read_from_its_lines(stem: str, total: float, currency: str | None) -> None:
    lines = _receipt(stem)
    assert printed_total(lines) == total
    assert printed_currency("\n".join(line["text"] for line in lines)) == currency


def test_currency_signs_and_codes_stand_apart_from_words() -> None:
    assert printed_currency("TOTAL RM9.00\nCASH RM 10.00\nPERMAS JAYA, FORM 3") == "MYR"
    assert printed_currency("US$ 4.00") == "USD" and printed_currency("€ 3,50 £1") in ("EUR", "GBP")
    assert printed_currency("PERMAS FORM") is None


def test_a_dollar_sign_is_ringgit_only_on_a_receipt_that_says_it_is_malaysian() -> None:
    assert printed_currency("UNIHAKKA INTERNATIONAL SDN BHD\nTampoi, 81200 Johor Bahru\nTOTAL $8.20") == "MYR"
    assert printed_currency("SUBTOTAL $7.50\nTAX $0.70\nCASH RM 10.00") == "MYR"  # it prints RM elsewhere
    assert printed_currency("CORNER BOOKSHOP\n12 MAIN ST, PORTLAND OR\nTOTAL $18.60") == "$"
    assert printed_currency("Organic apples\n$4.99 / kg") == "$"
    assert dollar_for_ringgit("KUALA LUMPUR\n$83.00") and not dollar_for_ringgit("KUALA LUMPUR\nRM 83.00")


@pytest.mark.parametrize(("text", "iso"), [
    (":10-03-201823:03:06", "2018-03-10"), ("14/03/20185:57:07PM", "2018-03-14"),  # the time runs into the year
    ("HD03-04-06 - 5/40/160", None),  # a product code, not 3 April 2006
    ("27032018", "2018-03-27"), ("20180304", "2018-03-04"), ("10-03-20181", None),
])
def test_dates_the_ocr_runs_together_are_read_and_codes_are_not(text: str, iso: str | None) -> None:
    assert iso_date(text) == iso


def test_the_printed_date_prefers_the_tills_timestamp_then_a_date_missing_a_separator() -> None:
    assert printed_date("\n".join(line["text"] for line in _receipt("079"))) == "2017-09-19"  # not "CK 11-22-31"
    assert printed_date("13 MAR 2018\nMR. D.I.Y. (M) SDN BHD\n14-03-18 21:49 SH03 ZJ20") == "2018-03-14"
    assert printed_date("INVOICE NO:18299/102/T0230\n05 02-18\n01:34PM") == "2018-02-05"
    assert printed_date("Tax Invoice\n2703/2018\nNo.:CS-20242") == "2018-03-27"
    assert printed_date("05 02-18\nDATE: 12/02/2018") == "2018-02-12"  # a whole date wins over a loose one


@pytest.mark.parametrize(("lines", "shop"), [  # as Loupe's OCR read receipts 001, 000, 040, 095
    (["tan woon yann", "INDAH GIFT & HOME DECO", "27,JALAN DEDAP 13,", "TAMAN JOHOR JAYA,"], "INDAH GIFT & HOME DECO"),
    (["tan woon yann", "BOOK TA .K (TAMAN DAYA) SDN BHD", "789417-W"], "BOOK TA .K (TAMAN DAYA) SDN BHD"),
    (["THREE STOOGES", "BISTRO & CAFE", "109, SS21/1A,", "DAMANSARA UTAMA"], "THREE STOOGES"),
    (["POPULAR BOOK-", "CO.", "AHE NOS (W)", "(Company No. 113825-W)"], "POPULAR BOOK CO."),
])
def test_a_handwritten_line_a_kind_of_shop_and_a_hyphen_do_not_hide_the_name(lines: list[str], shop: str) -> None:
    assert printed_shop(lines) == shop


def test_a_rounding_adjustment_is_never_the_total_and_the_rounded_amount_is() -> None:
    """003 as Loupe's OCR read it: the tax summary below repeats 80.91, which is no rounded total."""
    lines = [_line("Total Sales (Excluding GST)", 0.05, 0.58, 0.5), _line("80.91", 0.8, 0.58),
             _line("Rounding", 0.4, 0.67), _line("-0.01", 0.8, 0.67),
             _line("Total Sales (lnclusive of GST) :", 0.05, 0.70, 0.6), _line("80.90", 0.8, 0.70),
             _line("GST SUMMARY", 0.1, 0.81), _line("Total:", 0.3, 0.90), _line("80.91", 0.55, 0.90)]
    assert printed_total(lines) == 80.90
    paid = [_line("Total Amt Incl. GST", 0.05, 0.60, 0.5), _line("60.31", 0.8, 0.60),
            _line("ROUNDING ADJ", 0.05, 0.63), _line("-0.01", 0.8, 0.63), _line("60.30", 0.8, 0.70)]
    assert printed_total(paid) == 60.30  # 001: the rounded amount is printed below the adjustment, unlabelled


def test_every_renderer_shows_the_same_facts_in_one_order() -> None:
    # A metadata file's own "total" (text) beside the printed total (a number): both shown, neither breaks.
    record = MatchedRecord(id="a", path="/c/mug.jpg", file_name="mug.jpg", score=0.5, match=MatchLabel.SIMILAR,
                           why="looks alike", metadata={"title": "Blue mug", "total": 12.0, "shop": "AEON",
                                                        "fields": {"total": "12 RM", "colour": "blue"}})
    assert record.facts() == [("title", "Blue mug"), ("total", "12 RM"), ("colour", "blue"), ("shop", "AEON"),
                              ("total", 12.0)]
    assert record.facts_line() == "Blue mug · total 12 RM · colour blue · shop AEON"
    text = record.describe(1)
    assert "metadata: title: Blue mug; total: 12 RM; colour: blue" in text and "printed: shop AEON; total 12.00" in text

