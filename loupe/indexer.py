"""Indexing folders of images into the table, incrementally and crash-safely.

A run walks the folders, skips files whose size and modification time (then
content hash) match their row, analyses the rest in batches and writes each
batch as one atomic commit. Worker threads read the next batch's files while
the models analyse this one (loupe/file_reader.py). Problems with single files
are collected and reported; they never stop the run nor touch rows already
written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loupe.base.config import Settings
from loupe.file_reader import PreparedImage, default_workers, prepare_for_index, read_batches
from loupe.metadata import Metadata, MetadataIndex
from loupe.store.image_table import ImageTable
from loupe.store.roots import add_roots
from loupe.store.schema import RECORD_COLUMNS
from loupe.tools.analysis import ImageAnalysis, StageTimer, analyse_images
from loupe.tools.boundary import CollectionBoundary
from loupe.tools.document_fields import FIELDS_VERSION, fold_lines, iso_date, printed_date, printed_shop, printed_total
from loupe.tools.printed_title import printed_title
from loupe.tools.receipt_items import printed_items
from loupe.tools.image_file import SUPPORTED_SUFFIXES, rotated_hashes_of_thumbnail
from loupe.tools.models import Models

ProgressCallback = Callable[[int, int, str], None]  # (files done, files to do, stage)


def pace(done: int, total: int, seconds: float) -> str:
    """Images per second so far and the time left at that rate, for a progress line: "9.8 images/s, 12 s left"."""
    if done <= 0 or seconds <= 0:
        return "starting"
    rate = done / seconds
    left = (total - done) / rate
    remaining = f"{left:.0f} s" if left < 120 else f"{left / 60:.0f} min"
    return f"{rate:.1f} images/s, {remaining} left" if done < total else f"{rate:.1f} images/s"


@dataclass
class IndexReport:
    """What a run did, for the summary line and the collection page."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    metadata_updated: int = 0
    derived_filled: int = 0  # rows of an older index given the columns added since (store/schema.py)
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
        if self.derived_filled:
            parts.append(f"{self.derived_filled} given new derived columns")
        if self.pruned:
            parts.append(f"{self.pruned} removed")
        parts.append(f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}")
        return ", ".join(parts)


def record_id(path: str) -> str:
    """A short stable id for a file's row, derived from its absolute path."""
    return hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]


def discover_images(roots: list[Path], problems: list[str], index_dir: Path | None = None,
                    follow_symlinks: bool = False) -> list[Path]:
    """Image files under ``roots`` (files given directly are taken as they are), by their real paths.

    A symlink is resolved; its target is kept only when it lies inside the root it was found under,
    unless ``follow_symlinks`` (then symlinked folders are walked too, each once). Loops, dangling
    links, unreadable folders, non-regular files, names that are not valid UTF-8 and the index folder
    itself are left out, each with one line in ``problems``; the walk goes on.
    """
    excluded = Path(os.path.realpath(index_dir)) if index_dir else None
    found: set[Path] = set()
    for root in roots:
        if not root.exists() and not root.is_symlink():
            problems.append(f"{root}: no such file or folder")
            continue
        real_root = _real_path(root, problems)
        if real_root is None:
            continue
        if real_root.is_file():
            found.add(real_root)
            continue
        found.update(_walk(real_root, problems, excluded, follow_symlinks))
    usable = []
    for path in sorted(found):
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            raw = os.fsencode(path).decode("utf-8", errors="backslashreplace")
            problems.append(f"{raw}: file name is not valid UTF-8, skipped (rename the file)")
            continue
        usable.append(path)
    return usable


def _walk(root: Path, problems: list[str], excluded: Path | None, follow_symlinks: bool) -> list[Path]:
    """Image files under one real folder; every real folder is visited once, so links cannot loop."""
    files: list[Path] = []
    visited: set[Path] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        if folder in visited:
            continue
        visited.add(folder)
        if excluded is not None and folder.is_relative_to(excluded):
            continue  # the index keeps thumbnails: indexing them would index the index
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name, reverse=True)
        except OSError as exc:
            problems.append(f"{exc.filename or folder}: folder cannot be read ({exc.strerror or exc})")
            continue
        for entry in entries:
            try:
                files.extend(_images_of_entry(entry, root, pending, problems, excluded, follow_symlinks))
            except OSError as exc:
                problems.append(f"{entry.path}: cannot be read ({exc.strerror or exc}), skipped")
    return files


