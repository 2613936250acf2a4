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
from collections.abc import Callable

# Raised whenever a rule below or in tools/receipt_items.py changes what is read: `loupe index` then reads every
# stored row's text again.
FIELDS_VERSION = 8
MONTHS = {name: number for number, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")], start=1) for name in names}
_NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                 "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12"}
_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
# A date never follows a letter ("HD03-04-06" is a product code); a four-digit year may run straight into the time
# ("10-03-201823:03:06", "14/03/20185:57:07PM": the OCR drops the space between them).
_YEAR_END = r"(?:(?!\d)|(?<=\d{4})(?=\d{1,2}:\d\d))"
_DAY_FIRST = re.compile(rf"(?<![^\W_])(\d{{1,2}})[/\-.](\d{{1,2}})[/\-.](\d{{4}}|\d{{2}}){_YEAR_END}")
_TIME = re.compile(r"(?<!\d)\d{1,2}:\d\d(?!\d)")
_LOOSE_DAY_FIRST = re.compile(r"(?<![^\W_])(\d{2}) ?(\d{2})[/\-.](\d{4}|\d{2})(?!\d)")  # "2703/2018", "05 02-18"
_YEAR_FIRST = re.compile(r"(?<![^\W_])(\d{4})[/\-.:](\d{1,2})[/\-.:](\d{1,2})(?!\d)")
_DAY_MONTH_NAME = re.compile(rf"(?<!\d)(\d{{1,2}})[\s\-/.]*({_MONTH_NAMES})[a-z]*\.?[\s\-/.,]*(\d{{4}}|\d{{2}})(?!\d)",
                             re.I)
_MONTH_NAME_DAY = re.compile(rf"\b({_MONTH_NAMES})[a-z]*\.?\s+(\d{{1,2}}),?\s+(\d{{4}})(?!\d)", re.I)
_COMPACT = re.compile(r"(\d{2})(\d{2})(\d{2})(\d{2})")  # 20180304, 27032018: only as the whole text
_AMOUNT = re.compile(r"(?<![\d.\-])(\d{1,6}(?:,\d{3})*[.,]\d{2})(?![\d.])")
TOTAL = r"t[o0ua]t[a4]?l"  # the word as OCR writes it: TOTAL, TOTL, TUTAL, TATAL
_NET_AMOUNT = r"\bnet\s*am(?:oun)?t\b"  # "Net Amt :", "NET AMOUNT"
_TOTAL_LINE = re.compile(rf"{TOTAL}|\btl\s*:|jumlah|am(?:oun)?t\.? due|grand|nett|{_NET_AMOUNT}|round", re.I)
_NOT_TOTAL = re.compile(rf"sub\s*-?\s*{TOTAL}|{TOTAL}\s*(qty|quantity|items?|tax|gst|discount|disc|saving)|"
                        r"\bqty\b|tax\b|change|cash|tender|paid|excl|\(ex\)", re.I)
_FINAL_TOTAL = re.compile(rf"incl|grand|nett|net {TOTAL}|{_NET_AMOUNT}|round\w* {TOTAL}|am(?:oun)?t\.? due|"
                          rf"{TOTAL} amount|payable|\(rm\)", re.I)
_ROUNDING = re.compile(r"round", re.I)
_TOTAL_WORD = re.compile(rf"{TOTAL}|jumlah|amount|grand|nett", re.I)
_SPACED_AMOUNT = re.compile(r"^\s*(\d{1,6})[ \-](\d{2})\s*$")  # "10 00", "7-00": an amount whose point OCR misread
_TENDER = re.compile(r"^\W*(?:cash|tunai|visa|master\s*card|credit\s*card|debit\s*card|card|tender(?:ed)?|paid)\b"
                     r"(?!.*chan?ge)", re.I)  # how it was paid, not "CASH CHANGE"
