"""Index, search and ask over a real LanceDB table in seconds, with the fake models of tests/fakes.py.

The fast tier (``python -m pytest -m fast``) runs this beside the model-free tests; the real-model suite
checks the same paths with the real models.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loupe.agent.assistant import Assistant
from loupe.base.config import Settings
from loupe.indexer import Indexer
from loupe.metadata import load_metadata
from loupe.store.image_table import ImageTable
from tests.fakes import fake_models
from loupe.tools.boundary import ChosenFile, PathRefused
from loupe.tools.toolbox import Toolbox

pytestmark = pytest.mark.fast
RECEIPT_SIZE = (300, 500)


def _pattern(seed: int) -> Image.Image:
    blocks = np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((320, 240), Image.Resampling.NEAREST)


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory: pytest.TempPathFactory) -> Toolbox:
    root = tmp_path_factory.mktemp("fast")
    collection = root / "collection"
    collection.mkdir()
    for seed in (1, 2, 3):
        _pattern(seed).save(collection / f"pattern_{seed}.png")
    (collection / "pattern_1_copy.png").write_bytes((collection / "pattern_1.png").read_bytes())
    Image.new("RGB", RECEIPT_SIZE, "white").save(collection / "receipt.png")
    (root / "meta.csv").write_text("file,title,date\nreceipt.png,Bookshop receipt,2019-03-02\n", encoding="utf-8")
    settings = Settings(index_dir=root / "index", offline=True)
    models = fake_models(settings, {RECEIPT_SIZE: ["CORNER BOOKSHOP", "TOTAL 12.50"]})
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    report = Indexer(settings, models, table).run([collection], metadata=load_metadata(root / "meta.csv"))
    assert report.added == 5 and report.problems == []
    return Toolbox(settings, models)


def test_a_rerun_indexes_nothing_again(toolbox: Toolbox) -> None:
    table = toolbox.table
    settings = toolbox.settings
    folder = Path(table.find("true", limit=1, columns=["path"])[0]["path"]).parent
    report = Indexer(settings, toolbox.models, table).run([folder])
    assert (report.added, report.updated, report.unchanged) == (0, 0, 5)


def test_a_recompressed_copy_is_a_near_duplicate(toolbox: Toolbox, tmp_path: Path) -> None:
    query = tmp_path / "query.jpg"
    _pattern(2).resize((160, 120)).save(query, quality=60)
    result = toolbox.image_search(image=ChosenFile(query), k=3)
    assert result.records[0].file_name == "pattern_2.png" and result.records[0].match == "near-duplicate"


def test_the_printed_text_finds_the_receipt(toolbox: Toolbox) -> None:
    result = toolbox.text_search("corner bookshop", k=3)
    assert result.records[0].file_name == "receipt.png" and "CORNER BOOKSHOP" in result.records[0].matched_text


def test_the_agent_finds_then_narrows_with_a_typed_filter(toolbox: Toolbox) -> None:
    assistant = Assistant(dataclasses.replace(toolbox.settings), toolbox=toolbox)
    first = assistant.ask("find the receipt from CORNER BOOKSHOP", thread_id="fast")
    narrowed = assistant.ask("only the ones from 2018", thread_id="fast")
    assistant.close()
    assert [s["tool"] for s in first.trace] == ["text_search"] and first.records[0].file_name == "receipt.png"
    assert narrowed.trace[0]["args"]["filters"] == [{"column": "year", "op": "=", "value": 2018}]
    assert narrowed.records == []  # the receipt is from 2019


def test_an_upload_is_searched_as_bytes(toolbox: Toolbox) -> None:
    buffer = io.BytesIO()
    _pattern(3).save(buffer, "PNG")
    assistant = Assistant(toolbox.settings, toolbox=toolbox)
    answer = assistant.ask("where else does this photo appear?", image=buffer.getvalue(), thread_id="upload")
    assistant.close()
    assert answer.trace[0]["args"]["image"] == "attached"
    assert answer.records[0].file_name == "pattern_3.png" and answer.records[0].match == "identical"


def test_a_path_outside_the_collection_is_refused(toolbox: Toolbox, tmp_path: Path) -> None:
    outside = tmp_path / "private.png"
    _pattern(9).save(outside)
    with pytest.raises(PathRefused):
        toolbox.ocr(image=str(outside))
