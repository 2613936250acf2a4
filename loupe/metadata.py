"""User metadata (title, description, price, any JSON) joined to images.

A ``--metadata`` file is CSV (a header row) or JSONL (one object per line).
Each entry names its image by ``sha256``, by ``path`` (relative to an indexed
folder or absolute), or by ``file``/``file_name``/``filename`` (the base
name). ``title``, ``description`` and ``price`` become columns that filters can
use; every field is kept in ``metadata_json``.

The file is the user's and may be wrong or hostile in places, so reading it
never fails on one bad entry: each problem becomes one ``path:line: ...`` line
in ``MetadataIndex.problems`` and the rest of the file still loads. A value over
``MAX_VALUE_CHARS`` or containing a NUL character is dropped and the rest of its
row kept; a price is parsed by the explicit rules of ``parse_price`` or kept as
text only; when two rows name the same image the later one is used.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loupe.base.errors import LoupeError

KEY_FIELDS = ("sha256", "path", "file", "file_name", "filename")

# The most characters one value (a CSV cell, a JSON value with nested values serialised, or a field name) may have.
# A value is stored in the image's row, shown in answers and kept in saved conversations, so one pasted 50 MB cell
# would bloat the index and every answer that cites the image; 10,000 characters is several pages of description.
MAX_VALUE_CHARS = 10_000


@dataclass(frozen=True)
class Metadata:
    """The stored form of one entry."""

    title: str = ""
    description: str = ""
    price: float | None = None
    taken_at: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "description": self.description,
            "price": self.price,
            "metadata_json": json.dumps(self.fields, ensure_ascii=False, sort_keys=True) if self.fields else "",
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Metadata | None:
        """The entry a stored row was given (None if it had none): a changed file keeps its metadata."""
        if not (row.get("title") or row.get("description") or row.get("price") is not None
                or row.get("metadata_json")):
            return None
        fields = json.loads(row["metadata_json"]) if row.get("metadata_json") else {}
        taken_at = fields.get("taken_at") or fields.get("date")
        return cls(title=row.get("title") or "", description=row.get("description") or "", price=row.get("price"),
                   taken_at=str(taken_at) if taken_at else None, fields=fields)


@dataclass
class MetadataIndex:
    """Entries of one metadata file, looked up by hash, path or file name."""

    by_key: dict[str, Metadata] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def lookup(self, path: Path, sha256: str) -> Metadata | None:
        for key in (sha256, str(path), path.name):
            if key in self.by_key:
                return self.by_key[key]
        # a relative path in the file, e.g. "receipts/000.jpg"
        for depth in (2, 3):
            key = "/".join(path.parts[-depth:])
            if key in self.by_key:
                return self.by_key[key]
        return None


def load_metadata(path: str | Path) -> MetadataIndex:
    """Read a CSV or JSONL metadata file; bad rows and values are reported, not fatal.

    Raises ``LoupeError`` only when the file as a whole is unusable: missing, not UTF-8, neither .csv nor
    .jsonl, a CSV header that names no image column, or no usable entry at all.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise LoupeError(f"metadata file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoupeError(f"metadata file {path} is not UTF-8 text ({exc.reason})") from exc

    index = MetadataIndex()
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        entries = _jsonl_entries(text, path, index.problems)
    elif suffix == ".csv":
        entries = _csv_entries(text, path, index.problems)
    else:
        raise LoupeError(f"metadata file {path}: use a .csv or .jsonl file")

    named_at: dict[str, int] = {}
    for line_number, raw_entry in entries:
        where = f"{path}:{line_number}"
        entry = _bounded(raw_entry, where, index.problems)
        key = next((str(entry[k]).strip() for k in KEY_FIELDS if entry.get(k)), "")
        if not key:
            index.problems.append(f"{where}: no image named (give one of {', '.join(KEY_FIELDS)})")
            continue
        if key in named_at:
            index.problems.append(
                f"{where}: image {key!r} is also named at line {named_at[key]}; the later row is used")
        named_at[key] = line_number
        index.by_key[key] = _to_metadata(entry, where, index.problems)
    if not index.by_key:
        raise LoupeError(f"metadata file {path} has no usable entries: " + "; ".join(index.problems[:3]))
    return index


def _jsonl_entries(text: str, path: Path, problems: list[str]) -> list[tuple[int, dict]]:
    entries = []
    # Split on "\n" only (read_text has translated "\r\n"): str.splitlines would also cut at U+2028 and other
    # separators that JSON allows unescaped inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line, parse_float=_finite_or_text, parse_constant=_finite_or_text)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not valid JSON ({exc.msg})")
            continue
        except (ValueError, RecursionError) as exc:  # an integer over Python's 4,300 digits, or nesting too deep
            problems.append(f"{path}:{number}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{path}:{number}: expected a JSON object")
            continue
        entries.append((number, entry))
    return entries


def _finite_or_text(text: str) -> float | str:
    """A JSON number as a float, except NaN, Infinity and overflows such as 1e999, which stay the text written.

    They are not standard JSON, so keeping them as floats would put non-JSON into ``metadata_json``; as text a
    price ``NaN`` is then reported by ``parse_price`` like any other unreadable price.
    """
    number = float(text)
    return number if math.isfinite(number) else text


def _csv_entries(text: str, path: Path, problems: list[str]) -> list[tuple[int, dict]]:
    """Rows as (line of their first physical line, {column: non-empty cell})."""
    entries = []
    with _csv_field_limit(len(text)):
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, [])
        except csv.Error as exc:
            raise LoupeError(f"metadata file {path}: the header row is not readable CSV ({exc})") from exc
        if not any(k in header for k in KEY_FIELDS):
            raise LoupeError(
                f"metadata file {path}: the header row must name the image column ({', '.join(KEY_FIELDS)})"
            )
        for column, name in enumerate(header):
            reason = _value_problem(name)
            if reason:
                problems.append(f"{path}:1: a column name {reason}; that column is ignored")
                header[column] = ""
        while True:
            first_line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                # The reader drops the rest of the failing line and would restart in the middle of a record,
                # so later rows could be silently misaligned: keep what was read and stop.
                problems.append(
                    f"{path}:{reader.line_num}: not readable as CSV ({exc}); the rest of the file is not read")
                break
            if cells:  # [] is a blank line
                entries.append((first_line, {name: value for name, value in zip(header, cells) if name and value}))
    return entries