def _images_of_entry(entry: os.DirEntry, root: Path, pending: list[Path], problems: list[str],
                     excluded: Path | None, follow_symlinks: bool) -> list[Path]:
    """The image file one folder entry stands for ([] or [path]); sub-folders go onto ``pending``."""
    path = Path(entry.path)
    if not entry.is_symlink():
        if entry.is_dir(follow_symlinks=False):
            pending.append(path)
            return []
        return _regular_file(path, problems) if _is_image_name(path) else []
    target = _real_path(path, problems)
    if target is None or (excluded is not None and target.is_relative_to(excluded)):
        return []
    if not target.is_dir() and not (_is_image_name(path) or _is_image_name(target)):
        return []
    if not follow_symlinks and not target.is_relative_to(root):
        problems.append(f"{path}: symlink to a place outside {root}; not followed "
                        "(index that folder itself, or pass --follow-symlinks)")
        return []
    if target.is_dir():
        if follow_symlinks:
            pending.append(target)  # inside the root it is walked as itself anyway
        return []
    return _regular_file(target, problems)


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def _regular_file(path: Path, problems: list[str]) -> list[Path]:
    """[path] for a regular file; [] and one line for a device, pipe or socket (reading one could block)."""
    if path.is_file():
        return [path]
    problems.append(f"{path}: not a regular file (a device, pipe or socket), skipped")
    return []


def _real_path(path: Path, problems: list[str]) -> Path | None:
    """``path`` with every symlink resolved; None (and one line) for a loop or a dangling link."""
    try:
        return Path(os.path.realpath(path, strict=True))
    except OSError as exc:
        reason = "a symlink loop" if exc.errno == errno.ELOOP else f"a broken symlink ({exc.strerror or exc})"
        problems.append(f"{path}: {reason}, skipped")
        return None


