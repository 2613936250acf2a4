"""Exact answers about many records at once: how many, how much, the cheapest, the latest, per shop or month.

"How much did I spend at AEON in 2018?" has one right number, and a model that adds up amounts it
was shown gets it wrong, or leaves out the receipts it was not shown. So the figure is computed here
from the table's columns, over every row the filter selects, and comes back with the ids of the rows it
came from and, in words, what it could not count: rows without a readable total or date, and amounts
in another currency, which are never added together (each currency gets its own figure instead; a "$" that a
Malaysian receipt prints for ringgit is ringgit, and the answer says how many were read so).

    aggregate(table, "sum", "total", [Condition("year", "=", 2018)], shop="aeon")
    aggregate(table, "count", group_by="shop")
    aggregate(table, "latest", shop="shell")  # value: the day, ids: that day's receipts

Filters are the typed conditions of store/filters.py (checked and quoted there), so a model's or a
remote caller's values never become SQL text. A shop is matched as text search matches names
(tools/document_fields.py): "Mr Diy" finds "MR. D.I.Y. (M) SDN BHD", "aeon" finds "AEON CO. (M) BHD", and
the words may come in another order ("stationery lian hing").
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from loupe.base.errors import LoupeError
from loupe.store.filters import Condition, where_clause
from loupe.store.image_table import ImageTable
from loupe.tools.document_fields import (
    KIND_OF_SHOP,
    MIN_MISREAD_LETTERS,
    abbreviated_name_pattern,
    dollar_for_ringgit,
    fold,
    misread_name_pattern,
    name_pattern,
    printed_currency,
)
from loupe.tools.text_search import CHAT_WORDS, common_words, spelled_as_stored

MEASURES = ("count", "sum", "min", "max", "latest", "earliest")
# what sum, min and max add up or compare; "item" is the amount of each item line a receipt prints
# (tools/receipt_items.py), so the figure is over item lines, and count counts them
AMOUNT_COLUMNS = ("total", "price", "file_size", "item")
DATE_COLUMNS = ("date", "taken_at", "indexed_at")  # what latest and earliest compare (ISO text sorts as time)
GROUPS = ("shop", "month", "year")
SHOP_LETTERS = 6  # what is left of a typed shop once the words no receipt prints are out: a name, not "home"
KEPT_SHARE = 2 / 3  # ... and most of what was typed; both set by hand from "home depot", not cross-validated
BRANCH_LETTERS = 4  # a branch or mall typed beside a shop's name ("maluri", "tebrau"), not "the" or "co"
# Kinds of place and of meal that people type after a shop's name ("popular bkstore", "uni hakka lunch")
PLACE_WORDS = frozenset("""
shop shops store stores bkstore bookstore bookshop kedai restaurant restoran cafe outlet branch mall supermarket
station place lunch dinner breakfast brunch supper meal
""".split())
HEADING_LINES = 8  # a receipt's heading: its shop, company and address lines, before the items
# "aeon store", "bookstore", "coffeeshop": the name is the rest
_LEGAL_FORMS = {"co", "company", "sdn", "bhd", "berhad", "inc", "ltd", "llc", "plc", "corp", "pte", "gmbh", "sb"}
MONEY = ("total", "price", "item")  # summed to the cent; a price is the metadata file's own, in one currency
PRINTED_MONEY = ("total", "item")  # in the currency the receipt prints


class AggregateError(LoupeError):
    """An aggregate asked of an unknown measure, column or grouping."""


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One computed figure and where it came from.

    ``value`` is the count, the sum, the amount, or the ISO date of ``latest`` / ``earliest``; it is None
    when no row had the value, or when the rows' amounts are in more than one currency: then
    ``per_currency`` holds one figure per currency and ``left_out`` says why they were not combined.
    ``ids`` are the rows the value came from (every counted or summed row; the rows holding the minimum,
    maximum, latest or earliest value); ``missing`` are the selected rows that lacked the column. Over item
    lines, ``items`` names the items the minimum or maximum came from.
    """

    value: float | int | str | None
    ids: list[str]
    items: list[str] = field(default_factory=list)
    currency: str | None = None  # "MYR", "$", ... as the receipts print it (totals only)
    per_currency: dict[str, float | str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Group(Figure):
    key: str  # the shop as most of its receipts print it, "2018-03", or "2018"


@dataclass(frozen=True, kw_only=True)
class Aggregate(Figure):
    """The figure over every selected row and, with ``group_by``, one :class:`Group` per shop, month or year."""

    measure: str
    column: str | None
    selected: int  # rows the filter and the shop selected
    groups: list[Group] = field(default_factory=list)


def aggregate(table: ImageTable, measure: str, column: str | None = None,
              conditions: list[Condition] | list[dict] | tuple = (), shop: str | None = None,
              group_by: str | None = None) -> Aggregate:
    """``measure`` ("count", "sum", "min", "max", "latest", "earliest") of ``column`` over the rows that
    ``conditions`` (typed, ANDed) and ``shop`` (a name as a person types it) select, optionally per group.

    ``column`` defaults to ``total`` for sum, min and max and to ``date`` for latest and earliest; count
    counts rows. Groups are ordered by their value, largest first, for shops, and by time for months and
    years. An unknown measure, column or grouping, or a bad condition, is a one-line LoupeError.
    """
    column = _column(measure, column)
    if group_by is not None and group_by not in GROUPS:
        raise AggregateError(f"cannot group by {str(group_by)[:40]!r}: use one of {', '.join(GROUPS)}")
    rows, read_as = _selected(table, where_clause(list(conditions)), shop, column)
    whole = _figure(measure, column, rows)
    groups = _groups(measure, column, rows, group_by) if group_by else []
    ungrouped = len({row["id"] for row in rows if not _group_key(row, group_by)}) if group_by else 0
    left_out = whole.left_out + ([f"in no group: {_many(ungrouped, 'record')} with no {group_by}"] if ungrouped else [])
    if read_as:
        left_out.append(read_as)
    return Aggregate(measure=measure, column=column, selected=len({row["id"] for row in rows}), groups=groups,
                     **{**vars(whole), "left_out": left_out})


def _column(measure: str, column: str | None) -> str | None:
    if measure not in MEASURES:
        raise AggregateError(f"unknown measure {str(measure)[:40]!r}: use one of {', '.join(MEASURES)}")
    if measure == "count":
        if column not in (None, "item"):
            raise AggregateError(f"count counts records, or item lines with column 'item', not {str(column)[:40]!r}")
        return column
    allowed = DATE_COLUMNS if measure in ("latest", "earliest") else AMOUNT_COLUMNS
    column = column or allowed[0]
    if column not in allowed:
        raise AggregateError(f"{measure} works on {', '.join(allowed)}, not on {str(column)[:40]!r}")
    return column


def _selected(table: ImageTable, where: str, shop: str | None, column: str | None,
              ) -> tuple[list[dict[str, Any]], str]:
    """The rows the filter selects, with the columns the figure and the groups need, and, where words typed
    with the shop were left out of its name to find it, which and why (else "")."""
    stored = "items" if column == "item" else column
    columns = ["id", "shop", "date", *([stored] if stored and stored != "date" else []),
               *(["ocr_text"] if column in PRINTED_MONEY else [])]
    rows = table.scan(columns, where or None).to_pylist()
    read_as = ""
    if shop is not None:
        words = fold(shop).split()
        if not words:
            raise AggregateError(f"the shop {shop[:40]!r} has no letters or digits to match")
        # where no shop has the words as typed: spelled as the collection prints them ("unihaka" is UNIHAKKA),
        # else a shop and its branch ("aeon maluri"), else without the words no receipt prints, else without
        # ordinary words around a shop's name, else a brand printed at the head of a receipt; each tried only
        # when the one before found nothing
        found = _at_shop(rows, words)
        if not found:
            vocabulary = table.folded_words()
            respelled = spelled_as_stored(" ".join(words), vocabulary).split()
            found = _at_shop(rows, respelled) or _at_a_branch(table, rows, words)
            if not found:
                found, unprinted = _without_unprinted_words(rows, words, respelled, vocabulary)
                read_as = f"the shop read without {' '.join(unprinted)!r}, which no receipt prints" if found else ""
            if not found:
                texts = _printed_texts(table, where)  # the lines both of the last two readings look at
                found, ordinary = _without_ordinary_words(texts, rows, words)
                read_as = f"the shop read without {' '.join(ordinary)!r}, words of no shop's name" if found else ""
                found = found or _heading_with(texts, rows, words)
        rows = found
    return (rows if column != "item" else [line for row in rows for line in _item_lines(row)]), read_as


def _without_unprinted_words(rows: list[dict[str, Any]], words: list[str], respelled: list[str],
                             vocabulary: set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Where no shop has the typed words, the shop read without those no receipt prints anywhere, even spelled
    as the collection prints them ("hit lightroom gallery"): words of the question that a planner or a model left
    in the name. Only where what is left is a name (SHOP_LETTERS letters or more) and most of what was typed
    (KEPT_SHARE of its letters), so a shop the collection lacks stays a shop with no receipts ("home depot" is
    not HOME MASTER, "stationery lian king" not LAN HING STATIONERY)."""
    kept = [(word, spelled) for word, spelled in zip(words, respelled) if spelled in vocabulary]  # typed, as printed
    unprinted = [word for word, spelled in zip(words, respelled) if spelled not in vocabulary]
    if not unprinted or len("".join(word for word, _ in kept)) < max(SHOP_LETTERS, KEPT_SHARE * len("".join(words))):
        return [], []
    found = _at_shop(rows, [spelled for _, spelled in kept])
    return (found, unprinted) if found else ([], [])


def _without_ordinary_words(texts: dict[str, str], rows: list[dict[str, Any]], words: list[str]
                            ) -> tuple[list[dict[str, Any]], list[str]]:
    """Where no shop has the typed words, the longest run of them that is a shop's name once the words around it
    are left out, where each of those is ordinary: a kind of place or meal, a chat word or a single letter
    ("popular bkstore", "d uni hakka lunch", "shell station"), or a common English word, in which case the run
    must be a name of SHOP_LETTERS letters or more ("word hardware their name" is HARDWARE; "home depot" is no
    HOME MASTER: "home" is too short to stand for a shop the collection lacks). The run may also be a brand at
    the head of a receipt (:func:`_heading_with`: "two trips to ikea in cheras")."""
    runs = [(start, end) for start in range(len(words)) for end in range(start + 1, len(words) + 1)
            if end - start < len(words)]
    for start, end in sorted(runs, key=lambda run: (run[0] - run[1], run[0])):  # the longest, then the leftmost
        kept, dropped = words[start:end], words[:start] + words[end:]
        letters = len("".join(kept))
        if (all(map(_names_no_shop, dropped)) and letters >= BRANCH_LETTERS) or \
                (all(_names_no_shop(word) or word in common_words() for word in dropped) and letters >= SHOP_LETTERS):
            if found := _at_shop(rows, kept) or _heading_with(texts, rows, kept):
                return found, dropped
    return [], []


def _names_no_shop(word: str) -> bool:
    return len(word) == 1 or word in PLACE_WORDS or word in CHAT_WORDS


def _heading_with(texts: dict[str, str], rows: list[dict[str, Any]], words: list[str]) -> list[dict[str, Any]]:
    """Where no shop's name has the typed name, the rows whose receipt heads a line with it among its first
    HEADING_LINES lines: the brand a company trades as ("ikea" is IKANO HANDEL SDN BHD, which prints "IKEA
    Cheras", or as OCR glued it, "IKEACheras"). A heading line, not any line, so an item is no shop; only rows
    whose shop was read, so an index not yet given its shop column stays without one until it is filled."""
    letters = "".join(words)
    if len(letters) < BRANCH_LETTERS:
        return []
    heads = lambda text: any(fold(line).replace(" ", "").startswith(letters)  # noqa: E731
                             for line in text.splitlines()[:HEADING_LINES])
    return [row for row in rows if row["shop"] and heads(texts.get(row["id"], ""))]


def _printed_texts(table: ImageTable, where: str) -> dict[str, str]:
    """Each selected row's OCR text by id, read once for the name readings that need the lines."""
    return {row["id"]: row["ocr_text"] or "" for row in table.scan(["id", "ocr_text"], where or None).to_pylist()}


def _at_shop(rows: list[dict[str, Any]], words: list[str]) -> list[dict[str, Any]]:
    """The rows whose shop has the typed words, as :func:`_name_readings` reads them."""
    readings = _name_readings(words)
    return [row for row in rows if row["shop"] and _found(fold(row["shop"]), readings)]


def _at_a_branch(table: ImageTable, rows: list[dict[str, Any]], words: list[str]) -> list[dict[str, Any]]:
    """Where no shop name has every typed word, a shop typed with its branch or mall ("aeon maluri": AEON CO.
    (M) BHD, whose receipts print "AEON TAMAN MALURI SC"): the rows whose shop has the longest run of the words
    that a shop name has, with each other word printed on the receipt (its folded text, which the table keeps).
    Words of fewer than BRANCH_LETTERS letters are no branch."""
    folded = dict(zip(*table.folded_texts()))
    for length in range(len(words) - 1, 0, -1):
        for start in range(len(words) - length + 1):
            rest = words[:start] + words[start + length:]
            if any(len(word) < BRANCH_LETTERS or word in common_words() or _names_no_shop(word) for word in rest):
                continue  # "teo heng stationery books file": "file" is printed on one of its receipts, no branch
            readings, printed = _name_readings(words[start:start + length]), [name_pattern(word) for word in rest]
            found = [row for row in rows if row["shop"] and _found(fold(row["shop"]), readings)
                     and all(pattern.search(folded.get(row["id"], "")) for pattern in printed)]
            if found:
                return found
    return []


def _item_lines(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A receipt's row as one row per item line it prints, each with the item's amount as ``item``; a receipt
    whose item lines were not read stays one row with no ``item``, so it is told as missing."""
    items = json.loads(row.pop("items") or "[]")
    return [{**row, "item": item["amount"], "item_name": item["name"]} for item in items] or [{**row, "item": None}]


def _found(printed: str, readings: list[list[re.Pattern]]) -> bool:
    return any(all(pattern.search(printed) for pattern in reading) for reading in readings)


def _name_readings(words: list[str]) -> list[list[re.Pattern]]:
    """The ways a typed name may be found in a stored shop name, each a list of patterns that must all match:
    its letters with spaces anywhere ("mrdiy" in "mr d i y"), each typed word in any order ("stationery lian
    hing" is LIAN HING STATIONERY SDN BHD), and, where a run of typed words has MIN_MISREAD_LETTERS or more,
    that run with one character misread or lost and the other words as typed ("stationery lian hing" is also
    LAN HING STATIONERY, as OCR read it), or with vowels left out ("99 spdmart"). A word that ends in the kind
    of shop is also read without it ("popular bookstore" is POPULAR BOOK CO.), and the company's legal form may
    be left out ("popular book co" is also POPULAR BOOK (M) SDN BHD, where OCR did not read the "CO.")."""
    spellings = [words]
    without_kind = [shorter for word in words if (shorter := KIND_OF_SHOP.sub("", word))]
    without_legal_form = [word for word in words if word not in _LEGAL_FORMS]
    for typed in (without_kind, without_legal_form):
        if typed and typed not in spellings:
            spellings.append(typed)
    readings = []
    for typed in spellings:
        for start in range(len(typed)):
            for end in range(start + 1, len(typed) + 1):
                run, rest = "".join(typed[start:end]), [name_pattern(word) for word in typed[:start] + typed[end:]]
                readings.append([name_pattern(run), *rest])
                if len(run) >= MIN_MISREAD_LETTERS:
                    readings += [[misread_name_pattern(run), *rest], [abbreviated_name_pattern(run), *rest]]
    return readings


def _figure(measure: str, column: str | None, rows: list[dict[str, Any]]) -> Figure:
    if measure == "count" and column is None:
        return Figure(value=len(rows), ids=[row["id"] for row in rows])
    having = [row for row in rows if row[column] is not None and row[column] != ""]
    missing = list(dict.fromkeys(row["id"] for row in rows if row[column] is None or row[column] == ""))
    selected = len({row["id"] for row in rows})
    shown = "item lines" if column == "item" else column
    left_out = [f"{len(missing)} of {_many(selected, 'record')} show no readable {shown}"] if missing else []
    if measure == "count":
        return Figure(value=len(having), ids=list(dict.fromkeys(row["id"] for row in having)), missing=missing,
                      left_out=left_out)
    if column not in PRINTED_MONEY:
        return Figure(**_compute(measure, column, having), missing=missing, left_out=left_out)
    by_currency: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for row in having:
        by_currency[printed_currency(row["ocr_text"] or "")].append(row)
    dollars = len({row["id"] for row in by_currency.get("MYR", []) if dollar_for_ringgit(row["ocr_text"] or "")})
    if dollars:
        left_out.append(f"{_many(dollars, 'receipt')} printing \"$\" with a Malaysian address or RM counted as MYR")
    signed = sorted(currency for currency in by_currency if currency)
    if len(signed) <= 1:  # a receipt that prints no currency is taken to be in the one the others print
        currency = signed[0] if signed else None
        unsigned = len({row["id"] for row in by_currency.get(None, [])}) if currency else 0
        if unsigned:
            left_out.append(f"{_many(unsigned, 'receipt')} with no printed currency counted as {currency}")
        return Figure(**_compute(measure, column, having), currency=currency, missing=missing, left_out=left_out)
    computed = {currency: _compute(measure, column, by_currency[currency]) for currency in signed}
    unsigned = by_currency.get(None, [])
    left_out.append(f"amounts in {len(signed)} currencies ({', '.join(signed)}) are not added together: one "
                    "figure per currency" + (f"; {_many(len(unsigned), 'receipt')} with no printed currency left out"
                                             if unsigned else ""))
    return Figure(value=None, ids=[i for currency in signed for i in computed[currency]["ids"]],
                  per_currency={currency: computed[currency]["value"] for currency in signed},
                  missing=missing + [row["id"] for row in unsigned], left_out=left_out)


def _compute(measure: str, column: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The value and the ids it came from, over rows that all have ``column``."""
    if not rows:
        return {"value": None, "ids": []}
    if measure == "sum":
        total = math.fsum(row[column] for row in rows)
        return {"value": round(total, 2) if column in MONEY else int(total),
                "ids": list(dict.fromkeys(row["id"] for row in rows))}
    pick = max if measure in ("max", "latest") else min
    value = pick(row[column] for row in rows)
    held = [row for row in rows if row[column] == value]
    return {"value": value, "ids": list(dict.fromkeys(row["id"] for row in held)),
            "items": [row["item_name"] for row in held if "item_name" in row]}


def _groups(measure: str, column: str | None, rows: list[dict[str, Any]], group_by: str) -> list[Group]:
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    printed: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        key = _group_key(row, group_by)
        if key:
            members[key].append(row)
            printed[key][row["shop"] if group_by == "shop" else key] += 1
    groups = []
    for key, group_rows in members.items():
        figure = _figure(measure, column, group_rows)
        groups.append(Group(key=printed[key].most_common(1)[0][0], **vars(figure)))
    if group_by == "shop":  # the most first; a shop whose figure could not be computed last
        return sorted(groups, key=lambda group: (group.value is not None, group.value or 0), reverse=True)
    return sorted(groups, key=lambda group: group.key)


def _group_key(row: dict[str, Any], group_by: str) -> str:
    """The folded shop (so "MR. D.I.Y." and "MR D.I.Y" are one shop), or the date's month or year."""
    if group_by == "shop":
        return "".join(fold(row["shop"] or "").split())
    return (row["date"] or "")[:7 if group_by == "month" else 4]



def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
