"""The item lines of a receipt or invoice, read from its OCR lines and their boxes: name, quantity, amount.

A receipt prints its items between a column header ("ITEM QTY U/P AMOUNT", "Description Amount") and the
first totals row (subtotal, total, item count, tax). OCR reads each printed column as its own line, so the
lines are first gathered into rows by their vertical centres. A row whose rightmost line ends in an amount
is an item's amount row; its name is the row's own text where it has one ("L11 X-VENTURE 12.00 Z"),
otherwise the text-only rows beside it: tills print the description either above the numbers
("KF MODELLING CLAY" over "1 PC 9.000 0.00 9.00") or below them ("9555067700208 10 10.57 105.66" over
"- IK YELLOW 70GRAMS"), and which one a receipt does is read from its first row after the header. A row
that is only a negative amount ("Member Discount -1.20") takes the discount off the item above it.

Nothing is computed that is not printed: the amount is the line's printed amount, the quantity a printed
count (1 where none is printed), and the name the printed text. evals/receipt_items_eval.py measures the
rules against item lines written down by hand from the receipts.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from loupe.tools.document_fields import ROW_TOLERANCE, TOTAL, amounts_in, fold, line_bounds

# as folded: "U/P" is "u p", "(RM)" is "rm"; OCR runs some together ("ItemDescription")
_HEADER_WORD = re.compile(r"^(?:items?|desc|description|code|qty|quantity|price|u|p|unit|rsp|disc|discount|amount|amt|"
                          r"total|rm|no|tax|gst|inc|incl|s)+$")  # "S/Price": the selling price
# the first totals row ends the items: a subtotal (OCR writes "Subtotai"), a count of items, tax, what was paid
_END = re.compile(rf"{TOTAL}|\bsub\s*-?\s*t|\bqty\s*(?:\(s\)|s)?\s*:|\bitem\s*\(s\)|item\s*count|"
                  r"no\.?\s*(?:of\s*)?items|\bgross\b|\bgst\b|\btax\b|round|amt\.?\s*due|amount\s*due|\bnett?\b|"
                  r"jumlah|\bcash\b|change", re.I)
# what is printed above the items: a date (not inside a stock code, "WA36-6/60"), a time, the till's labels
_PREAMBLE = re.compile(r"(?<![\w/-])\d{1,2}[/\-.]\d{1,2}[/\-.]\d{2,4}|\d{1,2}:\d\d|invoice|receipt|cashier|"
                       r"\btable\b|\bslip\b|\btrans\b|member|\bbill\b|\bdate\b", re.I)
_STRAY_NUMBER = re.compile(r"^\d{1,2}$")
_TAX_CODE = re.compile(r"^[A-Z]{1,3}\W?$")  # "SR", "ZRL", "S", "T*"
_UNIT = re.compile(r"(?<![^\W\d_])(?:rm|x|pcs?|units?|kg|g|ea|box(?:s|es)?|pkt|btl|ctn|nos?)(?![^\W\d_])", re.I)
_SIZE = re.compile(r"\d+[.,]\d+\s*(?:mm|cm|ml|kg|g|l|m|ltr|oz|inch|in)\b", re.I)  # "1.25MM", "1.50 L"
_PERCENT = re.compile(r"\d+(?:[.,]\d+)?\s*%")
_DISCOUNT = re.compile(r"(?<![\d.])-\s?(\d{1,6}[.,]\d{2})(?![\d.])")
_COUNT = re.compile(r"(?<![\w.,])(\d{1,3})\s*(?:x\s*(?=[\d$]|rm)|pcs?\b|units?\b|@)", re.I)  # "1 X 5.20", "2pc @ 9.89"
_BARE_COUNT = re.compile(r"(?:^|\s)(\d{1,3})$")  # "1", "10", "GB 1", "GA1801 2": a count at the end of its column
_CODE = re.compile(r"^[\W_]*\d{4,}[\W_]*$|^[\W_]*(?:[a-z]{1,2}\s*[:.]?\s*)?\d[\d\s.,%$*@-]*[a-z]?$", re.I)
INDENT = 0.01  # a name's second line starts this much (of the page's width) right of its first
MIN_NAME_LETTERS = 3  # "PC", "GB", "SR" and "RM" are units and tax codes, not names


@dataclass(frozen=True)
class Item:
    name: str
    quantity: float
    amount: float

    def as_dict(self) -> dict:
        return asdict(self)


def described(stored: str | None) -> str:
    """The items column (JSON) in words, as a record shows it: "IK YELLOW 70GRAMS x10 105.66; ARTLINE 70 0.85"."""
    words = []
    for item in json.loads(stored or "[]"):
        count = f" x{item['quantity']:g}" if item["quantity"] != 1 else ""
        words.append(f"{item['name']}{count} {item['amount']:.2f}")
    return "; ".join(words)


Row = list[tuple[float, str]]  # (left edge, text) of each line in a row, left to right


def printed_items(lines: list[dict]) -> list[Item]:
    """The item lines of a receipt, top to bottom; [] where no item region is found."""
    rows = _rows(lines)
    start = _items_start(rows)
    first_amount = next((index for index in range(start, len(rows)) if _amount(rows[index]) is not None), len(rows))
    # a totals word above every amount is the shop's own ("GST ID: 002017394688" under the address), no total
    end = next((index for index in range(first_amount, len(rows)) if _ends_items(rows[index])), len(rows))
    region = rows[start:end]
    names_below = bool(region) and _amount(region[0]) is not None and not _own_name(region[0])
    items: list[Item] = []
    for index, row in enumerate(region):
        if (discount := _discount(row)) is not None:
            if items:
                items[-1] = Item(items[-1].name, items[-1].quantity, round(items[-1].amount - discount, 2))
            continue
        if (amount := _amount(row)) is None:
            continue
        own, beside = _own_name(row), _name_beside(region, index, names_below)
        if len(own.split()) >= 2:
            name = " ".join([own, *_continued(region, index)])
        else:
            name = beside or own  # "1 | WALK | 1.60": the unit column names nothing where a name row is beside
        if name:
            items.append(Item(name, _quantity(row), amount))
    return items


def _rows(lines: list[dict]) -> list[Row]:
    """Lines gathered into rows: a line whose centre lies within ROW_TOLERANCE of its height from a row's
    first line's centre joins that row."""
    placed = sorted(((line_bounds(line["box"]), line["text"].strip()) for line in lines
                     if line.get("text", "").strip() and line.get("box")),
                    key=lambda item: ((item[0][1] + item[0][3]) / 2, item[0], item[1]))  # by centre, top to bottom
    rows: list[tuple[float, float, Row]] = []  # centre, height of the row's first line, its lines
    for (left, top, _, bottom), text in placed:
        middle = (top + bottom) / 2
        if rows and abs(middle - rows[-1][0]) <= max(rows[-1][1], bottom - top) * ROW_TOLERANCE:
            rows[-1][2].append((left, text))
        else:
            rows.append((middle, bottom - top, [(left, text)]))
    return [_without_tax_code(sorted(row)) for _, _, row in rows]


