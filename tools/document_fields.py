"""Facts a document prints, read from its OCR text: its shop, date and total, and its words folded for matching.

A receipt carries no EXIF date and no price metadata, yet people ask "only the
March ones", "which is the cheapest?" or "how much did I spend at AEON?". So the
indexer stores, beside the OCR text, the shop's name, the printed date (ISO
``YYYY-MM-DD``) and the printed total, and a folded
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
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")  # 20180304: only as the whole text, never inside an invoice number
_AMOUNT = re.compile(r"(?<![\d.\-])(\d{1,6}(?:,\d{3})*[.,]\d{2})(?![\d.])")
_TOTAL_LINE = re.compile(r"t[o0u]t[a4]?l|jumlah|amount due|grand|nett|round", re.I)  # OCR writes TOTL, TUTAL
_NOT_TOTAL = re.compile(r"sub\s*-?\s*t[o0u]t[a4]?l|t[o0u]t[a4]?l\s*(qty|quantity|items?|tax|gst|discount|disc|saving)|"
                        r"\bqty\b|tax\b|change|cash|tender|paid|excl|\(ex\)", re.I)
_FINAL_TOTAL = re.compile(r"incl|grand|nett|net t[o0u]t|round\w* t[o0u]t|amount due|t[o0u]t[a4]?l amount|payable|\(rm\)",
                          re.I)
_SUMMARY = re.compile(r"summary|tax code", re.I)  # a tax summary's "Total:" row repeats the net amount
FINAL_WEIGHT = 3  # a label that says the total is final (inclusive, grand, rounded) outweighs two plain ones
ROW_TOLERANCE = 0.6  # an amount whose centre lies within 0.6 line heights of a label's centre is on its row

# The shop's name is printed in a receipt's first lines, often after a cashier's name, a till number or a slogan.
# 4 lines: chosen among 3, 4, 6 and 8 on SROIE's even receipts as Loupe's OCR reads them (0.80 right; the odd
# ones then 0.80); chosen on the odd ones, 6 won (0.82; the even ones 0.78). The word lists below were written
# from the first lines of all 100 receipts, so only the line count was chosen blind to the other half.
# evals/document_fields_eval.py measures the rule.
SHOP_LINES = 4
_LEGAL_FORM = re.compile(r"\b(?:sdn\.?\s*bhd|bhd|s/b|berhad|ltd|llc|inc|plc|gmbh|pte|limited)\b\.?", re.I)
_TRADE_WORD = re.compile(r"\b(?:enterprise|trading|restaurant|restoran|hardware|stationery|mart|market|cafe|bistro|"
                         r"grocer|company|pasaraya|perniagaan|kedai|syarikat|store|shop|bakery|pharmacy|station|"
                         r"marketing)\b", re.I)
_NOT_A_NAME = re.compile(r"thank|welcome|\btq\b|receipt|invoice|\btax\b|\bgst\b|\btel\b|\bfax\b|\blot\b|jalan|\bjln\b|"
                         r"taman|\breg\b|company no|www|\.com|@|\bno\s*[.:]", re.I)
_REGISTRATION_TAIL = re.compile(r"\s*(?:\([^()]*\d[^()]*\)|\(?\b\d{5,}\W?[A-Z]?\b\)?)\s*$")  # (126926-H), 1110644-W
_LABEL_HEAD = re.compile(r"^[^\W\d_]+\s*:\s*")  # "DIMILIKI: BANH MI CAFE SDN BHD" (owned by)
# Signs and codes, longest first so "US$" is not read as "$"; a code must stand apart from other letters.
_CURRENCY = re.compile(r"US\$|S\$|A\$|C\$|HK\$|[$€£¥₹]|"
                       r"(?<![^\W\d_])(?:RM|MYR|USD|SGD|AUD|CAD|HKD|EUR|GBP|JPY|CNY|INR|IDR|THB)(?![^\W\d_])")
_CURRENCY_CODES = {"RM": "MYR", "US$": "USD", "S$": "SGD", "A$": "AUD", "C$": "CAD", "HK$": "HKD", "€": "EUR",
                   "£": "GBP", "₹": "INR"}


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
    day, a second above 12 makes the order month-first. Eight digits alone ("20180304") are year first.
    """
    for pattern in (_YEAR_FIRST, _DAY_FIRST, _DAY_MONTH_NAME, _MONTH_NAME_DAY):
        for match in pattern.finditer(text):
            date = _date_of(pattern, match.groups())
            if date:
                return date
    compact = _COMPACT.fullmatch(text.strip())
    return _date_of(_YEAR_FIRST, compact.groups()) if compact else None


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


def printed_shop(lines: list[str]) -> str | None:
    """The shop or company a receipt names, from its first OCR lines in reading order (None if none reads).

    A till number, a cashier's name or a slogan often comes first, and a brand's logo before the legal
    name, so among the first :data:`SHOP_LINES` lines that could be a name (three letters or more, not an
    address, phone or tax line), the first with a legal form (SDN BHD, S/B, LTD...) wins, else the first
    with a trade word (TRADING, RESTAURANT, HARDWARE...), else the first. A name split over lines ("POPULAR
    BOOK" / "CO. (M) SDN BHD", "HOME MASTER HARDWARE &" / "ELECTRICAL") is joined, and a registration
    number after it ("(126926-H)") dropped, as SROIE's key writes the company.
    """
    header = [unicodedata.normalize("NFKC", line).strip() for line in lines[:SHOP_LINES]]
    names = [index for index, line in enumerate(header) if _could_be_name(line)]
    if not names:
        return None
    first = last = next((index for pattern in (_LEGAL_FORM, _TRADE_WORD) for index in names
                         if pattern.search(header[index])), names[0])
    text = header[first]
    while first > 0 and _continues_above(text) and _could_be_name(header[first - 1]):
        first -= 1
        text = f"{header[first]} {text}"
    while last + 1 < len(header) and (text.endswith("&") or text.count("(") > text.count(")")) \
            and _could_be_name(header[last + 1]):
        last += 1
        text = f"{text} {header[last]}"
    return _REGISTRATION_TAIL.sub("", _LABEL_HEAD.sub("", text)).strip(" ,") or None


def _could_be_name(line: str) -> bool:
    return len(re.findall(r"[^\W\d_]", line)) >= 3 and not _NOT_A_NAME.search(line)


def _continues_above(text: str) -> bool:
    """A legal form with at most one word of name before it ("SDN BHD", "CO. (M) SDN BHD"), or a closing
    bracket the line never opened ("ALAM) SDN BHD"): the name began on the line above."""
    before = re.sub(r"\([^()]*\)", " ", _LEGAL_FORM.split(text)[0])
    words = [word for word in re.findall(r"[^\W_]+", before) if word.lower() != "co"]
    return (bool(_LEGAL_FORM.search(text)) and len(words) <= 1) or text.count(")") > text.count("(")


def printed_currency(ocr_text: str) -> str | None:
    """The currency a document's amounts are in: the sign or code it prints most often (None if none).

    "$" stays "$": Malaysian shops print it for ringgit as US ones do for dollars, so it is never taken
    for either, and an RM receipt's total is never added to a "$" one's as if they were the same money.
    """
    counts = Counter(_CURRENCY_CODES.get(found.upper(), found) for found in _CURRENCY.findall(ocr_text))
    return counts.most_common(1)[0][0] if counts else None


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
