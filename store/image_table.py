"""The images table on disk: writes that survive a crash, and the searches.

Every write is one LanceDB commit (a ``merge_insert`` keyed on ``path``), and a
commit is atomic: a process killed with ``kill -9`` leaves the table at the
last commit, so a restarted run re-indexes only the files of the lost batch,
and upserting on ``path`` means no file can ever get two rows.

This module knows nothing about models: callers hand it vectors.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import FTS, BTree, IvfPq

from loupe.base.errors import IndexMismatchError, LoupeError
from loupe.store.location import IndexLocation, as_location
from loupe.store.schema import RECORD_COLUMNS, TABLE_NAME, IndexInfo, image_table_schema
# Below this many rows an exact (flat) scan is fast enough (measured by
# evals/bench_store.py) and always exact; above it an IVF-PQ index with
# re-ranking keeps queries fast.
VECTOR_INDEX_MIN_ROWS = 50_000
WRITER_LOCK_FILE = "loupe-writer.lock"
VECTOR_COLUMNS = ("image_vector", "ocr_vector", "caption_vector")


class IndexNotFoundError(LoupeError):
    """No index exists at the given folder yet."""


class InvalidFilterError(LoupeError):
    """A user's ``where`` filter that LanceDB cannot parse or apply."""


class IndexBusyError(LoupeError):
    """Another process holds the index's writer lock."""


class DiskFullError(LoupeError):
    """The index's disk filled up during a write; every earlier commit is intact."""


@contextmanager
def _writing(location: IndexLocation, what: str) -> Iterator[None]:
    """A full disk during a write becomes one clear line. A LanceDB commit is atomic, so the table stays
    at its last commit; LanceDB reports ENOSPC as an OSError or inside its own error text."""
    try:
        yield
    except Exception as exc:
        if getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc):
            raise DiskFullError(f"disk full while {what} in {location}: nothing already indexed is lost; free "
                                "some space and run the same command again") from exc
        raise


# Rows without text carry a zero vector in the text columns: a text search keeps to the rows that have one.
_WITH_VECTOR = {"ocr_vector": "has_text", "caption_vector": "caption != ''"}


def _run(query: Any, where: str | None) -> list[dict[str, Any]]:
    """Execute a query; a bad user filter becomes a message, not a traceback."""
    try:
        return query.to_list()
    except ValueError as exc:
        if not where:
            raise
        raise InvalidFilterError(f"filter {where!r} cannot be used: {exc}") from exc


