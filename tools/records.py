"""The typed results every tool returns: matched records and why they matched.

The agent writes its answer from these, the UI draws its gallery from them and
the evals score them, so they carry everything a reader needs: score, match
label, the reason in words, the text that matched, and the stored metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from loupe.store.image_table import ImageTable
from loupe.store.schema import RECORD_COLUMNS
from loupe.tools.receipt_items import described


class MatchLabel(StrEnum):
    """Why a record is in the results, strongest first (see README, "How a match is labelled")."""

    IDENTICAL = "identical"
    NEAR_DUPLICATE = "near-duplicate"
    POSSIBLE = "possible match"  # nothing passed the bars above, but this one is clearly ahead: not confident
    SIMILAR = "similar"
    TEXT_MATCH = "text match"


class ToolName(StrEnum):
    """The agent's tools, as its model calls them and as results name them."""

    IMAGE_SEARCH = "image_search"
    TEXT_SEARCH = "text_search"
    OCR = "ocr"
    CAPTION = "caption"
    AGGREGATE = "aggregate"  # exact figures over many records (tools/aggregate.py)


MATCH_ORDER = {label: rank for rank, label in enumerate(MatchLabel)}  # within one image search

# What one record may carry into an answer, the model's context and a saved conversation: a 50 KB
# metadata value or a receipt's full OCR text is cut here, once, for every reader.
MAX_TEXT_CHARS = 2_000
MAX_FIELD_CHARS = 500

STATED_COLUMNS = ("title", "description", "price", "taken_at", "camera")  # a record's facts, first the given ones
# then what its print says (tools/document_fields.py, tools/receipt_items.py, tools/printed_title.py)
PRINTED_COLUMNS = ("printed_title", "shop", "total", "date", "items")
_METADATA_COLUMNS = ("title", "description", "price", "taken_at", "year", "camera", "width", "height",
                     "format", "file_size", "sha256", "indexed_at", "date", "total", "shop", "items",
                     "printed_title")