def _without_tax_code(row: Row) -> Row:
    """The row less a tax code printed right of its amount ("9.00 | SR"), so the amount ends the row."""
    while len(row) > 1 and _TAX_CODE.match(row[-1][1]):
        row = row[:-1]
    return row


def _items_start(rows: list[Row]) -> int:
    """The first row after the column header; where no header is printed, the first row after the last
    date, time or invoice line above the totals."""
    totals = next((index for index, row in enumerate(rows) if _ends_items(row) and _amount(row) is not None),
                  len(rows))
    headers = [index for index in range(totals) if _is_header(rows[index])]  # not the tax summary's, below
    if headers:
        last = headers[0]
        while last + 1 < len(rows) and _is_header(rows[last + 1], least=1):  # "(RM)" under "AMOUNT"
            last += 1
        return last + 1
    preamble = [index for index in range(totals) if any(_PREAMBLE.search(text) for _, text in rows[index])]
    if preamble:
        return preamble[-1] + 1
    # nothing marks where the items begin (AEON prints its till's date below the totals): the first amount row,
    # as the address and opening hours above it name no item
    return next((index for index in range(totals) if _amount(rows[index]) is not None), 0)


def _is_header(row: Row, least: int = 2) -> bool:
    """A row of column names and no digits: two in three of its words name a column (OCR misreads some:
    "Itern Qty Totäl"; a tax summary's "GST Summary Amount (RM) Tax (RM)" is not a header). A number of one or
    two digits that OCR read left of the names is a stray mark ("11 | Qty | S/Price | Amount | Tax")."""
    if len(row) > 1 and _STRAY_NUMBER.match(row[0][1]):
        row = row[1:]
    words = [word for _, text in row for word in fold(text).split()]
    named = sum(bool(_HEADER_WORD.match(word)) for word in words)
    return named >= least and 3 * named >= 2 * len(words) and not any(char.isdigit() for _, text in row
                                                                       for char in text)


