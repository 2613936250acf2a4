"""A request rewritten in the plain English the planner's rules read (agent/intents.py).

SROIE's receipts come from Malaysian shops, and their owners ask in Manglish ("berapa resit mr diy ada?",
"bila last time I pergi Shell?") or speak into a phone ("how much in twenty nineteen", "from the fifteenth of
march twenty eighteen onwards"). Rather than teach every rule each way of saying a thing, the request is
first rewritten once: Malay question words to their English meaning, years said as words to digits,
"after the end of March 2018" to "after March 2018", "until the end of that month" to the month named before
it, "since we moved in October 2018" to "since October 2018 we moved", a span of days without a year to the
one year the request names (the next for its end where it crosses New Year), and "mister" to "mr". Only words
the rules read are rewritten; names are left as typed, so a shop or a printed word still matches.
"""

from __future__ import annotations

import re

from loupe.tools.document_fields import MONTHS

# Malay (and Manglish) words of a question, longest phrase first, with the English the rules read. Only
# question, time and shopping words: a Malay word that is a shop's name ("kedai" alone is "shop", a
# question word, never a name) is never rewritten.
_MALAY = {
    "berapa banyak kali": "how many times", "berapa kali": "how many times",
    "berapa banyak resit": "how many receipts", "berapa resit": "how many receipts",
    "berapa ringgit": "how much money", "berapa banyak": "how much", "berapa": "how much",
    "kali terakhir": "last time", "kali pertama": "first time", "terakhir": "last", "pertama": "first",
    "kedai mana": "which shop", "tempat mana": "which place", "bulan mana": "which month",
    "tahun mana": "which year", "paling banyak": "the most", "paling mahal": "most expensive",
    "paling murah": "cheapest", "paling besar": "biggest", "paling kecil": "smallest",
    "semua sekali": "altogether", "kesemua": "altogether", "jumlah": "total", "belanja": "spend",
    "bila": "when", "pergi": "went to", "cawangan": "branches", "kira": "count", "ikut": "going by",
    "kedai": "shop", "hujan": "rain", "cuaca": "weather", "dekat": "at", "kat": "at", "dari": "from",
    "aku": "i", "saya": "i", "kami": "we", "ada": "have", "dalam": "in", "yang": "that", "hari": "day",
    "bulan": "month", "tahun": "year", "semua": "all", "sekali": "",
}
_MALAY_WORDS = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _MALAY), key=len, reverse=True)) + r")\b", re.I)

# Years said as words: "twenty nineteen", "two thousand and eighteen", "twenty twenty-one"; not "twenty nine"
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
          "seventeen": 17, "eighteen": 18, "nineteen": 19}
_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_TWENTIES = rf"twenty(?:[\s-]+(?:{'|'.join(_UNITS)}))?"
_SPOKEN_YEAR = re.compile(rf"\b(?:two thousand(?:\s+and)?[\s-]+({'|'.join(_UNITS)})\b|"
                          rf"(?:two thousand(?:\s+and)?|twenty)[\s-]+({'|'.join(_TEENS)}|{_TWENTIES})\b)", re.I)
# "after the end of March 2018" is after March 2018; "before the start of 2018" is before 2018
_EDGE_OF = re.compile(r"\b(after|since|from|before|until|till|to|through)\s+(?:the\s+)?(?:very\s+)?"
                      r"(?:end|close|start|beginning)\s+of\s+", re.I)
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
# "since we moved down to johor in october 2018": since October 2018, the story after it
_SINCE_EVENT = re.compile(rf"\b(since|ever since)\b((?:\s+[\w']+){{1,6}}?)\s+in\s+((?:{_MONTH})\.?\s+(?:19|20)\d\d)\b",
                          re.I)
_YEAR = re.compile(r"(?<![\d.,])((?:19|20)\d\d)(?![\d.,]\d)")
_DAY_OF = rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\b\.?"
_YEARLESS_SPAN = re.compile(rf"\b({_DAY_OF})(\s*(?:to|till|until|through|-)\s*)({_DAY_OF})(?!\.?\s*,?\s*(?:19|20)\d\d)",
                            re.I)
_MISTER = re.compile(r"\bmister\b", re.I)  # "mister d i y" is MR D.I.Y.
# "from 20 march 2018 until the end of that month": the month named before it
_MONTH_YEAR = re.compile(rf"\b(?:{_MONTH})\.?\s+(?:19|20)\d\d\b", re.I)
_THAT_MONTH = re.compile(r"\b(after|since|before|until|till|to|through)\s+((?:that|the same)\s+month)\b", re.I)


def in_plain_words(text: str) -> str:
    """``text`` rewritten in the words the planner's rules read (see the module's docstring)."""
    text = _MALAY_WORDS.sub(lambda m: _MALAY[m[1].lower()], text)
    text = _EDGE_OF.sub(lambda m: m[1] + " ", _SPOKEN_YEAR.sub(_year, text))
    text = _THAT_MONTH.sub(lambda m: m[1] + " " + (_last_month_before(text, m.start()) or m[2]), text)
    text = _SINCE_EVENT.sub(lambda m: f"{m[1]} {m[3]}{m[2]}", text)
    years = set(_YEAR.findall(text))
    if len(years) == 1:  # "CNY 2018 ... from 12 feb to 20 feb": the one year named
        year = years.pop()
        text = _YEARLESS_SPAN.sub(lambda m: _span_in(m, int(year)), text)
    return re.sub(r"[ \t]{2,}", " ", _MISTER.sub("mr", text))


def _span_in(span: re.Match, year: int) -> str:
    """A span of days in the one year a request names; one across New Year ("xmas 2017 ... 25 dec to 1 jan")
    starts in that year and ends in the next."""
    first, first_month, link, last, last_month = span.groups()
    crosses = MONTHS[first_month.lower()] > MONTHS[last_month.lower()]
    return f"{first} {year}{link}{last} {year + 1 if crosses else year}"


def _last_month_before(text: str, end: int) -> str | None:
    """The last "<month> <year>" named before ``end``: the month "that month" points back at."""
    named = list(_MONTH_YEAR.finditer(text, 0, end))
    return named[-1][0] if named else None


def _year(match: re.Match) -> str:
    if match[1]:
        return str(2000 + _UNITS[match[1].lower()])
    words = re.split(r"[\s-]+", match[2].lower())
    return str(2000 + (_TEENS.get(words[0]) or 20) + (_UNITS[words[1]] if len(words) > 1 else 0))