@dataclass
class MatchedRecord:
    id: str
    path: str
    file_name: str
    score: float  # 0..1, higher is better; comparable within one tool's results
    match: MatchLabel
    why: str  # the reason, in words
    matched_text: str = ""  # the OCR line, caption or metadata that matched
    caption: str = ""
    caption_kind: str = ""
    ocr_text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    thumbnail_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (the label as its text), as the agent's saved state and the CLI's --json hold them."""
        return {**asdict(self), "match": self.match.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatchedRecord:
        """The record from its plain form (a saved conversation holds these); a field another Loupe version
        wrote and this one does not know is left out."""
        known = {f.name for f in fields(cls)}
        kept = {key: value for key, value in data.items() if key in known}
        return cls(**{**kept, "match": MatchLabel(data["match"])})

    def facts(self) -> list[tuple[str, Any]]:
        """What the record states, in the one order every renderer shows it (the answer, the model's result
        lines, the terminal table): its metadata, then what its print says (shop, total, date)."""
        stated, printed = self._stated_and_printed()
        return stated + printed

    def facts_line(self, limit: int = 4) -> str:
        """The first facts in one short line, for a table cell or a card: "Blue mug · price 3.5 · total 12.00"."""
        return " · ".join(str(value) if key in ("title", "description", "taken_at") else _fact(key, value)
                          for key, value in self.facts()[:limit])

    def _stated_and_printed(self) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        """The given facts (metadata columns, then the metadata file's other fields) and the printed ones."""
        meta = self.metadata
        stated = [(key, meta[key]) for key in STATED_COLUMNS if meta.get(key) not in (None, "")]
        stated += [(key, value) for key, value in (meta.get("fields") or {}).items()
                   if key not in (*STATED_COLUMNS, "date")]
        printed = [(key, meta[key]) for key in PRINTED_COLUMNS if meta.get(key) not in (None, "")
                   and not (key == "date" and meta.get("taken_at"))]
        return stated, printed

    def describe(self, rank: int) -> str:
        """The record as plain text, for answers and terminals: why it matched, what it says, where it is."""
        stated, printed = self._stated_and_printed()
        parts = [f"#{rank} {self.file_name} (id {self.id}) - {self.match}, score {self.score:.2f}",
                 f"   why: {self.why}"]
        if self.matched_text:
            parts.append(f"   matched text: \"{self.matched_text}\"")
        if self.caption:
            parts.append(f"   {self.caption_kind or 'caption'}: {self.caption}")
        if stated:
            parts.append("   metadata: " + "; ".join(f"{key}: {value}" for key, value in stated))
        if printed:
            parts.append("   printed: " + "; ".join(_fact(key, value) for key, value in printed))
        parts.append(f"   file: {self.path}" + (f"  thumbnail: {self.thumbnail_path}" if self.thumbnail_path else ""))
        return "\n".join(parts)


@dataclass
class SearchResult:
    tool: ToolName
    query: dict[str, Any]
    records: list[MatchedRecord]
    seconds: float
    note: str = ""  # e.g. why nothing was returned

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, as the CLI's --json and the MCP server give them."""
        return {**self.artifact(), "records": [r.to_dict() for r in self.records]}

    def artifact(self) -> dict[str, Any]:
        """The result as a tool message of the agent carries it: the records stay MatchedRecords (a saved
        conversation holds them as plain values; agent/conversation.py reads them back typed)."""
        return {"tool": self.tool.value, "query": self.query, "records": list(self.records),
                "seconds": round(self.seconds, 4), "note": self.note}


def _fact(key: str, value: Any) -> str:
    """One fact in words: an amount with its cents ("total 12.00"), anything else as it is."""
    if key == "total" and isinstance(value, int | float):
        return f"total {value:.2f}"
    return f"{key.replace('_', ' ')} {value}"  # "printed title ACE VENTURA"


def record_from_row(row: dict[str, Any], score: float, match: MatchLabel, why: str,
                    matched_text: str = "") -> MatchedRecord:
    row = {**row, "items": described(row.get("items"))}  # stored as JSON, shown in words
    metadata = {k: bounded(row.get(k), MAX_FIELD_CHARS) for k in _METADATA_COLUMNS if row.get(k) not in (None, "")}
    if row.get("metadata_json"):
        metadata["fields"] = {bounded(k, 100): bounded(v, MAX_FIELD_CHARS)
                              for k, v in json.loads(row["metadata_json"]).items()}
    return MatchedRecord(
        id=row["id"], path=row["path"], file_name=row["file_name"], score=round(float(score), 4),
        match=match, why=why, matched_text=bounded(matched_text, MAX_FIELD_CHARS),
        caption=bounded(row.get("caption") or "", MAX_FIELD_CHARS), caption_kind=row.get("caption_kind") or "",
        ocr_text=bounded(row.get("ocr_text") or "", MAX_TEXT_CHARS), metadata=metadata,
    )


def record_by_id(table: ImageTable, record_id: str) -> MatchedRecord:
    """One stored record as a result (a LoupeError naming the id when there is none)."""
    row = table.record(record_id, RECORD_COLUMNS)
    record = record_from_row(row, 1.0, MatchLabel.IDENTICAL, "the record asked for by its id")
    attach_thumbnails(table, [record])
    return record


ORDER_COLUMNS = ("amount", "date")  # what results may be ordered by: see ordered()


def ordered(records: list[MatchedRecord], column: str, descending: bool) -> list[MatchedRecord]:
    """Records ordered by ``amount`` (the price, else the printed total) or ``date``; records without one last."""
    def value(record: MatchedRecord) -> Any:
        meta = record.metadata
        return (meta.get("price") if meta.get("price") is not None else meta.get("total")) if column == "amount" \
            else meta.get("date")
    known = sorted((r for r in records if value(r) is not None), key=value, reverse=descending)
    return known + [r for r in records if value(r) is None]


def bounded(value: Any, limit: int) -> Any:
    """Text cut to ``limit`` characters (marked with an ellipsis); other values as they are."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    if isinstance(value, dict | list):
        return bounded(json.dumps(value, ensure_ascii=False), limit)
    return value


def attach_thumbnails(table: ImageTable, records: list[MatchedRecord]) -> None:
    """Write each record's stored thumbnail to ``<index>/thumbnails/<id>-<content hash>.jpg`` once.

    The content hash in the name means a file that changed gets a new thumbnail, not the stale one.
    """
    folder = table.index_dir / "thumbnails"

    def path_of(record: MatchedRecord) -> Path:
        return folder / f"{record.id}-{str(record.metadata.get('sha256', ''))[:12]}.jpg"

    missing = {r.id: path_of(r) for r in records if not path_of(r).exists()}
    if missing:
        folder.mkdir(exist_ok=True)
        for row in table.get(list(missing), columns=["id", "thumbnail"]):
            if row["thumbnail"]:
                missing[row["id"]].write_bytes(row["thumbnail"])
    for record in records:
        record.thumbnail_path = str(path_of(record)) if path_of(record).exists() else ""