class ImageTable:
    """The ``images`` table of one index, in a folder or on object storage (store/location.py)."""

    def __init__(self, location: IndexLocation, info: IndexInfo, table: lancedb.table.Table) -> None:
        self.location = location
        self.index_dir = location.local_dir  # this machine's folder for the index's local files
        self.info = info
        self._table = table
        self._hashes: tuple[int, list[str], np.ndarray] | None = None  # (table version, ids, hashes)
        self._folded: tuple[int, list[str], list[str]] | None = None  # (table version, ids, folded texts)
        self._words: tuple[int, set[str]] | None = None  # (table version, words of the folded texts)
        # column -> (version, ids, unit vectors, each vector's row offset in that version)
        self._unit_vectors: dict[str, tuple[int, list[str], np.ndarray, np.ndarray]] = {}
        self._searched: set[str] = set()  # vector columns searched unfiltered in this process

    @classmethod
    def open(cls, index: IndexLocation | str | Path) -> ImageTable:
        """Open an existing index; the error says how to make one if there is none."""
        location = as_location(index)
        info = IndexInfo.load(location)
        db = location.connect() if info else None
        if info is None or TABLE_NAME not in db.list_tables().tables:
            raise IndexNotFoundError(
                f"no Loupe index at {location}: run `loupe index FOLDER` first (or pass --index)"
            )
        return cls(location, info, _with_new_columns(location, info, db.open_table(TABLE_NAME)))

    @classmethod
    def open_or_create(cls, index: IndexLocation | str | Path, info: IndexInfo) -> ImageTable:
        """Open the index, creating it if needed; refuse one built with other models."""
        location = as_location(index)
        existing = IndexInfo.load(location)
        if existing is not None and existing.vector_models() != info.vector_models():
            raise IndexMismatchError(
                f"the index at {location} was built with {_describe(existing)}, but the configuration "
                f"now names {_describe(info)}. Vectors of different models cannot be mixed: use another "
                "--index folder, or restore the configuration the index was built with"
            )
        if existing is not None:  # what the stored rows were computed with, not what the code computes now
            info = dataclasses.replace(info, fields_version=existing.fields_version)
        db = location.connect()
        if TABLE_NAME in db.list_tables().tables:
            table = _with_new_columns(location, info, db.open_table(TABLE_NAME))
        else:
            table = db.create_table(TABLE_NAME, schema=image_table_schema(info))
        info.save(location)
        return cls(location, info, table)

    # ----- writing -------------------------------------------------------------------------

    def record_fields_version(self, version: int) -> None:
        """Note that every row's fields read from printed text now follow rules of ``version``."""
        self.info = dataclasses.replace(self.info, fields_version=version)
        self.info.save(self.location)

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Add rows of files not in the table yet, in one atomic commit.

        Cheaper than :meth:`upsert`, whose merge on the path reads every row's path: at 10,000 rows that
        made each batch slower than the last. Only the holder of :meth:`writing_lock` may call it, so no
        other writer can add the same path meanwhile.
        """
        if not rows:
            return
        data = pa.Table.from_pylist(rows, schema=self._table.schema)
        with _writing(self.location, "writing rows"):
            self._table.add(data)

    @contextmanager
    def writing_lock(self) -> Iterator[None]:
        """One writer at a time per index (an indexing run; readers are never blocked): a second `loupe index`
        on the same index, from a terminal or the UI, stops with one line instead of racing the first. The lock
        is a file on this machine: for an index on object storage it keeps out the other writers here, and
        Lance's commits keep two machines' appends apart (README, "Beyond one machine")."""
        with (self.index_dir / WRITER_LOCK_FILE).open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexBusyError(f"another process is indexing into {self.location}: wait until it has "
                                     "finished, then run this again") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def upsert(self, rows: list[dict[str, Any]]) -> None:
        """Insert new files and replace changed ones, in one atomic commit."""
        if not rows:
            return
        data = pa.Table.from_pylist(rows, schema=self._table.schema)
        with _writing(self.location, "writing rows"):
            (
                self._table.merge_insert("path")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data)
            )

    def delete_paths(self, paths: list[str]) -> None:
        """Remove the rows of files that no longer exist (``--prune``)."""
        for start in range(0, len(paths), 500):
            chunk = paths[start:start + 500]
            with _writing(self.location, "removing rows"):
                self._table.delete("path IN (" + ", ".join(sql_string(p) for p in chunk) + ")")

    def finish_writes(self, vector_index_min_rows: int = VECTOR_INDEX_MIN_ROWS) -> None:
        """Compact the commits of a run and bring the search indexes up to date.

        Many small commits keep a crash cheap; compacting once at the end keeps
        reads fast. The full-text index is built once and then updated by
        ``optimize``; the vector indexes appear once the table is large.
        """
        with _writing(self.location, "optimizing the index"):
            self._update_indexes(vector_index_min_rows)

    def _update_indexes(self, vector_index_min_rows: int) -> None:
        indexed = self.indexes()
        rows = self._table.count_rows()
        if "search_text" not in indexed and rows:
            self._table.create_index("search_text", config=FTS(with_position=False))  # column first
        if "path" not in indexed and rows:
            self._table.create_index("path", config=BTree())
        if rows >= vector_index_min_rows:
            for column in VECTOR_COLUMNS:
                if column not in indexed:
                    self._table.create_index(column, config=IvfPq(distance_type="cosine"))
        self._table.optimize()

    # ----- reading -------------------------------------------------------------------------

    def count(self) -> int:
        return self._table.count_rows()

    def last_indexed(self) -> str | None:
        """When the newest row was written (ISO 8601, UTC), for the collection page."""
        values = [v for v in self._scan(["indexed_at"])["indexed_at"].to_pylist() if v]
        return max(values) if values else None

    def file_states(self) -> dict[str, tuple[str, int, float]]:
        """path -> (sha256, file size, mtime) of every indexed file, for incremental runs."""
        columns = self._scan(["path", "sha256", "file_size", "mtime"])
        return {
            path: (sha, size, mtime)
            for path, sha, size, mtime in zip(
                columns["path"].to_pylist(), columns["sha256"].to_pylist(),
                columns["file_size"].to_pylist(), columns["mtime"].to_pylist(),
            )
        }

    def perceptual_hashes(self) -> tuple[list[str], np.ndarray]:
        """(ids, int64 hashes) of every row: Hamming distance is computed in numpy.

        Kept in memory per table version: every image search needs them, and they change only when
        the table does (a new version, from this process or another).
        """
        version = self._table.version
        if self._hashes is None or self._hashes[0] != version:
            columns = self._scan(["id", "phash"])
            self._hashes = (version, columns["id"].to_pylist(), columns["phash"].to_numpy(zero_copy_only=False))
        return self._hashes[1], self._hashes[2]

    def folded_texts(self) -> tuple[list[str], list[str]]:
        """(ids, folded text) of every row that has text, for matching names however they are typed.

        Kept in memory per table version, like the perceptual hashes: a text search reads it whole.
        """
        version = self._table.version
        if self._folded is None or self._folded[0] != version:
            columns = self._scan(["id", "folded_text"])
            pairs = [(i, t) for i, t in zip(columns["id"].to_pylist(), columns["folded_text"].to_pylist()) if t]
            self._folded = (version, [i for i, _ in pairs], [t for _, t in pairs])
        return self._folded[1], self._folded[2]

    def folded_words(self) -> set[str]:
        """Every word of the folded texts (for correcting a misspelt name), kept per table version."""
        version = self._table.version
        if self._words is None or self._words[0] != version:
            self._words = (version, {word for text in self.folded_texts()[1] for word in text.split()})
        return self._words[1]

    def _scan(self, columns: list[str]) -> pa.Table:
        """A few columns of every row (no vectors, so cheap even at 100k rows)."""
        rows = self.count()
        if rows == 0:
            return pa.table({c: pa.array([], self._table.schema.field(c).type) for c in columns})
        return self._table.search().select(columns).limit(rows).to_arrow()

    def scan(self, columns: list[str], where: str | None = None) -> pa.Table:
        """Some columns of every row (that ``where`` selects) as Arrow: vectors of 100k rows stay arrays."""
        query = self._table.search().select(columns).limit(max(self.count(), 1))
        try:
            return (query.where(where) if where else query).to_arrow()
        except ValueError as exc:
            if not where:
                raise
            raise InvalidFilterError(f"filter {where!r} cannot be used: {exc}") from exc

    def get(self, ids: list[str], columns: list[str] | None = None, where: str | None = None) -> list[dict[str, Any]]:
        """Rows by id, in the order of ``ids`` (missing ids, and rows ``where`` excludes, are left out)."""
        if not ids:
            return []
        condition = "id IN (" + ", ".join(sql_string(i) for i in ids) + ")" + (f" AND ({where})" if where else "")
        rows = _run(self._table.search().where(condition).select(columns or RECORD_COLUMNS).limit(len(ids)), where)
        by_id = {row["id"]: row for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def _rows_at(self, offsets: list[int], ids: list[str], columns: list[str]) -> list[dict[str, Any]]:
        """The rows at these offsets of the version the ids were scanned from, in the order of ``ids``: a take by
        position reads 50 rows of 10,000 in 3-6 ms, a filter on the ids 6-11. Where the rows there are not those
        ids (another process wrote a version since), they are read by id."""
        rows = self._table.take_offsets(offsets).select(["id", *(c for c in columns if c != "id")]).to_list()
        by_id = {row["id"]: row for row in rows}
        if len(by_id) != len(ids) or not all(i in by_id for i in ids):
            return self.get(ids, columns)
        return [by_id[i] for i in ids]

    def record(self, record_id: str, columns: list[str]) -> dict[str, Any]:
        """One row by id; a LoupeError naming the id if there is none."""
        rows = self.get([record_id], columns=["id", *(c for c in columns if c != "id")])
        if not rows:
            raise LoupeError(f"no record with id {record_id} in the index")
        return rows[0]

    def find(self, where: str, limit: int = 50, columns: list[str] | None = None) -> list[dict[str, Any]]:
        """Rows matching an SQL filter, e.g. ``sha256 = '...'``."""
        return _run(self._table.search().where(where).select(columns or RECORD_COLUMNS).limit(limit), where)

    def vector_search(
        self, column: str, vector: np.ndarray, limit: int, where: str | None = None,
        extra_columns: list[str] | None = None, ids_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Nearest rows by cosine distance, each with ``_distance`` (0 = same direction) and the record's columns
        (plus ``extra_columns``, read in the same query), or with ``ids_only`` only their ``id``: text search
        fuses several retrievers' rankings and reads the rows of the few it returns once (:meth:`get`)."""
        if where is None:
            # A process that searched a column once searches it again: from its second search on, the vectors
            # are worth keeping in memory; a one-shot search (the CLI) does not pay for reading them all.
            if column in self._searched and self.count() < VECTOR_INDEX_MIN_ROWS and column not in self.indexes():
                return self._scanned_nearest(column, vector, limit, extra_columns, ids_only)
            self._searched.add(column)
        if column != "image_vector":
            where = f"({where}) AND {_WITH_VECTOR[column]}" if where else _WITH_VECTOR[column]
        query = self._nearest(column, vector.astype(np.float32), limit, where, extra_columns, ids_only)
        return _run(query, where)

    def _scanned_nearest(self, column: str, vector: np.ndarray, limit: int,
                         extra_columns: list[str] | None, ids_only: bool = False) -> list[dict[str, Any]]:
        """The k-NN of an unfiltered search below VECTOR_INDEX_MIN_ROWS, where LanceDB has no vector index and
        reads every vector from disk (58 ms for 10,000 image vectors on 2 cores): the unit vectors are kept in
        memory per table version, as the perceptual hashes are (read once in about 0.1 s), and the distances
        are one matrix product; with the rows read by id, 17 ms. The same cosine distance, rows and columns as
        the LanceDB query returns. A zero vector (no text, no caption) is never a neighbour, as the text
        columns' condition (_WITH_VECTOR) leaves those rows out of LanceDB's query."""
        version = self._table.version
        if column not in self._unit_vectors or self._unit_vectors[column][0] != version:
            scanned = self.scan(["id", column])
            vectors = np.concatenate([chunk.values.to_numpy(zero_copy_only=False).reshape(len(chunk), -1)
                                      for chunk in scanned[column].chunks]) if len(scanned) else np.zeros((0, 1))
            norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
            kept = norms > 0  # a zero vector has no direction
            if not kept.all():
                vectors, norms = vectors[kept], norms[kept]
            vectors /= norms[:, None]  # in place: a second 50 MB copy took longer than the scan
            self._unit_vectors[column] = (version, [i for i, k in zip(scanned["id"].to_pylist(), kept) if k],
                                          vectors, np.flatnonzero(kept))
        _, ids, units, offsets = self._unit_vectors[column]
        if not ids:
            return []
        query = vector.astype(np.float32) / max(float(np.linalg.norm(vector)), 1e-12)
        distances = 1.0 - np.einsum("ij,j->i", units, query)  # not BLAS: its spinning threads slowed what followed
        nearest = np.argpartition(distances, limit - 1)[:limit] if limit < len(ids) else np.arange(len(ids))
        nearest = nearest[np.argsort(distances[nearest], kind="stable")]
        if ids_only:
            return [{"id": ids[i], "_distance": float(distances[i])} for i in nearest]
        rows = self._rows_at([int(offsets[i]) for i in nearest], [ids[i] for i in nearest],
                             [*RECORD_COLUMNS, *(extra_columns or [])])
        distance_of = {ids[i]: float(distances[i]) for i in nearest}
        return [{**row, "_distance": distance_of[row["id"]]} for row in rows]

    def nearest_to_any(self, column: str, vectors: np.ndarray, limit: int, where: str | None = None,
                       extra_columns: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """The ``limit`` nearest rows of each of several vectors in one batched query, by id; a row that several
        vectors find keeps its smallest ``_distance``. (Image search's second look: one query per crop.)"""
        query = self._nearest(column, [v.astype(np.float32) for v in vectors], limit, where, extra_columns)
        nearest: dict[str, dict[str, Any]] = {}
        for row in _run(query, where):
            row.pop("query_index", None)
            if row["id"] not in nearest or row["_distance"] < nearest[row["id"]]["_distance"]:
                nearest[row["id"]] = row
        return nearest

    def _nearest(self, column: str, vectors: np.ndarray | list[np.ndarray], limit: int, where: str | None,
                 extra_columns: list[str] | None, ids_only: bool = False) -> Any:
        """The cosine k-NN query for one vector or a batch, with the record's columns (or only the id), filtered
        before the search."""
        columns = ["id"] if ids_only else [*RECORD_COLUMNS, *(extra_columns or [])]
        query = (
            self._table.search(vectors, vector_column_name=column)
            .distance_type("cosine")
            .select([*columns, "_distance"])
            .limit(limit)
        )
        if where:
            query = query.where(where, prefilter=True)
        if column in self.indexes():
            query = query.nprobes(20).refine_factor(5)
        return query

    def indexes(self) -> dict[str, str]:
        """Indexed column -> index type (e.g. ``image_vector`` -> ``IvfPq``)."""
        return {index.columns[0]: index.index_type for index in self._table.list_indices()}

    def full_text_search(self, text: str, limit: int, where: str | None = None) -> list[dict[str, Any]]:
        """BM25 ranking over OCR text, captions, metadata and file names. The index keeps no word positions, so
        a quoted phrase ('"three stooges"') is ranked by its words: LanceDB refuses a phrase query outright
        (text search's literal retriever matches the phrase itself)."""
        query = (
            self._table.search(text.replace('"', " "), query_type="fts", fts_columns="search_text")
            .select([*RECORD_COLUMNS, "_score"])
            .limit(limit)
        )
        if where:
            query = query.where(where, prefilter=True)
        return _run(query, where)

    def thumbnail(self, record_id: str) -> bytes | None:
        rows = self.get([record_id], columns=["id", "thumbnail"])
        return rows[0]["thumbnail"] if rows else None

    def vector_of(self, record_id: str, column: str = "image_vector") -> np.ndarray | None:
        rows = self.get([record_id], columns=["id", column])
        return np.asarray(rows[0][column], dtype=np.float32) if rows else None


def _with_new_columns(location: IndexLocation, info: IndexInfo, table: lancedb.table.Table) -> lancedb.table.Table:
    """The table with any column this version of Loupe added since it was built, empty until re-indexed.

    Only derived columns are ever added this way (store/schema.py), so an old index keeps working and
    `loupe index` fills them from what is stored.
    """
    missing = [f for f in image_table_schema(info) if f.name not in table.schema.names]
    if missing:
        with _writing(location, "adding columns"):
            table.add_columns(missing)
    return table



def vector_matrix(column: pa.ChunkedArray, dim: int) -> np.ndarray:
    """A fixed-size-list vector column as a rows x dim float32 matrix, without a Python list per row."""
    flat = column.combine_chunks().flatten() if len(column) else pa.array([], pa.float32())
    return flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)


def sql_string(value: str) -> str:
    """Quote a value as an SQL string literal for LanceDB filters."""
    return "'" + value.replace("'", "''") + "'"


def _describe(info: IndexInfo) -> str:
    return (
        f"image encoder {info.image_encoder} ({info.image_dim}-d) and text embedder "
        f"{info.text_embedder} ({info.text_dim}-d)"
    )
