"""Fields read from printed text follow the reading rules of today, also in an index built under older ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PIL import Image

from loupe.base.config import Settings
from loupe.indexer import Indexer
from loupe.store.image_table import ImageTable
from loupe.store.schema import IndexInfo
from loupe.tools.document_fields import FIELDS_VERSION
from tests.fakes import fake_models

pytestmark = pytest.mark.fast
RECEIPT_SIZE = (300, 500)


def test_an_index_read_under_older_rules_is_read_again_once(tmp_path: Path) -> None:
    collection = tmp_path / "collection"
    collection.mkdir()
    Image.new("RGB", RECEIPT_SIZE, "white").save(collection / "receipt.png")
    settings = Settings(index_dir=tmp_path / "index", offline=True)
    models = fake_models(settings, {RECEIPT_SIZE: ["CORNER BOOKSHOP", "12 Harbour Street", "15/01/2018",
                                                   "TOTAL 12.50"]})
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    Indexer(settings, models, table).run([collection])
    assert IndexInfo.load(settings.index_dir).fields_version == FIELDS_VERSION
    row = table.find("true", limit=1)[0]
    assert (row["shop"], row["year"], row["total"]) == ("CORNER BOOKSHOP", 2018, 12.5)
    assert (row["items"], row["printed_title"]) == ("[]", "")  # read: no item lines; a receipt's title is its shop

    # As an older Loupe left it: a misread shop and year, and no version recorded.
    table._table.update(where="true", values={"shop": "12 HARBOUR", "year": 2006, "total": None})
    dataclasses.replace(table.info, fields_version=0).save(settings.index_dir)
    reopened = ImageTable.open_or_create(settings.index_dir, models.index_info())
    assert reopened.info.fields_version == 0  # opening keeps what the rows were computed with
    report = Indexer(settings, models, reopened).run([collection])
    fixed = reopened.find("true", limit=1)[0]
    assert (fixed["shop"], fixed["year"], fixed["total"]) == ("CORNER BOOKSHOP", 2018, 12.5)
    assert report.derived_filled == 1 and IndexInfo.load(settings.index_dir).fields_version == FIELDS_VERSION
    assert Indexer(settings, models, reopened).run([collection]).derived_filled == 0  # once, not every run