class Indexer:
    """Brings the table in line with the files under some folders."""

    def __init__(self, settings: Settings, models: Models, table: ImageTable, batch_size: int = 16,
                 follow_symlinks: bool = False, workers: int | None = None) -> None:
        self.settings = settings
        self.models = models
        self.table = table
        self.batch_size = batch_size
        self.follow_symlinks = follow_symlinks
        self.workers = workers or default_workers()  # file-reading threads; 1 reads on the indexing thread

    def run(self, roots: list[Path], metadata: MetadataIndex | None = None, prune: bool = False,
            progress: ProgressCallback | None = None) -> IndexReport:
        with self.table.writing_lock():
            return self._run(roots, metadata, prune, progress)

    def _run(self, roots: list[Path], metadata: MetadataIndex | None, prune: bool,
             progress: ProgressCallback | None) -> IndexReport:
        return self.run_planned(roots, metadata, prune, progress, self._analysed_here)

    def run_planned(self, roots: list[Path], metadata: MetadataIndex | None, prune: bool,
                    progress: ProgressCallback | None, source: BatchSource) -> IndexReport:
        """Plan, commit every batch ``source`` analyses, finish: the run both indexers share (this one analyses
        its batches here, loupe/ray_indexer.py on a cluster). The caller holds the table's writing lock."""
        report = IndexReport()
        timer = StageTimer()
        notify = progress or (lambda done, total, stage: None)
        plan = self.plan(roots, metadata, report)
        done = 0
        notify(done, len(plan.to_index), "decode")
        for analysed, size in source(plan, timer, lambda stage: notify(done, len(plan.to_index), stage)):
            self.commit(analysed, plan.known, metadata, report, timer)
            done += size
            notify(done, len(plan.to_index), "write")
        self.finish(roots, plan, prune, report, timer)
        return report

    def _analysed_here(self, plan: RunPlan, timer: StageTimer,
                       on_stage: Callable[[str], None]) -> Iterator[tuple[AnalysedBatch, int]]:
        """Each batch of ``plan.to_index`` read ahead by worker threads and analysed in this process."""
        batches = read_batches(plan.to_index, self.batch_size, self.workers,
                               lambda path: prepare_for_index(path, self.settings.max_pixels, timer,
                                                              plan.stored_sha256(path)))
        for batch in batches:
            yield analyse_batch(self.models, batch, plan.stored_sha256, timer, on_stage), len(batch)

    def plan(self, roots: list[Path], metadata: MetadataIndex | None, report: IndexReport) -> RunPlan:
        """What a run must analyse: the files under ``roots`` whose size or modification time changed.

        Done before any model runs (also by loupe/ray_indexer.py, on the machine that holds the table):
        the roots are recorded, older rows get new derived columns, and unchanged files get a new metadata file.
        """
        # The roots mark the collection's boundary for every tool (tools/boundary.py): recorded first.
        add_roots(self.table.location, [r for r in roots if r.exists()])
        files = discover_images(roots, report.problems, self.table.index_dir, self.follow_symlinks)
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

        report.derived_filled = self._fill_derived_columns()
        if metadata is not None:
            pending = set(to_index)
            report.metadata_updated = self._refresh_metadata(
                [p for p in files if p not in pending and str(p) in known], metadata)
        return RunPlan(files, known, to_index)

    def commit(self, analysed: AnalysedBatch, known: dict, metadata: MetadataIndex | None, report: IndexReport,
               timer: StageTimer) -> None:
        """One analysed batch written with the user's metadata: new files appended, changed and touched ones
        replacing their rows.

        ``known`` gains the paths written, so a batch delivered twice (a retried Ray task) replaces its rows
        instead of adding them again.
        """
        report.problems.extend(analysed.problems)
        # Touched but not changed: only the file facts move on, the vectors stay.
        report.unchanged += len(analysed.touched)
        stored = self._stored_rows([file.path for file in analysed.touched])
        rows = [{**with_metadata(stored[str(f.path)], metadata.lookup(f.path, f.sha256) if metadata else None),
                 "mtime": f.mtime} for f in analysed.touched if str(f.path) in stored]
        kept = self._kept_metadata([Path(row["path"]) for row in analysed.rows if row["path"] in known])
        for row in analysed.rows:
            entry = metadata.lookup(Path(row["path"]), row["sha256"]) if metadata else None
            rows.append(with_metadata(row, entry or kept.get(row["path"])))
            if row["path"] in known:
                report.updated += 1
            else:
                report.added += 1
        with timer.stage("write"):
            self.table.append([row for row in rows if row["path"] not in known])
            self.table.upsert([row for row in rows if row["path"] in known])
        known.update((row["path"], (row["sha256"], row["file_size"], row["mtime"])) for row in rows)

    def finish(self, roots: list[Path], plan: RunPlan, prune: bool, report: IndexReport, timer: StageTimer) -> None:
        """After the last batch: rows of deleted files dropped (``prune``), the commits compacted, the times kept."""
        if prune:
            report.pruned = self._prune(roots, set(map(str, plan.files)), plan.known)
        with timer.stage("optimize"):
            self.table.finish_writes()
        report.stage_seconds = dict(timer.seconds)

    def _kept_metadata(self, paths: list[Path]) -> dict[str, Metadata]:
        """The metadata changed files had, so re-indexing a file never drops its title."""
        rows = self._stored_rows(paths, ["id", "path", "title", "description", "price", "metadata_json"])
        return {path: entry for path, row in rows.items() if (entry := Metadata.from_row(row)) is not None}

    def _stored_rows(self, paths: list[Path], columns: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """These files' rows by path (every column unless ``columns``), one read per 500 files."""
        ids = [record_id(str(path)) for path in paths]
        rows = [row for start in range(0, len(ids), 500)
                for row in self.table.get(ids[start:start + 500], columns=columns or _ALL_COLUMNS)]
        return {row["path"]: row for row in rows}

    def _fill_derived_columns(self) -> int:
        """Rows of an index built before a derived column existed get it now, from what they store; every row
        is read again when the reading rules changed since (FIELDS_VERSION). No model runs."""
        stale = self.table.info.fields_version < FIELDS_VERSION
        missing = [Path(row["path"]) for row in self.table.find(
            "true" if stale else " OR ".join(f"{column} IS NULL" for column in _NEVER_NULL_ONCE_READ),
            limit=max(self.table.count(), 1), columns=["path"])]
        rows = [{**row, **derived_columns(row), "rotated_phashes": _turned_hashes(row)}
                for row in self._stored_rows(missing).values()]
        self.table.upsert(rows)
        if stale:
            self.table.record_fields_version(FIELDS_VERSION)
        return len(rows)

    def _refresh_metadata(self, paths: list[Path], metadata: MetadataIndex) -> int:
        """Apply a metadata file to files that are indexed already and did not change."""
        changed = []
        for path, row in self._stored_rows(paths).items():
            updated = with_metadata(row, metadata.lookup(Path(path), row["sha256"]))
            if any(updated[k] != row[k] for k in updated):
                changed.append(updated)
        self.table.upsert(changed)
        return len(changed)

    def _prune(self, roots: list[Path], present: set[str], known: dict) -> int:
        """Delete rows of files under ``roots`` that are gone, and rows that lie outside every indexed root
        (indexed through a symlink before, or from inside the index folder); rows of other roots stay."""
        boundary = CollectionBoundary.of_index(self.table.location)
        prefixes = tuple(os.path.realpath(r) + (os.sep if r.is_dir() or not r.exists() else "") for r in roots)
        gone = [p for p in known if p not in present and (
            (p.startswith(prefixes) and not Path(p).is_file()) or not boundary.contains(p))]
        self.table.delete_paths(gone)
        return len(gone)


def _turned_hashes(row: dict[str, Any]) -> list[int]:
    """The row's rotated perceptual hashes; for a row indexed before they were stored, from its thumbnail."""
    if row["rotated_phashes"] is not None:
        return row["rotated_phashes"]
    return list(rotated_hashes_of_thumbnail(row["thumbnail"])) if row["thumbnail"] else []


# Every column, read back for updates that keep the vectors (touched files, new metadata).
_ALL_COLUMNS = [*RECORD_COLUMNS, "mtime", "rotated_phashes", "image_vector", "orb_keypoints", "orb_descriptors",
                "has_text", "ocr_vector", "caption_vector", "search_text", "thumbnail", "folded_text"]
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


@dataclass(frozen=True)
class RunPlan:
    """The files a run found, the table's file states, and the files it must analyse."""

    files: list[Path]
    # path -> (sha256, file size, mtime): ImageTable.file_states() at the start, then each commit's rows
    known: dict[str, tuple[str, int, float]]
    to_index: list[Path]

    def stored_sha256(self, path: Path | str) -> str | None:
        """The content hash the file's row has (None for a new file): equal means touched, not changed."""
        return self.known.get(str(path), (None,))[0]


@dataclass(frozen=True)
class TouchedFile:
    """A file whose modification time changed but whose content did not: its row keeps its vectors."""

    path: Path
    sha256: str
    mtime: float


@dataclass
class AnalysedBatch:
    """One batch through the models: the rows of new and changed files (no user metadata yet), the touched
    files, and one line per file that could not be read or analysed.

    It holds no pixels and needs no table, so it can be made where the models are (an actor of
    loupe/ray_indexer.py, on another machine) and committed where the table is (:meth:`Indexer.commit`).
    """

    rows: list[dict[str, Any]]
    touched: list[TouchedFile]
    problems: list[str]


# Where a run's analysed batches come from, given the plan, the run's timer and a per-stage progress callback:
# (batch, files in it) pairs, in any order (Indexer.run_planned).
BatchSource = Callable[[RunPlan, StageTimer, Callable[[str], None]], Iterator[tuple[AnalysedBatch, int]]]


def analyse_batch(models: Models, batch: list[PreparedImage | str], stored_sha256: Callable[[Path], str | None],
                  timer: StageTimer, on_stage: Callable[[str], None] | None = None) -> AnalysedBatch:
    """A batch of read files through the models; files whose content is their stored one skip them."""
    problems = [item for item in batch if isinstance(item, str)]
    touched: list[TouchedFile] = []
    fresh: list[PreparedImage] = []
    for item in batch:
        if isinstance(item, PreparedImage):
            if stored_sha256(item.file.path) == item.file.sha256:
                touched.append(TouchedFile(item.file.path, item.file.sha256, item.file.mtime))
            else:
                fresh.append(item)
    analysed, analyses = _analyse(models, fresh, problems, timer, on_stage or (lambda stage: None))
    return AnalysedBatch([build_row(item, analysis, None) for item, analysis in zip(analysed, analyses)],
                         touched, problems)


def _analyse(models: Models, images: list[PreparedImage], problems: list[str], timer: StageTimer,
             on_stage: Callable[[str], None]) -> tuple[list[PreparedImage], list[ImageAnalysis]]:
    """The batch through the models; if that fails, each image alone, so one bad image costs one line.

    Model code (ONNX, torch, OpenCV, a remote API) can fail in ways no decoder check foresees, e.g. on
    a 1-pixel-wide image; catching every exception here is what keeps the rest of the batch.
    """
    if len(images) > 1:
        try:
            return images, analyse_images(models, [i.file.image for i in images], timer, on_stage,
                                          [i.local_features for i in images])
        except Exception:  # noqa: BLE001 - retried one by one below, where the culprit is named
            pass
    analysed: list[PreparedImage] = []
    analyses: list[ImageAnalysis] = []
    for image in images:
        try:
            analyses.extend(analyse_images(models, [image.file.image], timer, on_stage, [image.local_features]))
            analysed.append(image)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{image.file.path}: analysis failed ({type(exc).__name__}: "
                            f"{str(exc)[:200]}); skipped, the rest of the run goes on")
    return analysed, analyses


def build_row(prepared: PreparedImage, analysis: ImageAnalysis, metadata: Metadata | None) -> dict[str, Any]:
    """The table row of one analysed image."""
    image = prepared.file
    path = str(image.path)
    keypoints, descriptors = analysis.local_features.to_bytes()
    row: dict[str, Any] = {
        "id": record_id(path),
        "path": path,
        "file_name": image.path.name,
        "sha256": image.sha256,
        "pixel_sha256": image.pixel_sha256,
        "phash": image.phash,
        "rotated_phashes": list(image.rotated_phashes),
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
        "thumbnail": prepared.thumbnail,
        "indexed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **(metadata or Metadata()).columns(),
        **_date_columns(image.taken_at, metadata),
    }
    row["search_text"] = search_text(row)
    return {**row, **derived_columns(row)}


def with_metadata(row: dict[str, Any], entry: Metadata | None) -> dict[str, Any]:
    """A stored row with a metadata entry applied (the row itself when there is none)."""
    if entry is None:
        return row
    updated = {**row, **entry.columns(), **_date_columns(row["taken_at"], entry)}
    updated["search_text"] = search_text(updated)
    return {**updated, **derived_columns(updated)}


def search_text(row: dict[str, Any]) -> str:
    """What BM25 reads: file name, title, description, caption, OCR text and metadata values."""
    extra = ""
    if row.get("metadata_json"):
        extra = " ".join(str(v) for v in json.loads(row["metadata_json"]).values())
    parts = [row.get("file_name"), row.get("title"), row.get("description"), row.get("caption"),
             row.get("ocr_text"), extra]
    return "\n".join(p for p in parts if p)


# The derived columns that hold a value ("" or "[]" where nothing is printed) once read; NULL means not read yet.
_NEVER_NULL_ONCE_READ = ("folded_text", "rotated_phashes", "shop", "items", "printed_title")


def derived_columns(row: dict[str, Any]) -> dict[str, Any]:
    """The columns computed from others (store/schema.py): the day, its year, the printed total, shop, items and
    title, and the folded text.

    The user's or the camera's date wins; a scanned receipt has neither, so its printed date counts.
    """
    date = iso_date(row.get("taken_at") or "") or printed_date(row.get("ocr_text") or "")
    taken_year = _YEAR.search(row.get("taken_at") or "")  # as _date_columns reads it; else the printed date's
    lines = json.loads(row.get("ocr_lines") or "[]")
    return {"date": date, "year": int(taken_year.group()) if taken_year else (int(date[:4]) if date else None),
            "total": (total := printed_total(lines)),
            "folded_text": fold_lines(row.get("search_text") or ""),
            "shop": printed_shop((row.get("ocr_text") or "").splitlines()) or "",  # "": read, none printed
            "items": json.dumps([item.as_dict() for item in printed_items(lines)], ensure_ascii=False),
            "printed_title": (printed_title(lines) or "") if total is None else ""}  # a receipt's title: its shop


def _date_columns(exif_taken_at: str | None, metadata: Metadata | None) -> dict[str, Any]:
    """``taken_at`` and ``year``: the user's metadata wins over EXIF."""
    taken_at = (metadata.taken_at if metadata and metadata.taken_at else None) or exif_taken_at
    match = _YEAR.search(taken_at or "")
    return {"taken_at": taken_at, "year": int(match.group()) if match else None}
