"""Facts a document prints, read from its OCR text: its date, its total, and its words folded for matching.

A receipt carries no EXIF date and no price metadata, yet people ask "only the
March ones" or "which is the cheapest?". So the indexer stores, beside the OCR
text, the printed date (ISO ``YYYY-MM-DD``) and the printed total, and a folded
copy of the text in which "MR. D.I.Y.", "Mr DIY" and "mr d i y" all spell "mrdiy"
and "7-ELEVEN" spells what "Seven Eleven" does ("711"). Everything here is a
pure function of text, so an index built before these columns existed is
filled from its stored OCR text without running a model again.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

MONTHS = {name: number for number, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")], start=1) for name in names}
_NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                 "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12"}
_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
_DAY_FIRST = re.compile(r"(?<!\d)(\d{1,2})[/\-.](\d{1,2})[/\-.](\d{4}|\d{2})(?!\d)")
_YEAR_FIRST = re.compile(r"(?<!\d)(\d{4})[/\-.:](\d{1,2})[/\-.:](\d{1,2})(?!\d)")
_DAY_MONTH_NAME = re.compile(rf"(?<!\d)(\d{{1,2}})[\s\-/.]*({_MONTH_NAMES})[a-z]*\.?[\s\-/.,]*(\d{{4}}|\d{{2}})(?!\d)",
                             re.I)
_MONTH_NAME_DAY = re.compile(rf"\b({_MONTH_NAMES})[a-z]*\.?\s+(\d{{1,2}}),?\s+(\d{{4}})(?!\d)", re.I)
_AMOUNT = re.compile(r"(?<![\d.\-])(\d{1,6}(?:,\d{3})*[.,]\d{2})(?![\d.])")
_TOTAL_LINE = re.compile(r"t[o0u]t[a4]?l|jumlah|amount due|grand|nett|round", re.I)  # OCR writes TOTL, TUTAL
_NOT_TOTAL = re.compile(r"sub\s*-?\s*t[o0u]t[a4]?l|t[o0u]t[a4]?l\s*(qty|quantity|items?|tax|gst|discount|disc|saving)|"
                        r"\bqty\b|tax\b|change|cash|tender|paid|excl|\(ex\)", re.I)
_FINAL_TOTAL = re.compile(r"incl|grand|nett|net t[o0u]t|round\w* t[o0u]t|amount due|t[o0u]t[a4]?l amount|payable|\(rm\)",
                          re.I)
_SUMMARY = re.compile(r"summary|tax code", re.I)  # a tax summary's "Total:" row repeats the net amount
FINAL_WEIGHT = 3  # a label that says the total is final (inclusive, grand, rounded) outweighs two plain ones
ROW_TOLERANCE = 0.6  # an amount whose centre lies within 0.6 line heights of a label's centre is on its row


def fold(text: str) -> str:
    """Lower case, no accents, number words as digits, words of letters and digits split by one space.

    Applied alike to stored text and to what people type; :func:`name_pattern` then lets the spaces
    fall anywhere, so punctuation, spacing, case and accents never decide whether a name matches.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(_NUMBER_WORDS.get(word, word) for word in re.findall(r"[^\W_]+", text))


def fold_lines(text: str) -> str:
    """The folded form of each line, one per line, so that a match never runs across two lines."""
    return "\n".join(folded for line in text.splitlines() if (folded := fold(line)))


def name_pattern(letters: str) -> re.Pattern:
    """Folded text that spells ``letters`` (no spaces) with a space or none between any two of them.

    "mrdiy" finds "mr d i y" and "mr diy"; "711" finds "7 11" (7-ELEVEN, Seven Eleven). The match must
    start and end at word boundaries, so "diy" is not found inside "kedaidiyana" nor "711" in a phone number.
    """
    return re.compile(r"(?<![^\W_])" + " ?".join(map(re.escape, letters)) + r"(?![^\W_])")