_CHANGE = re.compile(r"chan?ge|\bbaki\b", re.I)
_ADJUSTMENT = re.compile(r"(?<![\d.])-?\s?0[.,]0\d(?!\d)")  # a rounding adjustment: a few cents, either sign
_SUMMARY = re.compile(r"summary|tax code", re.I)  # a tax summary's "Total:" row repeats the net amount
FINAL_WEIGHT = 3  # a label that says the total is final (inclusive, grand, rounded) outweighs two plain ones
COLUMN_EDGE = 0.02  # right-aligned amounts end within 2% of the page's width of each other
ROW_TOLERANCE = 0.6  # an amount whose centre lies within 0.6 line heights of a label's centre is on its row

# The shop's name is printed in a receipt's first lines, often after a cashier's name, a till number or a slogan.
# 5 lines: chosen among 2, 3, 4, 5, 6 and 8 on each half of SROIE's receipts alone, as Loupe's OCR reads them (the
# even ones: 4 and 5 tie at 0.82 right, the odd ones then 0.84 and 0.86; the odd ones: 5, 6 and 8 tie at 0.86, the
# even ones then 0.82, 0.80, 0.80): 5 is best on both. Counting only the lines that could be a name, instead of
# every line, was tried and did no better (0.82 / 0.86 at best). The word lists below were written from the first
# lines of all 100 receipts, so only the line count was chosen blind to the other half.
# evals/document_fields_eval.py measures the rule.
SHOP_LINES = 5
LEGAL_FORM_WORDS = frozenset("sdn bhd berhad ltd llc inc plc gmbh pte limited".split())  # folded, as words
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
_MALAYSIA = re.compile(r"\b(?:malaysia|johor|kedah|kelantan|melaka|malacca|negeri sembilan|pahang|perak|perlis|"
                       r"pulau pinang|penang|sabah|sarawak|selangor|terengganu|kuala lumpur|putrajaya|labuan)\b", re.I)
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
    start and end at word boundaries, so "diy" is not found inside "kedaidiyana" nor "711" in a phone number;
    a name of letters may follow a digit, as a quantity printed against an item ("2HotCakes").
    """
    return _whole_words(" ?".join(map(re.escape, letters)), after_digit=letters[:1].isalpha())


def misread_name_pattern(letters: str) -> re.Pattern:
    """Like :func:`name_pattern`, but one of the letters may be misread as any other letter or digit, or lost:
    OCR does both to a printed name ("LJAN HING" and "LAN HING" for LIAN HING, "79 SPEED MART" for 99). The
    person typing may lose one too: a letter the print has between two typed ones ("99 spedmart" is 99 SPEED
    MART). For names of MIN_MISREAD_LETTERS or more only, where the other letters still say which name it is."""
    escaped = [re.escape(ch) for ch in letters]
    misread = [" ?".join(ch if k != at else r"[^\W_]" for k, ch in enumerate(escaped)) for at in range(len(letters))]
    lost = [" ?".join(ch for k, ch in enumerate(escaped) if k != at) for at in range(len(letters))]
    typed_short = [" ?".join([*escaped[:at], r"[^\W_]", *escaped[at:]]) for at in range(1, len(letters))]
    return _whole_words("(?:" + "|".join(misread + lost + typed_short) + ")")


def abbreviated_name_pattern(letters: str) -> re.Pattern:
    """Like :func:`name_pattern`, but the person typing may have left vowels out, as people shorten a name
    ("99 spdmart" is 99 SPEED MART, "lnhing" is LIAN HING): only vowels and spaces may stand between two typed
    letters, so the typed consonants still say which name it is. For names of MIN_MISREAD_LETTERS or more."""
    return _whole_words("[aeiou ]*".join(map(re.escape, letters)), after_digit=letters[:1].isalpha())


def _whole_words(body: str, after_digit: bool = False) -> re.Pattern:
    """``body`` matched only from a word's start (or, ``after_digit``, the end of a number) to a word's end."""
    return re.compile((r"(?<![^\W\d_])" if after_digit else r"(?<![^\W_])") + body + r"(?![^\W_])")


# "aeon store", "bookstore", "coffeeshop": a shop typed with its kind; the name is the rest ("popular bookstore" is
# POPULAR BOOK CO.)
KIND_OF_SHOP = re.compile(r"^(?:store|shop)s?$|(?<=\w{3})(?:store|shop)s?$")

# A shop's name of at least this many letters and digits may have one of them misread (misread_name_pattern).
# Chosen on the two collection question sets, both development sets by then (README, "Questions about the
# collection"): the names OCR misread there have 8 and 11; "aeon", "shell" or "kfc" with a letter free would
# be other names.
MIN_MISREAD_LETTERS = 8


def iso_date(text: str) -> str | None:
    """The first date written in ``text``, as ``YYYY-MM-DD``; day-first where day and month are ambiguous.

    Receipts of the public sets (and most of the world) print day first; a first number above 12 is a
    day, a second above 12 makes the order month-first. Eight digits alone are year first ("20180304"), else
    day first ("27032018", a date whose slashes the OCR lost); inside other text they are an invoice number.
    """
    for pattern in (_YEAR_FIRST, _DAY_FIRST, _DAY_MONTH_NAME, _MONTH_NAME_DAY):
        for match in pattern.finditer(text):
            date = _date_of(pattern, match.groups())
            if date:
                return date
    if not (compact := _COMPACT.fullmatch(text.strip())):
        return None
    first, second, third, fourth = compact.groups()
    return _date_of(_YEAR_FIRST, (first + second, third, fourth)) or _date_of(_DAY_FIRST, (first, second,
                                                                                         third + fourth))


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
    """The document's date: on a line that says "date" if there is one, else on one that prints a time too (a
    product code such as "CK 11-22-31" can look like a date), else the first date printed; where no
    date reads whole, one whose first separator the OCR lost or read as a space ("2703/2018", "05 02-18")."""
    lines = ocr_text.splitlines()
    dated = [line for line in lines if re.search(r"date|tarikh", line, re.I)]
    for index, line in enumerate(lines):  # "DATE:" alone on its line, the date on the next
        if line in dated and index + 1 < len(lines):
            dated.append(line + " " + lines[index + 1])
    timed = [line for line in lines if _TIME.search(line)]  # the till's timestamp: "19-09-17 15:39"
    for line in (*dated, *timed, *lines):
        if date := iso_date(line):
            return date
    for line in (*dated, *lines):  # none is printed whole: one the OCR lost a separator of, as a last resort
        for match in _LOOSE_DAY_FIRST.finditer(line):
            if date := _date_of(_DAY_FIRST, match.groups()):
                return date
    return None


def printed_shop(lines: list[str]) -> str | None:
    """The shop or company a receipt names, from its first OCR lines in reading order (None if none reads).

    A till number, a cashier's name or a slogan often comes first, and a brand's logo before the legal
    name, so among the first :data:`SHOP_LINES` lines that could be a name (three letters or more, not an
    address, phone or tax line), the first with a legal form (SDN BHD, S/B, LTD...) wins, else the first
    with a trade word (TRADING, RESTAURANT, HARDWARE...), else the first. A name split over lines ("POPULAR
    BOOK" / "CO. (M) SDN BHD", "HOME MASTER HARDWARE &" / "ELECTRICAL") is joined, and a registration
    number after it ("(126926-H)") dropped, as SROIE's key writes the company. A line in lower case only is
    left out where another could be the name (a cashier wrote theirs on the slip), and so is, for the legal
    form or trade word, a line that holds nothing else ("BISTRO & CAFE" under "THREE STOOGES").
    """
    header = [unicodedata.normalize("NFKC", line).strip() for line in lines[:SHOP_LINES]]
    names = [index for index, line in enumerate(header) if _could_be_name(line)]
    names = [index for index in names if not header[index].islower()] or names  # "tan woon yann": a hand wrote it
    if not names:
        return None
    named = [index for index in names if not _only_trade_words(header[index])]
    first = last = next((index for pattern in (_LEGAL_FORM, _TRADE_WORD) for index in named
                         if pattern.search(header[index])), names[0])
    text = header[first]
    while first > 0 and _continues_above(text) and _could_be_name(header[first - 1]):
        first -= 1
        text = f"{header[first]} {text}"
    while last + 1 < len(header) and _continues_below(text, header[last + 1]):
        last += 1
        text = f"{text.rstrip(' -')} {header[last]}"
    return _REGISTRATION_TAIL.sub("", _LABEL_HEAD.sub("", text)).strip(" ,") or None


def _could_be_name(line: str) -> bool:
    """Three letters or more and no address, phone or tax words, except in brackets: "BOOK TA .K (TAMAN DAYA)
    SDN BHD" names its branch's district there."""
    unbracketed = re.sub(r"\([^()]*\)", " ", line)
    return len(re.findall(r"[^\W\d_]", unbracketed)) >= 3 and not _NOT_A_NAME.search(unbracketed)


def _only_trade_words(line: str) -> bool:
    """A line that says what kind of shop it is and nothing else ("BISTRO & CAFE" under "THREE STOOGES")."""
    return not re.sub(r"&|\band\b", " ", _TRADE_WORD.sub(" ", line), flags=re.I).strip(" .,-")


def _continues_below(text: str, below: str) -> bool:
    """A name that ends in "&" or "-" goes on on the next line, however short ("POPULAR BOOK-" / "CO."); one with
    a bracket left open goes on on a line that could be a name."""
    if text.endswith(("&", "-")):
        return bool(re.search(r"[^\W\d_]", below)) and not _NOT_A_NAME.search(below)
    return text.count("(") > text.count(")") and _could_be_name(below)


def _continues_above(text: str) -> bool:
    """A legal form with at most one word of name before it ("SDN BHD", "CO. (M) SDN BHD"), or a closing
    bracket the line never opened ("ALAM) SDN BHD"): the name began on the line above."""
    before = re.sub(r"\([^()]*\)", " ", _LEGAL_FORM.split(text)[0])
    words = [word for word in re.findall(r"[^\W_]+", before) if word.lower() != "co"]
    return (bool(_LEGAL_FORM.search(text)) and len(words) <= 1) or text.count(")") > text.count("(")


def printed_currency(ocr_text: str) -> str | None:
    """The currency a document's amounts are in: the sign or code it prints most often (None if none).

    "$" stays "$" (US, Singapore, Brunei... dollars), except on a receipt that says it is Malaysian
    (:func:`dollar_for_ringgit`), where it is ringgit: so an RM receipt's total is added to a "$" one's only when
    both are the same money.
    """
    counts = _signs(ocr_text)
    if not counts:
        return None
    sign = counts.most_common(1)[0][0]
    return "MYR" if sign == "$" and dollar_for_ringgit(ocr_text) else sign


def dollar_for_ringgit(ocr_text: str) -> bool:
    """Whether a receipt that prints its amounts with "$" means ringgit: it prints RM or MYR elsewhere, or an
    address in Malaysia (a state or federal territory, or the country's name).

    Malaysian tills print "$" for RM (UNIHAKKA's food court: "$8.20"); SROIE's 14 receipts that print "$" are
    all Malaysian, and all 14 name Johor or Kuala Lumpur (evals/document_fields_eval.py counts them per half).
    A US or Singapore receipt names neither, so its dollars are never added to ringgit.
    """
    counts = _signs(ocr_text)
    return "$" in counts and ("MYR" in counts or bool(_MALAYSIA.search(ocr_text)))


def _signs(ocr_text: str) -> Counter[str]:
    return Counter(_CURRENCY_CODES.get(found.upper(), found) for found in _CURRENCY.findall(ocr_text))


Box = tuple[float, float, float, float]  # left, top, right, bottom, 0..1 of the page


def printed_total(lines: list[dict]) -> float | None:
    """The amount a receipt or invoice totals to, from OCR lines with their boxes.

    OCR reads a receipt's label column and amount column as separate lines, so the amount of a
    "TOTAL" label is found by geometry: on the label's own line, else on the nearest line to its right
    in the same row. Labels that say total, grand, nett or amount due count; subtotal, tax, quantity, cash,
    change and a rounding adjustment do not, nor a tax summary's "Total:" below the totals. Totals are often
    printed twice (before and after rounding, or as TOTAL and TOTAL AMOUNT): the amount printed most often
    wins, and among equals the lowest on the page; where a rounding adjustment follows it, the rounded
    figure a customer paid (:func:`_after_rounding`).
    """
    placed = [(line["text"], line_bounds(line["box"])) for line in lines if line.get("text") and line.get("box")]
    found = [(amount, bounds[1], FINAL_WEIGHT if _FINAL_TOTAL.search(text) else 1)
             for text, bounds in placed if (amount := _labelled_amount(text, bounds, placed))]
    summary_top = min((top for text, (_, top, _, _) in placed if _SUMMARY.search(text)), default=2.0)
    above_summary = [candidate for candidate in found if candidate[1] <= summary_top]
    if not above_summary and (paid := _tender_less_change(placed, summary_top)):
        return paid
    found = above_summary or found  # "Tax Code" may head the items, and then the totals lie below it
    weight: Counter[float] = Counter()
    lowest: dict[float, float] = {}
    for amount, top, points in found:
        weight[amount] += points
        lowest[amount] = max(lowest.get(amount, 0.0), top)
    if not weight:
        return _sum_of_the_lines_above(placed)
    total = max(weight, key=lambda amount: (weight[amount], lowest[amount]))
    return _rounded_as_paid(_after_rounding(total, lowest[total], placed), placed, summary_top)


def _labelled_amount(text: str, bounds: Box, placed: list[tuple[str, Box]]) -> float | None:
    """The amount a total label shows on its own line or on the nearest line to its right in its row."""
    if not _TOTAL_LINE.search(text) or _NOT_TOTAL.search(text) or _is_adjustment(text):
        return None
    return _row_amount(bounds, placed, lambda other: other is text or not _NOT_TOTAL.search(other))


def _row_amount(bounds: Box, placed: list[tuple[str, Box]], counts: Callable[[str], bool] = lambda _: True,
                zero: bool = False) -> float | None:
    """The last amount of the nearest line in the row of ``bounds`` that ``counts``; 0.00 only where ``zero``."""
    beside = [(distance, other_left, amounts[-1]) for distance, other_left, other in _row(bounds, placed)
              if counts(other) and (amounts := [a for a in _amounts_beside_label(other) if a > 0 or zero])]
    return min(beside)[2] if beside else None


def _tender_less_change(placed: list[tuple[str, Box]], summary_top: float) -> float | None:
    """The total as paid, where no total label above a tax summary shows its amount (OCR may read the TOTAL
    and CASH rows' shared amount as one line in the CASH row): the tender less the change printed on the
    nearest change row below it, "CASH 153.35" and "CHANGE 0.00". Without a change row the tender may be more
    than the bill, so nothing is taken."""
    top_down = sorted(placed, key=lambda line: line[1][1])
    for text, bounds in top_down:
        if bounds[1] > summary_top or not _TENDER.search(text) or not (tender := _row_amount(bounds, placed)):
            continue
        changes = [change for other, other_bounds in top_down
                   if other_bounds[1] > bounds[1] and _CHANGE.search(other)
                   and (change := _row_amount(other_bounds, placed, zero=True)) is not None]
        if changes and 0 <= changes[0] < tender:
            return round(tender - changes[0], 2)
    return None


def _rounded_as_paid(total: float, placed: list[tuple[str, Box]], summary_top: float) -> float:
    """Where a rounding adjustment is printed, the bill is rounded to 5 cents (cash rounding, as in Malaysia or
    Australia). A total that is not, a few cents from a tender less change that is, has a misread digit: 008's
    "Total (RM) : 112.46" beside "CASH : 112.45" and "Change (RM) : 0.00" (its subtotal, tax and rounding add up
    to 112.45 as well)."""
    if _cents(total) % 5 == 0 or not any(_is_adjustment(text) for text, _ in placed):
        return total
    paid = _tender_less_change(placed, summary_top)
    return paid if paid is not None and _cents(paid) % 5 == 0 and abs(paid - total) < 0.10 else total


def _cents(amount: float) -> int:
    return round(amount * 100)


def _sum_of_the_lines_above(placed: list[tuple[str, Box]]) -> float | None:
    """A receipt with no total label: the first amount that at least two amounts above it in its column add up
    to (047 prints "RM 149.00", "RM 21.00", "CASH", "RM 170.00"). A column is the lines whose right edges lie
    within COLUMN_EDGE of each other, as a till prints its amounts right-aligned; rows are not used, as a
    photo's tilt runs close rows together. An amount that adds up nothing is no total."""
    amounts = sorted(((bounds[1], bounds[2], found[-1]) for text, bounds in placed
                      if (found := _amounts_beside_label(text))), key=lambda line: line[0])
    for index, (_, right, amount) in enumerate(amounts):
        column = [_cents(above) for _, other_right, above in amounts[:index] if abs(other_right - right) <= COLUMN_EDGE]
        if len(column) >= 2 and sum(column) == _cents(amount):
            return amount
    return None


def _amounts_beside_label(text: str) -> list[float]:
    """The amounts in a line of a total's row; a line that is nothing but "10 00" is 10.00 there, as OCR often
    reads a small decimal point as a space (elsewhere such a pair may be a quantity and a code)."""
    if spaced := _SPACED_AMOUNT.match(text):
        return [float(f"{spaced[1]}.{spaced[2]}")]
    return amounts_in(text)


def _after_rounding(total: float, total_top: float, placed: list[tuple[str, Box]]) -> float:
    """The amount paid where a rounding adjustment follows the total: "TOTAL INCL. GST 49.39", "ROUNDING ADJ
    0.01", "TOTAL 49.40". The total plus or minus the adjustment (OCR often drops the minus) is taken when it
    is printed below the adjustment's row, labelled or not; otherwise the total stands."""
    for text, bounds in placed:
        if not _is_adjustment(text) or bounds[1] <= total_top:
            continue
        adjustments = [abs(_number(cents)) for _, _, other in _row(bounds, placed)
                       for cents in _ADJUSTMENT.findall(other)]
        row_bottom = (bounds[1] + bounds[3]) / 2 + (bounds[3] - bounds[1]) * ROW_TOLERANCE
        below = {amount for other, (_, top, _, bottom) in placed if (top + bottom) / 2 > row_bottom
                 for amount in amounts_in(other)}
        for adjustment in filter(None, adjustments):
            for paid in (round(total - adjustment, 2), round(total + adjustment, 2)):
                if paid in below:
                    return paid
    return total


def _is_adjustment(text: str) -> bool:
    """"ROUNDING ADJ" labels the cents a total is rounded by; "ROUNDED TOTAL" labels the total itself."""
    return bool(_ROUNDING.search(text)) and not _TOTAL_WORD.search(text)


def _row(bounds: Box, placed: list[tuple[str, Box]]) -> list[tuple[float, float, str]]:
    """The lines in the row of ``bounds`` from its left edge rightwards, as (distance of centres, left, text):
    a centre within :data:`ROW_TOLERANCE` line heights of this one's is on its row."""
    left, top, _, bottom = bounds
    middle, half = (top + bottom) / 2, max(bottom - top, 1e-3) * ROW_TOLERANCE
    return [(abs((other_top + other_bottom) / 2 - middle), other_left, other)
            for other, (other_left, other_top, _, other_bottom) in placed
            if other_left >= left and abs((other_top + other_bottom) / 2 - middle) <= half]


def line_bounds(box: list[list[float]]) -> Box:
    xs, ys = [point[0] for point in box], [point[1] for point in box]
    return min(xs), min(ys), max(xs), max(ys)


def amounts_in(text: str) -> list[float]:
    """The amounts printed in a line, in order: "9.00", "1,234.50", "12,50" (a comma for the point), "$5.50"."""
    return [_number(amount) for amount in _AMOUNT.findall(text)]


def _number(text: str) -> float:
    if re.search(r",\d{2}$", text) and "." not in text:
        text = text.replace(",", ".")
    return float(text.replace(",", ""))
