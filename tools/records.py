"""The typed results every tool returns: matched records and why they matched.

The agent writes its answer from these, the UI draws its gallery from them and
the evals score them, so they carry everything a reader needs: score, match
label, the reason in words, the text that matched, and the stored metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from store.image_table import ImageTable

IDENTICAL = "identical"
NEAR_DUPLICATE = "near-duplicate"
SIMILAR = "similar"
TEXT_MATCH = "text match"
MATCH_ORDER = {IDENTICAL: 0, NEAR_DUPLICATE: 1, SIMILAR: 2, TEXT_MATCH: 3}

_METADATA_COLUMNS = ("title", "description", "price", "taken_at", "year", "camera", "width", "height",
                     "format", "file_size", "sha256", "indexed_at")


@dataclass
class MatchedRecord:
    id: str
    path: str
    file_name: str
    score: float  # 0..1, higher is better; comparable within one tool's results
    match: str  # identical / near-duplicate / similar / text match
    why: str  # the reason, in words
    matched_text: str = ""  # the OCR line, caption or metadata that matched
    caption: str = ""
    caption_kind: str = ""
    ocr_text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    thumbnail_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    tool: str
    query: dict[str, Any]
    records: list[MatchedRecord]
    seconds: float
    note: str = ""  # e.g. why nothing was returned

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "query": self.query, "records": [r.to_dict() for r in self.records],
                "seconds": round(self.seconds, 4), "note": self.note}


def record_from_row(row: dict[str, Any], score: float, match: str, why: str,
                    matched_text: str = "") -> MatchedRecord:
    metadata = {k: row.get(k) for k in _METADATA_COLUMNS if row.get(k) not in (None, "")}
    if row.get("metadata_json"):
        metadata["fields"] = json.loads(row["metadata_json"])
    return MatchedRecord(
        id=row["id"], path=row["path"], file_name=row["file_name"], score=round(float(score), 4),
        match=match, why=why, matched_text=matched_text, caption=row.get("caption") or "",
        caption_kind=row.get("caption_kind") or "", ocr_text=row.get("ocr_text") or "", metadata=metadata,
    )


def attach_thumbnails(table: ImageTable, records: list[MatchedRecord]) -> None:
    """Write each record's stored thumbnail to ``<index>/thumbnails/<id>.jpg`` once."""
    folder = table.index_dir / "thumbnails"
    missing = [r for r in records if not (folder / f"{r.id}.jpg").exists()]
    if missing:
        folder.mkdir(exist_ok=True)
        for row in table.get([r.id for r in missing], columns=["id", "thumbnail"]):
            if row["thumbnail"]:
                Path(folder / f"{row['id']}.jpg").write_bytes(row["thumbnail"])
    for record in records:
        path = folder / f"{record.id}.jpg"
        record.thumbnail_path = str(path) if path.exists() else ""
