"""User metadata (title, description, price, any JSON) joined to images.

A ``--metadata`` file is CSV (a header row) or JSONL (one object per line).
Each entry names its image by ``sha256``, by ``path`` (relative to an indexed
folder or absolute), or by ``file``/``file_name``/``filename`` (the base
name). ``title``, ``description`` and ``price`` become columns that filters can
use; every field is kept in ``metadata_json``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loupe.errors import LoupeError

KEY_FIELDS = ("sha256", "path", "file", "file_name", "filename")


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
    """Read a CSV or JSONL metadata file; bad rows are reported, not fatal."""
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
        entries = _csv_entries(text, path)
    else:
        raise LoupeError(f"metadata file {path}: use a .csv or .jsonl file")

    for line_number, entry in entries:
        key = next((str(entry[k]).strip() for k in KEY_FIELDS if entry.get(k)), "")
        if not key:
            index.problems.append(
                f"{path}:{line_number}: no image named (give one of {', '.join(KEY_FIELDS)})"
            )
            continue
        index.by_key[key] = _to_metadata(entry, f"{path}:{line_number}", index.problems)
    if not index.by_key:
        raise LoupeError(f"metadata file {path} has no usable entries: " + "; ".join(index.problems[:3]))
    return index


def _jsonl_entries(text: str, path: Path, problems: list[str]) -> list[tuple[int, dict]]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{path}:{number}: expected a JSON object")
            continue
        entries.append((number, entry))
    return entries


def _csv_entries(text: str, path: Path) -> list[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or not any(k in reader.fieldnames for k in KEY_FIELDS):
        raise LoupeError(
            f"metadata file {path}: the header row must name the image column ({', '.join(KEY_FIELDS)})"
        )
    return [(number, {k: v for k, v in row.items() if k and v not in (None, "")})
            for number, row in enumerate(reader, start=2)]


_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def _to_metadata(entry: dict, where: str, problems: list[str]) -> Metadata:
    fields = {k: v for k, v in entry.items() if k not in KEY_FIELDS}
    price = None
    if fields.get("price") not in (None, ""):
        match = _NUMBER.search(str(fields["price"]).replace(" ", ""))
        if match:
            price = float(match.group().replace(",", "."))
        else:
            problems.append(f"{where}: price {fields['price']!r} is not a number; stored as text only")
    taken_at = fields.get("taken_at") or fields.get("date")
    return Metadata(
        title=str(fields.get("title", "")),
        description=str(fields.get("description", "")),
        price=price,
        taken_at=str(taken_at) if taken_at else None,
        fields=fields,
    )
