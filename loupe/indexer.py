"""Indexing folders of images into the table, incrementally and crash-safely.

A run walks the folders, skips files whose size and modification time (then
content hash) match their row, analyses the rest in batches and writes each
batch as one atomic commit. Problems with single files are collected and
reported; they never stop the run nor touch rows already written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loupe.config import Settings
from loupe.errors import ImageRejected
from loupe.metadata import Metadata, MetadataIndex
from store.image_table import ImageTable
from store.schema import RECORD_COLUMNS
from tools.analysis import ImageAnalysis, StageTimer, analyse_images
from tools.image_file import SUPPORTED_SUFFIXES, ImageFile, read_image
from tools.models import Models

ProgressCallback = Callable[[int, int, str], None]  # (files done, files to do, stage)


@dataclass
class IndexReport:
    """What a run did, for the summary line and the collection page."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    metadata_updated: int = 0
    pruned: int = 0
    problems: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def indexed(self) -> int:
        return self.added + self.updated

    def summary(self) -> str:
        parts = [f"{self.added} added", f"{self.updated} updated", f"{self.unchanged} unchanged"]
        if self.metadata_updated:
            parts.append(f"{self.metadata_updated} metadata updated")
        if self.pruned:
            parts.append(f"{self.pruned} removed")
        parts.append(f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}")
        return ", ".join(parts)


def record_id(path: str) -> str:
    """A short stable id for a file's row, derived from its absolute path."""
    return hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]


def discover_images(roots: list[Path], problems: list[str]) -> list[Path]:
    """Image files under ``roots`` (files given directly are taken as they are).

    Unreadable folders, missing paths and names that are not valid UTF-8 are
    added to ``problems`` with the reason, and the walk goes on.
    """
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
            continue
        if not root.exists():
            problems.append(f"{root}: no such file or folder")
            continue

        def on_error(error: OSError) -> None:
            problems.append(f"{error.filename}: folder cannot be read ({error.strerror})")

        for folder, subfolders, files in os.walk(root, onerror=on_error):
            subfolders.sort()
            for name in sorted(files):
                if Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
                    found.append(Path(folder) / name)
    usable = []
    for path in found:
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            raw = os.fsencode(path).decode("utf-8", errors="backslashreplace")
            problems.append(f"{raw}: file name is not valid UTF-8, skipped (rename the file)")
            continue
        usable.append(path.resolve())
    return sorted(set(usable))


class Indexer:
    """Brings the table in line with the files under some folders."""

    def __init__(self, settings: Settings, models: Models, table: ImageTable, batch_size: int = 16) -> None:
        self.settings = settings
        self.models = models
        self.table = table
        self.batch_size = batch_size

    def run(self, roots: list[Path], metadata: MetadataIndex | None = None, prune: bool = False,
            progress: ProgressCallback | None = None) -> IndexReport:
        report = IndexReport()
        timer = StageTimer()
        notify = progress or (lambda done, total, stage: None)
        files = discover_images(roots, report.problems)
        known = self.table.file_states()

        to_index: list[Path] = []
        for path in files:
            state = known.get(str(path))
            try:
                stat = path.stat()
            except OSError as exc:
                report.problems.append(f"{path}: cannot be read ({exc.strerror})")
                continue
            if state and state[1] == stat.st_size and state[2] == stat.st_mtime:
                report.unchanged += 1
            else:
                to_index.append(path)

        if metadata is not None:
            pending = set(to_index)
            report.metadata_updated = self._refresh_metadata(
                [p for p in files if p not in pending and str(p) in known], metadata)

        done = 0
        for start in range(0, len(to_index), self.batch_size):
            batch = to_index[start:start + self.batch_size]
            rows = self._index_batch(batch, known, metadata, report, timer,
                                     lambda stage: notify(done, len(to_index), stage))
            with timer.stage("write"):
                self.table.upsert(rows)
            done += len(batch)
            notify(done, len(to_index), "write")

        if prune:
            report.pruned = self._prune(roots, set(map(str, files)), known)
        with timer.stage("optimize"):
            self.table.finish_writes()
        report.stage_seconds = dict(timer.seconds)
        return report

    def _index_batch(self, batch: list[Path], known: dict, metadata: MetadataIndex | None,
                     report: IndexReport, timer: StageTimer, on_stage: Callable[[str], None]) -> list[dict]:
        on_stage("decode")
        images: list[ImageFile] = []
        with timer.stage("decode"):
            for path in batch:
                try:
                    images.append(read_image(path, self.settings.max_pixels))
                except ImageRejected as exc:
                    report.problems.append(str(exc))
        rows = []
        fresh: list[ImageFile] = []
        for image in images:
            state = known.get(str(image.path))
            if state and state[0] == image.sha256:
                # Touched but not changed: only the file facts move on, the vectors stay.
                report.unchanged += 1
                rows.extend(self._touched_row(image, metadata))
            else:
                fresh.append(image)
        if fresh:
            analyses = analyse_images(self.models, [i.image for i in fresh], timer, on_stage)
            for image, analysis in zip(fresh, analyses):
                entry = metadata.lookup(image.path, image.sha256) if metadata else None
                rows.append(build_row(image, analysis, entry))
                if str(image.path) in known:
                    report.updated += 1
                else:
                    report.added += 1
        return rows

    def _stored_row(self, path: Path) -> dict[str, Any] | None:
        """Every column of a file's row, for updates that need no model."""
        rows = self.table.find(f"id = '{record_id(str(path))}'", limit=1, columns=_ALL_COLUMNS)
        return rows[0] if rows else None

    def _touched_row(self, image: ImageFile, metadata: MetadataIndex | None) -> list[dict]:
        row = self._stored_row(image.path)
        if row is None:
            return []
        entry = metadata.lookup(image.path, image.sha256) if metadata else None
        return [{**with_metadata(row, entry), "mtime": image.mtime}]

    def _refresh_metadata(self, paths: list[Path], metadata: MetadataIndex) -> int:
        """Apply a metadata file to files that are indexed already and did not change."""
        changed = []
        for path in paths:
            row = self._stored_row(path)
            if row is None:
                continue
            updated = with_metadata(row, metadata.lookup(path, row["sha256"]))
            if any(updated[k] != row[k] for k in updated):
                changed.append(updated)
        self.table.upsert(changed)
        return len(changed)

    def _prune(self, roots: list[Path], present: set[str], known: dict) -> int:
        """Delete rows of files under ``roots`` that are gone; rows elsewhere stay."""
        prefixes = tuple(str(r.resolve()) + (os.sep if r.is_dir() or not r.exists() else "") for r in roots)
        gone = [p for p in known if p.startswith(prefixes) and p not in present and not Path(p).exists()]
        self.table.delete_paths(gone)
        return len(gone)