def iso_date(text: str) -> str | None:
    """The first date written in ``text``, as ``YYYY-MM-DD``; day-first where day and month are ambiguous.

    Receipts of the public sets (and most of the world) print day first; a first number above 12 is a
    day, a second above 12 makes the order month-first.
    """
    for pattern in (_YEAR_FIRST, _DAY_FIRST, _DAY_MONTH_NAME, _MONTH_NAME_DAY):
        for match in pattern.finditer(text):
            date = _date_of(pattern, match.groups())
            if date:
                return date
    return None


def _date_of(pattern: re.Pattern, parts: tuple[str, ...]) -> str | None:
    if pattern is _YEAR_FIRST:
        year, month, day = parts
    elif pattern is _DAY_FIRST:
        day, month, year = parts
        if int(month) > 12 >= int(day):
            day, month = month, day
    elif pattern is _DAY_MONTH_NAME:
        day, month, year = parts[0], _month(parts[1]), parts[2]
    else:
        month, day, year = _month(parts[0]), parts[1], parts[2]
    year_number = int(year) + (2000 if len(year) == 2 else 0)
    if not (1990 <= year_number <= 2100 and 1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return None
    return f"{year_number:04d}-{int(month):02d}-{int(day):02d}"


def _month(name: str) -> str:
    return str(MONTHS.get(name.lower()) or MONTHS[name.lower()[:3]])


def printed_date(ocr_text: str) -> str | None:
    """The document's date: on a line that says "date" if there is one, else the first date printed."""
    lines = ocr_text.splitlines()
    dated = [line for line in lines if re.search(r"date|tarikh", line, re.I)]
    for index, line in enumerate(lines):  # "DATE:" alone on its line, the date on the next
        if line in dated and index + 1 < len(lines):
            dated.append(line + " " + lines[index + 1])
    for line in (*dated, *lines):
        if date := iso_date(line):
            return date
    return None


def printed_total(lines: list[dict]) -> float | None:
    """The amount a receipt or invoice totals to, from OCR lines with their boxes.

    OCR reads a receipt's label column and amount column as separate lines, so the amount of a
    "TOTAL" label is found by geometry: on the label's own line, else on the nearest line to its right
    in the same row. Labels that say total, grand, nett or rounded count; subtotal, tax, quantity, cash
    and change do not. Totals are often printed twice (before and after rounding, or as TOTAL and TOTAL
    AMOUNT): the amount printed most often wins, and among equals the lowest on the page, which is the
    rounded figure a customer paid.
    """
    placed = [(line["text"], _bounds(line["box"])) for line in lines if line.get("text") and line.get("box")]
    summary_top = min((top for text, (_, top, _, _) in placed if _SUMMARY.search(text)), default=2.0)
    weight: Counter[float] = Counter()
    lowest: dict[float, float] = {}
    for text, (left, top, right, bottom) in placed:
        if not _TOTAL_LINE.search(text) or _NOT_TOTAL.search(text) or top > summary_top:
            continue
        middle, half = (top + bottom) / 2, max(bottom - top, 1e-3) * ROW_TOLERANCE
        beside = [(abs((other_top + other_bottom) / 2 - middle), other_left, amounts[-1])
                  for other, (other_left, other_top, _, other_bottom) in placed
                  if other_left >= left and abs((other_top + other_bottom) / 2 - middle) <= half
                  and (other is text or not _NOT_TOTAL.search(other))
                  and (amounts := [a for a in map(_number, _AMOUNT.findall(other)) if a > 0])]
        if beside:
            amount = min(beside)[2]
            weight[amount] += FINAL_WEIGHT if _FINAL_TOTAL.search(text) else 1
            lowest[amount] = max(lowest.get(amount, 0.0), middle)
    if not weight:
        return None
    return max(weight, key=lambda amount: (weight[amount], lowest[amount]))


def _bounds(box: list[list[float]]) -> tuple[float, float, float, float]:
    xs, ys = [point[0] for point in box], [point[1] for point in box]
    return min(xs), min(ys), max(xs), max(ys)


def _number(text: str) -> float:
    if re.search(r",\d{2}$", text) and "." not in text:
        text = text.replace(",", ".")
    return float(text.replace(",", ""))
