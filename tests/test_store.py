"""The LanceDB table on its own: upserts keyed on path, deletes, quoting, and the vector index."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from evals.bench import synthetic_rows
from store.image_table import ImageTable, InvalidFilterError
from store.schema import IndexInfo

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