# Every column, read back for updates that keep the vectors (touched files, new metadata).
_ALL_COLUMNS = [*RECORD_COLUMNS, "mtime", "image_vector", "orb_keypoints", "orb_descriptors", "has_text", "ocr_vector", "caption_vector",
                "search_text", "thumbnail"]
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


def build_row(image: ImageFile, analysis: ImageAnalysis, metadata: Metadata | None) -> dict[str, Any]:
    """The table row of one analysed image."""
    path = str(image.path)
    keypoints, descriptors = analysis.local_features.to_bytes()
    row: dict[str, Any] = {
        "id": record_id(path),
        "path": path,
        "file_name": image.path.name,
        "sha256": image.sha256,
        "pixel_sha256": image.pixel_sha256,
        "phash": image.phash,
        "file_size": image.file_size,
        "mtime": image.mtime,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "camera": image.camera,
        "orientation": image.orientation,
        "image_vector": analysis.image_vector,
        "orb_keypoints": keypoints,
        "orb_descriptors": descriptors,
        "ocr_text": analysis.ocr.text,
        "ocr_lines": json.dumps([line.to_dict() for line in analysis.ocr.lines], ensure_ascii=False),
        "has_text": bool(analysis.ocr.lines),
        "ocr_vector": analysis.ocr_vector,
        "caption": analysis.caption.text,
        "caption_kind": analysis.caption.kind,
        "caption_vector": analysis.caption_vector,
        "thumbnail": image.thumbnail_jpeg(),
        "indexed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **(metadata or Metadata()).columns(),
        **_date_columns(image.taken_at, metadata),
    }
    row["search_text"] = search_text(row)
    return row


def with_metadata(row: dict[str, Any], entry: Metadata | None) -> dict[str, Any]:
    """A stored row with a metadata entry applied (the row itself when there is none)."""
    if entry is None:
        return row
    updated = {**row, **entry.columns(), **_date_columns(row["taken_at"], entry)}
    updated["search_text"] = search_text(updated)
    return updated


def search_text(row: dict[str, Any]) -> str:
    """What BM25 reads: file name, title, description, caption, OCR text and metadata values."""
    extra = ""
    if row.get("metadata_json"):
        extra = " ".join(str(v) for v in json.loads(row["metadata_json"]).values())
    parts = [row.get("file_name"), row.get("title"), row.get("description"), row.get("caption"),
             row.get("ocr_text"), extra]
    return "\n".join(p for p in parts if p)


def _date_columns(exif_taken_at: str | None, metadata: Metadata | None) -> dict[str, Any]:
    """``taken_at`` and ``year``: the user's metadata wins over EXIF."""
    taken_at = (metadata.taken_at if metadata and metadata.taken_at else None) or exif_taken_at
    match = _YEAR.search(taken_at or "")
    return {"taken_at": taken_at, "year": int(match.group()) if match else None}
