"""Typed filters: how words from a conversation narrow a search without ever becoming SQL text.

The agent, the UI and the planner describe a filter as conditions (a known
column, an operator from a fixed list, a literal value); only this module turns
them into a LanceDB ``where`` clause, quoting every value itself. So a request,
an OCR line or a model's tool call can ask for ``year = 2019`` but cannot
smuggle in ``1=1) OR (path LIKE '/etc/%``. The CLI's ``--where`` stays raw SQL:
the person at the terminal writes it for their own index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from loupe.base.errors import LoupeError


class Op(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    BELOW = "<"
    AT_MOST = "<="
    ABOVE = ">"
    AT_LEAST = ">="
    ONE_OF = "in"
    CONTAINS = "contains"  # case-insensitive substring, for text columns
    NOT_CONTAINS = "not contains"
    IS_SET = "is set"
    NOT_SET = "is not set"


# The columns a conversation may filter on, with the type of their values.
FILTER_COLUMNS: dict[str, type] = {
    "year": int, "price": float, "width": int, "height": int, "file_size": int,
    "taken_at": str, "camera": str, "file_name": str, "title": str, "description": str, "format": str,
    "date": str, "total": float,  # the day as YYYY-MM-DD (EXIF, metadata or printed) and a printed total
    "id": str,  # a record's id: "of those, only the ones from the Tesco branch" searches within shown records
}
MAX_VALUE_CHARS = 200  # a filter literal longer than this is no filter a person typed
_TEXT_ONLY = (Op.CONTAINS, Op.NOT_CONTAINS)
_NO_VALUE = (Op.IS_SET, Op.NOT_SET)


class InvalidConditionError(LoupeError):
    """A filter condition with an unknown column, operator or a value of the wrong type."""


@dataclass(frozen=True)
class Condition:
    """One typed condition, e.g. ``Condition("year", "=", 2019)``."""

    column: str
    op: str
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "op": self.op, "value": self.value}

    @classmethod
    def from_dict(cls, raw: Any) -> Condition:
        if not isinstance(raw, dict) or not {"column", "op"} <= raw.keys():
            raise InvalidConditionError(f"a filter condition needs column and op, got {str(raw)[:80]!r}")
        return cls(str(raw["column"]), str(raw["op"]), raw.get("value"))

    def sql(self) -> str:
        """This condition as a LanceDB filter; every value is checked and quoted here."""
        kind = FILTER_COLUMNS.get(self.column)
        if kind is None:
            raise InvalidConditionError(f"cannot filter on {self.column[:40]!r}: use one of "
                                        + ", ".join(FILTER_COLUMNS))
        try:
            op = Op(self.op)
        except ValueError:
            raise InvalidConditionError(f"unknown filter operator {self.op[:20]!r}: use one of "
                                        + ", ".join(o.value for o in Op)) from None
        column = self.column
        if op in _NO_VALUE:
            return f"{column} IS {'NOT ' if op is Op.IS_SET else ''}NULL"
        if op is Op.ONE_OF:
            values = self.value if isinstance(self.value, list | tuple) else [self.value]
            if not values or len(values) > 50:
                raise InvalidConditionError(f"{column} in: give 1 to 50 values")
            return f"{column} IN ({', '.join(_literal(v, kind, column) for v in values)})"
        if op in _TEXT_ONLY:
            if kind is not str:
                raise InvalidConditionError(f"{op.value!r} works on text columns, not on {column}")
            needle = _literal(str(self.value).lower(), str, column)
            found = f"strpos(lower({column}), {needle}) > 0"
            return f"({column} IS NULL OR NOT {found})" if op is Op.NOT_CONTAINS else found
        return f"{column} {op.value} {_literal(self.value, kind, column)}"


def where_clause(conditions: list[Condition] | list[dict]) -> str:
    """All conditions ANDed, as one filter ('' for none)."""
    parsed = [c if isinstance(c, Condition) else Condition.from_dict(c) for c in conditions]
    parts = [c.sql() for c in parsed]
    return " AND ".join(f"({p})" for p in parts) if len(parts) > 1 else (parts[0] if parts else "")


def _literal(value: Any, kind: type, column: str) -> str:
    if kind is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise InvalidConditionError(f"{column} takes text, got {type(value).__name__}")
        text = str(value)
        if len(text) > MAX_VALUE_CHARS or any(ord(ch) < 32 for ch in text):
            raise InvalidConditionError(f"{column}: the value is too long or holds control characters")
        return "'" + text.replace("'", "''") + "'"
    try:
        number = kind(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or (isinstance(number, float) and not math.isfinite(number)):
        raise InvalidConditionError(f"{column} takes a number, got {str(value)[:40]!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise InvalidConditionError(f"{column} takes a whole number, got {value}")
    return repr(number)