def _ends_items(row: Row) -> bool:
    """A totals row: a label such as TOTAL, GST or Qty(s) and a number (a header's "Price (GST Inc.)" has none)."""
    return any(_END.search(text) for _, text in row) and any(char.isdigit() for _, text in row for char in text)


def _amount(row: Row) -> float | None:
    """The amount at the right end of a row: its rightmost line's last amount, not a size ("3X1.25MM")."""
    amounts = [amount for amount in amounts_in(_SIZE.sub(" ", row[-1][1])) if amount > 0]
    return amounts[-1] if amounts else None


def _discount(row: Row) -> float | None:
    """A row whose rightmost line is a negative amount and that shows no other amount: a discount."""
    found = _DISCOUNT.search(row[-1][1])
    if not found or any(amounts_in(_PERCENT.sub(" ", text)) for _, text in row[:-1]):  # "@DISC 10.00% | -5.59"
        return None
    return amounts_in(found[1])[0]


def _own_name(row: Row) -> str:
    """The text of a row's lines that could name an item (not a code, count, price or unit, nor a tax code
    read into the amount's line: "10.00 ZRL")."""
    last = _without_amounts(row[-1][1]).strip()
    return " ".join(_clean(text) for _, text in row[:-1] if _could_name(text)) or (
        _clean(last) if _could_name(last) and not _TAX_CODE.match(last) else "")


def _name_beside(region: list[Row], index: int, below: bool) -> str:
    """The text-only rows between this amount row and the next one (names printed below) or the previous
    one (names printed above)."""
    step = 1 if below else -1
    found: list[str] = []
    other = index + step
    while 0 <= other < len(region) and not any(amounts_in(text) for _, text in region[other]):
        found.append(" ".join(_clean(text) for _, text in region[other] if _could_name(text)))  # "" for a code
        other += step  # a row with an amount is another item's, even where its own amount was misread ("50.0c")
    return " ".join(part for part in (found if below else reversed(found)) if part)


def _continued(region: list[Row], index: int) -> list[str]:
    """The text-only rows under an item's own name that start right of it: its name's second line
    ("2 1\" TOWEL ROD 12.00" over an indented "BRACKET(END)")."""
    left = next(left for left, text in region[index] if _could_name(text))
    found = []
    for row in region[index + 1:]:
        if any(amounts_in(text) for _, text in row) or _discount(row) is not None or row[0][0] <= left + INDENT:
            break
        found.append(" ".join(_clean(text) for _, text in row if _could_name(text)))
    return [part for part in found if part]


def _could_name(text: str) -> bool:
    """Text with letters beyond units and currency ("05 X RM", "6.00 BOXS" name nothing) that is no code."""
    letters = sum(char.isalpha() for char in _UNIT.sub(" ", text))
    return letters >= MIN_NAME_LETTERS and not _CODE.match(text) and not _is_sku(text)


def _is_sku(text: str) -> bool:
    """A stock code printed under a name: one token of digits and short runs of letters, perhaps with a
    count after a dash ("EZ10HD05 - 24", "WA43-A-24"); "100PLUS" and "WD40 27ML" are names."""
    head = re.sub(r"(?:\s+-?|-\s+)\s*[\d/]+$", "", text.strip())
    return " " not in head and any(char.isdigit() for char in head) and not re.search(r"[^\W\d_]{3}", head)


def _without_amounts(text: str) -> str:
    return re.sub(r"\$?\d[\d,]*[.,]\d{2}\s*[a-z]?\b", " ", text, flags=re.I)


def _clean(text: str) -> str:
    """A name as printed, less the marks around it: a leading "- " or bar code, a trailing "*"."""
    text = re.sub(r"^\s*(?:\d{5,}\s+)?[-*]\s*", "", text)
    return re.sub(r"\s*\*+\s*$", "", text).strip()


def _quantity(row: Row) -> float:
    """The count printed in an item's amount row: "1 X 5.20", "2pc @ 9.89", or a count alone in its column
    nearest the amount; 1 where none is printed."""
    for _, text in row:
        if found := _COUNT.search(text):
            return float(found[1])
    counts = [int(found[1]) for _, text in row[:-1]
              if not _could_name(text) and (found := _BARE_COUNT.search(text.strip()))]
    return float(counts[-1]) if counts and counts[-1] > 0 else 1.0
