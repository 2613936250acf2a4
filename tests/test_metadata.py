"""Reading a user's metadata file: oversized values, damaged CSV, prices, duplicate image names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from loupe.metadata import MAX_VALUE_CHARS, load_metadata, parse_price

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier

HUGE = 50 * 1024 * 1024  # characters: far over MAX_VALUE_CHARS and over the csv module's default field limit


def test_a_50_mb_csv_cell_drops_that_field_and_the_other_rows_load(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "title", "description", "price"])
        writer.writerow(["a.jpg", "First", "fine", "3.50"])
        writer.writerow(["big.jpg", "Big", "x" * HUGE, "4"])
        writer.writerow(["c.jpg", "Third", "also fine", ""])
    limit_before = csv.field_size_limit()
    metadata = load_metadata(path)
    assert csv.field_size_limit() == limit_before  # raised for the read only
    assert set(metadata.by_key) == {"a.jpg", "big.jpg", "c.jpg"}
    assert metadata.by_key["a.jpg"].price == 3.5 and metadata.by_key["c.jpg"].description == "also fine"
    big = metadata.by_key["big.jpg"]
    assert (big.title, big.description, big.price) == ("Big", "", 4.0)
    assert "description" not in big.fields
    assert metadata.problems == [
        f"{path}:3: field 'description' is 52,428,800 characters, over the 10,000 limit; "
        "field dropped, the rest of the row is used"
    ]


def test_a_value_at_the_limit_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_text(f"file,description\na.jpg,{'y' * MAX_VALUE_CHARS}\n", encoding="utf-8")
    metadata = load_metadata(path)
    assert len(metadata.by_key["a.jpg"].description) == MAX_VALUE_CHARS and not metadata.problems


def test_an_oversized_image_name_leaves_the_row_without_an_image(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_text(f"file,title\n{'n' * (MAX_VALUE_CHARS + 1)},lost\nb.jpg,kept\n", encoding="utf-8")
    metadata = load_metadata(path)
    assert set(metadata.by_key) == {"b.jpg"}
    assert len(metadata.problems) == 2
    assert "field 'file' is 10,001 characters" in metadata.problems[0]
    assert metadata.problems[1] == f"{path}:2: no image named (give one of sha256, path, file, file_name, filename)"


def test_a_nul_byte_in_a_csv_cell_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_bytes(b"file,title,colour\na.jpg,Ti\x00tle,red\nb.jpg,Fine,blue\n")
    metadata = load_metadata(path)
    assert metadata.by_key["a.jpg"].title == "" and metadata.by_key["a.jpg"].fields == {"colour": "red"}
    assert metadata.by_key["b.jpg"].title == "Fine"
    assert metadata.problems == [
        f"{path}:2: field 'title' contains a NUL character (a sign of a binary or damaged file); "
        "field dropped, the rest of the row is used"
    ]


def test_a_csv_error_keeps_the_rows_before_it_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With the field limit left at its default the csv module itself fails on the big cell (the case that used to
    # end the whole file); the reader cannot be trusted after that, so the rows read so far are kept.
    monkeypatch.setattr(csv, "field_size_limit", lambda *limit: 131_072)
    path = tmp_path / "meta.csv"
    path.write_text('file,title\na.jpg,First\nb.jpg,"' + "z" * 200_000 + '\nstill quoted"\nc.jpg,Third\n',
                    encoding="utf-8")
    metadata = load_metadata(path)
    assert set(metadata.by_key) == {"a.jpg"}
    assert metadata.problems == [
        f"{path}:3: not readable as CSV (field larger than field limit (131072)); the rest of the file is not read"
    ]


def test_csv_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_text('file,description,price\na.jpg,"two\nlines",1\n\nb.jpg,x,abc\n', encoding="utf-8")
    metadata = load_metadata(path)
    assert metadata.by_key["a.jpg"].description == "two\nlines"
    assert metadata.problems == [
        f"{path}:5: price 'abc' is not a number Loupe can read unambiguously; stored as text only"
    ]


def test_jsonl_with_a_huge_nested_value_and_a_huge_field_name(tmp_path: Path) -> None:
    path = tmp_path / "meta.jsonl"
    lines = [
        {"sha256": "aaa", "title": "Nested", "tags": ["t" * 1000] * 20, "colour": "red"},
        {"sha256": "bbb", "title": "Key", "k" * (MAX_VALUE_CHARS + 1): 1},
        {"sha256": "ccc", "title": "Fine", "tags": ["a", "b"]},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    metadata = load_metadata(path)
    assert metadata.by_key["aaa"].fields == {"title": "Nested", "colour": "red"}
    assert metadata.by_key["bbb"].fields == {"title": "Key"}
    assert metadata.by_key["ccc"].fields == {"title": "Fine", "tags": ["a", "b"]}
    assert metadata.problems == [
        f"{path}:1: field 'tags' is 20,080 characters, over the 10,000 limit; "
        "field dropped, the rest of the row is used",
        f"{path}:2: a field name is 10,001 characters, over the 10,000 limit; that field is dropped, "
        "the rest of the row is used",
    ]


def test_jsonl_lines_python_cannot_parse_are_problems(tmp_path: Path) -> None:
    path = tmp_path / "meta.jsonl"
    path.write_text('{"sha256": "a", "n": ' + "9" * 5000 + '}\n' + "[" * 100_000 + "\n"
                    '{"sha256": "b", "title": "line\u2028separator"}\n', encoding="utf-8")
    metadata = load_metadata(path)
    assert metadata.by_key["b"].title == "line\u2028separator"  # U+2028 is not a line break in JSONL
    assert len(metadata.problems) == 2
    assert metadata.problems[0].startswith(f"{path}:1: not valid JSON (ValueError: Exceeds the limit")
    assert metadata.problems[1].startswith(f"{path}:2: not valid JSON (RecursionError")


@pytest.mark.parametrize("written", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_nan_or_infinite_jsonl_price_is_kept_as_text(tmp_path: Path, written: str) -> None:
    path = tmp_path / "meta.jsonl"
    path.write_text('{"sha256": "a", "price": ' + written + '}\n{"sha256": "b", "price": 12}\n', encoding="utf-8")
    metadata = load_metadata(path)
    entry = metadata.by_key["a"]
    assert entry.price is None and entry.fields["price"] == written
    assert json.loads(entry.columns()["metadata_json"], parse_constant=pytest.fail) == {"price": written}
    assert metadata.by_key["b"].price == 12.0
    assert metadata.problems == [
        f"{path}:1: price {written!r} is not a number Loupe can read unambiguously; stored as text only"
    ]


def test_an_image_named_twice_uses_the_later_row_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_text("file,title\nx.jpg,first\ny.jpg,other\nx.jpg,second\nx.jpg,third\n", encoding="utf-8")
    metadata = load_metadata(path)
    assert metadata.by_key["x.jpg"].title == "third" and metadata.by_key["y.jpg"].title == "other"
    assert metadata.problems == [
        f"{path}:4: image 'x.jpg' is also named at line 2; the later row is used",
        f"{path}:5: image 'x.jpg' is also named at line 4; the later row is used",
    ]


@pytest.mark.parametrize("text, price", [
    ("12", 12.0),
    ("12.5", 12.5),
    ("1.234", 1.234),  # a single dot is always the decimal point
    ("12,50", 12.5),
    ("12,5", 12.5),
    ("1,234", 1234.0),  # a comma followed by exactly three digits is grouping
    ("1,234.56", 1234.56),
    ("$1,234.56", 1234.56),
    ("1,234,567", 1234567.0),
    ("1.234,56", 1234.56),
    ("1.234.567", 1234567.0),
    ("1 234,56", 1234.56),
    ("1\u00a0234,56", 1234.56),
    ("1\u202f234,56 €", 1234.56),
    ("1 234.56", 1234.56),
    ("  €12.50 ", 12.5),
    ("12.50€", 12.5),
    ("£3", 3.0),
    ("¥1,000", 1000.0),
    ("₹ 1,234", 1234.0),
    ("RM12.90", 12.9),
    ("12.90 MYR", 12.9),
    ("USD 5", 5.0),
    ("eur 5", 5.0),
    ("US$5", 5.0),
    ("-5", -5.0),
    ("+5", 5.0),
    ("-$5", -5.0),
    ("$-5", -5.0),
    ("−5 €", -5.0),
    ("0.99", 0.99),
])
def test_parse_price_reads_these_forms(text: str, price: float) -> None:
    assert parse_price(text) == pytest.approx(price, rel=0, abs=1e-9)


@pytest.mark.parametrize("text", [
    "1e3", "12.34.5", "abc", "1,2,3", "about 5", "5 or 6", "5-10", "12 15", "12,5000", "0,125", "1.234,567.8",
    "1,234,56", "12.", ".5", "--5", "-$-5", "$", "", "   ", "$5 USD", "5 kg", "١٢", "9" * 400, "NaN", "inf",
])
def test_parse_price_refuses_anything_else(text: str) -> None:
    assert parse_price(text) is None


@pytest.mark.parametrize("value, price", [
    (12, 12.0), (12.5, 12.5), (-3, -3.0),
    (float("nan"), None), (float("inf"), None), (True, None), (10 ** 400, None), (["12"], None), (None, None),
])
def test_parse_price_takes_json_numbers_as_they_are(value: object, price: float | None) -> None:
    assert parse_price(value) == price


@pytest.mark.parametrize("written, price", [("$1,234.56", 1234.56), ("1.234,56", 1234.56), ("1e3", None)])
def test_prices_in_a_file_follow_parse_price(tmp_path: Path, written: str, price: float | None) -> None:
    path = tmp_path / "meta.csv"
    path.write_text(f'file,price\na.jpg,"{written}"\n', encoding="utf-8")
    metadata = load_metadata(path)
    entry = metadata.by_key["a.jpg"]
    assert entry.price == price and entry.fields["price"] == written
    expected = [] if price is not None else [
        f"{path}:2: price '1e3' is not a number Loupe can read unambiguously; stored as text only"]
    assert metadata.problems == expected