@contextmanager
def _csv_field_limit(chars: int) -> Iterator[None]:
    """Let the csv module read a field as large as the whole text, for this read only.

    Its default limit (131,072 characters) raises ``csv.Error`` on one big cell, which ends the reader there;
    sizes are checked per value against ``MAX_VALUE_CHARS`` instead. The limit is process-wide, hence the restore.
    """
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, chars))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _value_problem(text: str) -> str | None:
    """Why a value (or name) cannot be stored, as the end of a sentence, or None when it can."""
    if len(text) > MAX_VALUE_CHARS:
        return f"is {len(text):,} characters, over the {MAX_VALUE_CHARS:,} limit"
    if "\x00" in text:
        return "contains a NUL character (a sign of a binary or damaged file)"
    return None


def _bounded(entry: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """The entry without the fields ``_value_problem`` rejects, each reported; the rest of the row is kept.

    Nested JSON values are measured serialised, as ``metadata_json`` stores them. A rejected key field leaves the
    row with no image named unless another key field names it.
    """
    kept = {}
    for name, value in entry.items():
        reason = _value_problem(name)
        if reason:
            problems.append(f"{where}: a field name {reason}; that field is dropped, the rest of the row is used")
            continue
        reason = _value_problem(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        if reason:
            problems.append(f"{where}: field {name!r} {reason}; field dropped, the rest of the row is used")
            continue
        kept[name] = value
    return kept


_CURRENCY = (r"(?:US\$|A\$|C\$|NZ\$|HK\$|S\$|R\$|[$€£¥₹₩₽₺₪₫฿₱₦¢]|RM|Rp|Rs\.?|kr|zł|"
             r"USD|EUR|GBP|JPY|CNY|RMB|INR|MYR|SGD|AUD|CAD|NZD|HKD|CHF|SEK|NOK|DKK|PLN|CZK|HUF|RUB|TRY|BRL|MXN|"
             r"ZAR|KRW|IDR|THB|PHP|VND|AED|SAR|ILS|TWD)")
_PRICE = re.compile(rf"(?P<sign>[-+−]?)\s*(?P<before>{_CURRENCY})?\s*(?P<inner_sign>[-+−]?)"
                    rf"(?P<number>[0-9][0-9., \u00a0\u202f]*?)\s*(?P<after>{_CURRENCY})?", re.IGNORECASE)
_NUMBER = re.compile(r"""
    (?P<plain>[0-9]+(?:\.[0-9]+)?)                                                  # 12, 12.5, 1.234
  | (?P<comma_decimal>[0-9]+,[0-9]{1,2})                                            # 12,50
  | (?P<comma_groups>[1-9][0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]+)?)                    # 1,234  1,234.56
  | (?P<dot_groups>[1-9][0-9]{0,2}(?:(?:\.[0-9]{3})+,[0-9]+|(?:\.[0-9]{3}){2,}))    # 1.234,56  1.234.567
  | (?P<space_groups>[1-9][0-9]{0,2}(?:[ \u00a0\u202f][0-9]{3})+(?:[.,][0-9]+)?)    # 1 234,56
""", re.VERBOSE)
_GROUPING = {"comma_groups": ",", "dot_groups": ".", "space_groups": " \u00a0\u202f"}


def parse_price(value: object) -> float | None:
    """A price as a float, or None when ``value`` is not a price Loupe can read unambiguously.

    Guessing is how "$1,234.56" once became 1.234, so only these forms are read:

    - A JSON int or float is taken as it is, unless it is NaN, infinite or a bool.
    - Text: surrounding whitespace is ignored, and so is one currency sign or code before or after the number
      ($ € £ ¥ ₹ US$ RM Rs kr USD EUR GBP MYR ..., any case), with an optional sign (+, - or −) before the
      number or before the currency. Digits are ASCII, with at most one kind of grouping:
    - "12", "12.5": a single dot is always the decimal point, so "1.234" is 1.234.
    - "12,50": a comma followed by one or two digits (and no dot) is the decimal point: 12.5.
    - "1,234", "1,234.56": commas between groups of exactly three digits are grouping, the dot is the decimal
      point: 1234, 1234.56. A comma followed by exactly three digits is therefore always grouping.
    - "1.234,56", "1.234.567": dots between groups of three are grouping (a single dot group needs a decimal
      comma, "1.234" being 1.234 above), the comma is the decimal point: 1234.56, 1234567.
    - "1 234,56", "1 234.56": a space, no-break space or narrow no-break space between groups of three is
      grouping: 1234.56.

    Anything else is None: "1e3", "12.34.5", "1,2,3", "12,5000", "0,125", "abc", "about 5", "5-10", two numbers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int with hundreds of digits
            return None
        return number if math.isfinite(number) else None
    if not isinstance(value, str):
        return None
    match = _PRICE.fullmatch(value.strip())
    if not match or (match["sign"] and match["inner_sign"]) or (match["before"] and match["after"]):
        return None
    number = _NUMBER.fullmatch(match["number"])
    if not number:
        return None
    digits = number.group().translate(str.maketrans("", "", _GROUPING.get(number.lastgroup, ""))).replace(",", ".")
    result = float(digits)
    if not math.isfinite(result):  # hundreds of digits
        return None
    return -result if (match["sign"] or match["inner_sign"]) in ("-", "−") else result


def _to_metadata(entry: dict, where: str, problems: list[str]) -> Metadata:
    fields = {k: v for k, v in entry.items() if k not in KEY_FIELDS}
    price = None
    if fields.get("price") not in (None, ""):
        price = parse_price(fields["price"])
        if price is None:
            problems.append(f"{where}: price {fields['price']!r} is not a number Loupe can read unambiguously; "
                            "stored as text only")
    taken_at = fields.get("taken_at") or fields.get("date")
    return Metadata(
        title=str(fields.get("title", "")),
        description=str(fields.get("description", "")),
        price=price,
        taken_at=str(taken_at) if taken_at else None,
        fields=fields,
    )
