"""The LanceDB table on its own: upserts keyed on path, deletes, quoting, and the vector index."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from loupe.evals.bench import synthetic_rows
from loupe.store.filters import InvalidConditionError, where_clause
from loupe.store.image_table import ImageTable, InvalidFilterError
from loupe.store.schema import IndexInfo
from tests.conftest import holidays_files
from loupe.tools.image_file import hamming_distances, read_image

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier

INFO = IndexInfo("efficientnet-lite0", 1280, "all-MiniLM-L6-v2", 384, "rapidocr", "tags")


def _table(tmp_path: Path, rows: int) -> ImageTable:
    random.seed(0)
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    table.upsert(synthetic_rows(0, rows, INFO, np.random.default_rng(0)))
    return table


def test_upsert_replaces_by_path_and_delete_handles_quotes(tmp_path: Path) -> None:
    table = _table(tmp_path, 20)
    row = table.find("true", limit=1, columns=None)[0]
    changed = synthetic_rows(0, 1, INFO, np.random.default_rng(1))[0]
    changed["title"] = "replaced"
    table.upsert([changed])
    assert table.count() == 20
    assert table.get([changed["id"]])[0]["title"] == "replaced"

    odd = synthetic_rows(100, 1, INFO, np.random.default_rng(2))[0]
    odd["path"] = "/photos/O'Brien's \"best\" %_photo.jpg"
    table.upsert([odd])
    assert table.count() == 21
    table.delete_paths([odd["path"], row["path"]])
    assert table.count() == 19 and table.get([odd["id"]]) == []


def test_get_keeps_the_order_asked_for(tmp_path: Path) -> None:
    table = _table(tmp_path, 10)
    ids = [r["id"] for r in table.find("true", limit=10, columns=["id"])]
    wanted = [ids[7], ids[2], "missing", ids[5]]
    assert [r["id"] for r in table.get(wanted)] == [ids[7], ids[2], ids[5]]


def test_bad_filter_is_a_user_error(tmp_path: Path) -> None:
    table = _table(tmp_path, 5)
    with pytest.raises(InvalidFilterError, match="year = = 3"):
        table.find("year = = 3")


def test_vector_index_is_built_and_used_above_the_threshold(tmp_path: Path) -> None:
    table = _table(tmp_path, 3000)
    probe = table.find("true", limit=3, columns=["id", "image_vector", "year"])
    table.finish_writes(vector_index_min_rows=1000)
    kinds = table.indexes()
    assert kinds["image_vector"] == "IvfPq" and kinds["search_text"] == "FTS"
    for row in probe:
        vector = np.asarray(row["image_vector"], np.float32)
        hits = table.vector_search("image_vector", vector, 5)
        assert hits[0]["id"] == row["id"] and hits[0]["_distance"] < 1e-3  # re-ranked exactly
        filtered = table.vector_search("image_vector", vector, 5, where=f"year = {row['year']}")
        assert filtered[0]["id"] == row["id"] and all(h["year"] == row["year"] for h in filtered)


@pytest.mark.parametrize("conditions, sql", [
    ([{"column": "year", "op": "=", "value": 2019}], "year = 2019"),
    ([{"column": "year", "op": "in", "value": [2018, "2019"]}, {"column": "price", "op": "is set"}],
     "(year IN (2018, 2019)) AND (price IS NOT NULL)"),
    ([{"column": "title", "op": "=", "value": "O'Hara's"}], "title = 'O''Hara''s'"),
    ([{"column": "file_name", "op": "not contains", "value": "Screen Shot"}],
     "(file_name IS NULL OR NOT strpos(lower(file_name), 'screen shot') > 0)"),
    ([], ""),
])
def test_typed_conditions_compile_to_quoted_sql(conditions: list, sql: str) -> None:
    assert where_clause(conditions) == sql


@pytest.mark.parametrize("condition, message", [
    ({"column": "path", "op": "=", "value": "/etc/passwd"}, "cannot filter on"),
    ({"column": "year", "op": "=", "value": "2019 OR 1=1"}, "takes a number"),
    ({"column": "year", "op": "=", "value": 2019.5}, "whole number"),
    ({"column": "price", "op": "<", "value": float("nan")}, "takes a number"),
    ({"column": "year", "op": "; DROP", "value": 1}, "unknown filter operator"),
    ({"column": "title", "op": "=", "value": "x\x00y"}, "control characters"),
    ({"column": "year", "op": "contains", "value": "20"}, "text columns"),
    ({"column": "year", "op": "in", "value": []}, "1 to 50 values"),
    ("year = 2019", "needs column and op"),
])
def test_hostile_conditions_are_refused(condition, message: str) -> None:
    with pytest.raises(InvalidConditionError, match=message):
        where_clause([condition])


def test_an_index_built_before_the_derived_columns_gets_them_and_keeps_its_rows(tmp_path: Path) -> None:
    """An older index opens with the new columns empty; `loupe index` fills them without a model."""
    import lancedb
    import pyarrow as pa

    from loupe.base.config import Settings
    from loupe.indexer import Indexer
    from loupe.store.schema import DERIVED_COLUMNS, TABLE_NAME, image_table_schema

    index = tmp_path / "index"
    index.mkdir()
    INFO.save(index)
    old_schema = pa.schema([f for f in image_table_schema(INFO) if f.name not in DERIVED_COLUMNS])
    rows = synthetic_rows(0, 3, INFO, np.random.default_rng(0))
    rows[0]["ocr_text"] = rows[0]["search_text"] = "MR. D.I.Y. (M) SDN BHD\nDATE: 05/03/2018"
    photo = read_image(holidays_files(1)[0], 10**8)
    rows[0]["thumbnail"] = photo.thumbnail_jpeg()
    lancedb.connect(index).create_table(TABLE_NAME, data=pa.Table.from_pylist(rows, schema=old_schema))

    table = ImageTable.open(index)
    assert set(DERIVED_COLUMNS) <= set(table._table.schema.names) and table.count() == 3
    assert table.find("folded_text IS NULL", limit=5, columns=["id"]) != []

    report = Indexer(Settings(index_dir=index), None, table).run([])
    assert report.derived_filled == 3 and table.count() == 3
    filled = table.get([rows[0]["id"]], columns=["id", "date", "folded_text", "rotated_phashes"])[0]
    assert filled["date"] == "2018-03-05" and filled["folded_text"].startswith("mr d i y m sdn bhd")
    # the turned hashes, read from the thumbnail, are within a few bits of the full picture's
    assert max(hamming_distances(full, np.array([thumb]))[0]
               for full, thumb in zip(photo.rotated_phashes, filled["rotated_phashes"])) <= 4
    assert table.get([rows[1]["id"]], columns=["id", "rotated_phashes"])[0]["rotated_phashes"] == []
    assert Indexer(Settings(index_dir=index), None, table).run([]).derived_filled == 0  # once only


def test_a_second_writer_on_one_index_stops_with_one_line_and_readers_go_on(tmp_path: Path) -> None:
    from loupe.base.config import Settings
    from loupe.indexer import Indexer
    from loupe.store.image_table import IndexBusyError

    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    table.append(synthetic_rows(0, 5, INFO, np.random.default_rng(0)))
    with table.writing_lock():  # as a running `loupe index` holds it
        with pytest.raises(IndexBusyError, match="another process is indexing into"):
            Indexer(Settings(index_dir=tmp_path / "index"), None, ImageTable.open(tmp_path / "index")).run([])
        assert ImageTable.open(tmp_path / "index").count() == 5
    assert Indexer(Settings(index_dir=tmp_path / "index"), None, table).run([]).unchanged == 0  # free again


def test_repeated_image_searches_read_the_vectors_once_and_find_what_lancedb_finds(tmp_path: Path) -> None:
    """Below the vector index's size LanceDB reads every vector from disk per search; from a process's second
    image search on they are kept in memory per table version, with the same rows and distances."""
    table = _table(tmp_path, 300)
    blank = {**synthetic_rows(300, 1, INFO, np.random.default_rng(3))[0], "image_vector": np.zeros(1280, np.float32)}
    table.append([blank])  # a zero vector has no direction: never a neighbour
    query = np.random.default_rng(4).standard_normal(1280).astype(np.float32)
    lancedb_rows = table._nearest("image_vector", query, 20, None, ["orb_keypoints"]).to_list()
    first = table.vector_search("image_vector", query, 20, extra_columns=["orb_keypoints"])  # LanceDB's query
    kept = table.vector_search("image_vector", query, 20, extra_columns=["orb_keypoints"])  # from memory
    assert table._unit_vectors["image_vector"][1].count(blank["id"]) == 0
    for found in (first, kept):
        assert [row["id"] for row in found] == [row["id"] for row in lancedb_rows]
        assert np.allclose([row["_distance"] for row in found], [row["_distance"] for row in lancedb_rows], atol=1e-6)
        assert set(found[0]) == set(lancedb_rows[0])
    added = {**synthetic_rows(400, 1, INFO, np.random.default_rng(5))[0], "image_vector": query}
    table.append([added])  # a new table version: read again
    assert table.vector_search("image_vector", query, 1)[0]["id"] == added["id"]
    table.delete_paths([row["path"] for row in lancedb_rows[:3]])  # rows read by offset: the offsets move
    lancedb_rows = table._nearest("image_vector", query, 20, None, ["orb_keypoints"]).to_list()
    first = table.vector_search("image_vector", query, 20, extra_columns=["orb_keypoints"])
    table.get = None  # the rows of a kept version are taken by their offsets, not looked up by id
    for found in (first, table.vector_search("image_vector", query, 20, extra_columns=["orb_keypoints"])):
        assert [row["id"] for row in found] == [row["id"] for row in lancedb_rows]
        assert [row["orb_keypoints"] for row in found] == [row["orb_keypoints"] for row in lancedb_rows]


def test_repeated_text_searches_leave_out_rows_without_text_as_lancedb_does(tmp_path: Path) -> None:
    """The OCR-text vectors are kept in memory too; a row without text (a zero vector) is never a neighbour."""
    table = _table(tmp_path, 300)
    blank = {**synthetic_rows(300, 1, INFO, np.random.default_rng(3))[0], "has_text": False, "ocr_text": "",
             "ocr_vector": np.zeros(INFO.text_dim, np.float32)}
    table.append([blank])
    query = np.random.default_rng(6).standard_normal(INFO.text_dim).astype(np.float32)
    lancedb_rows = table._nearest("ocr_vector", query, 301, "has_text", None).to_list()
    first = table.vector_search("ocr_vector", query, 301)  # LanceDB's query, with its has_text condition
    kept = table.vector_search("ocr_vector", query, 301)  # from memory
    assert "ocr_vector" in table._unit_vectors and len(lancedb_rows) == 300
    for found in (first, kept):
        assert [row["id"] for row in found] == [row["id"] for row in lancedb_rows]
        assert np.allclose([row["_distance"] for row in found], [row["_distance"] for row in lancedb_rows], atol=1e-6)
    bare = table.vector_search("ocr_vector", query, 5, ids_only=True)  # what text search fuses: ids, no columns
    filtered = table.vector_search("ocr_vector", query, 5, where="has_text", ids_only=True)  # LanceDB's query
    assert [set(row) for row in bare + filtered] == [{"id", "_distance"}] * 10
    assert [row["id"] for row in bare] == [row["id"] for row in filtered] == [row["id"] for row in kept[:5]]
