"""Results before words: the records a question's tools found reach the caller before the model writes its words.

Over a real LanceDB table with the fake models of tests/fakes.py (the fast tier). The planner below is the
rule-based one, noting when it is asked for its words: a record seen by the caller after that moment was not
streamed, only handed over with the answer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from langchain_core.messages import ToolMessage
from mcp import Client
from PIL import Image
from pydantic import Field

from loupe.agent.assistant import Answer, Assistant, Found
from loupe.agent.planner import RuleBasedPlanner
from loupe.api import Collection
from loupe.base.config import Settings
from loupe.base.errors import ImageRejected
from loupe.indexer import Indexer
from loupe.mcp_server import build_server
from loupe.store.image_table import ImageTable
from loupe.tools.boundary import PathRefused
from loupe.tools.toolbox import Toolbox
from tests.fakes import fake_models

pytestmark = pytest.mark.fast
RECEIPT_SIZE = (300, 500)
QUESTION = "find the receipt from CORNER BOOKSHOP"


class WatchedPlanner(RuleBasedPlanner):
    """The rule-based planner, noting the time of each call that writes words after tool results."""

    asked_for_words: list[float] = Field(default_factory=list)

    def _generate(self, messages: list, *args: Any, **kwargs: Any):
        result = super()._generate(messages, *args, **kwargs)
        if isinstance(messages[-1], ToolMessage) and not result.generations[0].message.tool_calls:
            self.asked_for_words.append(time.perf_counter())
        return result


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory: pytest.TempPathFactory) -> Toolbox:
    root = tmp_path_factory.mktemp("streaming")
    photos = root / "photos"
    photos.mkdir()
    blocks = np.random.default_rng(7).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(blocks).resize((320, 240), Image.Resampling.NEAREST).save(photos / "pattern.png")
    Image.new("RGB", RECEIPT_SIZE, "white").save(photos / "receipt.png")
    settings = Settings(index_dir=root / "index", offline=True)
    models = fake_models(settings, {RECEIPT_SIZE: ["CORNER BOOKSHOP", "TOTAL 12.50"]})
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    assert Indexer(settings, models, table).run([photos]).added == 2
    return Toolbox(settings, models)


def _collection(toolbox: Toolbox, planner: RuleBasedPlanner, outside_paths: bool = True) -> Collection:
    """A collection whose agent thinks with ``planner``."""
    collection = Collection(toolbox.settings, outside_paths=outside_paths, toolbox=toolbox)
    collection.__dict__["assistant"] = Assistant(toolbox.settings, model=planner, toolbox=toolbox)
    return collection


def test_the_records_arrive_before_the_model_writes_its_words(toolbox: Toolbox) -> None:
    planner = WatchedPlanner()
    with _collection(toolbox, planner) as collection:
        received = []
        for event in collection.stream(QUESTION, thread="api"):
            received.append((event, time.perf_counter()))
    (found, found_at), (answer, _) = received
    assert isinstance(found, Found) and isinstance(answer, Answer)
    assert [r.file_name for r in found.records] == ["receipt.png"] and found.trace[0]["tool"] == "text_search"
    assert found_at < planner.asked_for_words[0]  # on the caller's side while the words were not yet asked for
    assert [r.id for r in found.records] == [r.id for r in answer.records] and found.seconds < answer.seconds


def test_ask_is_the_stream_read_to_its_end(toolbox: Toolbox) -> None:
    with _collection(toolbox, RuleBasedPlanner()) as collection:
        answer = collection.ask(QUESTION, thread="ask")
        narrowed = list(collection.stream("only the ones from 2018", thread="ask"))
    assert isinstance(answer, Answer) and answer.records[0].file_name == "receipt.png"
    assert [type(event) for event in narrowed] == [Answer]  # nothing found: no records to show first
    assert narrowed[0].records == [] and narrowed[0].trace[0]["args"]["filters"][0]["value"] == 2018


def test_a_rejected_image_is_refused_before_anything_runs(toolbox: Toolbox, tmp_path: Path) -> None:
    planner = WatchedPlanner()
    with _collection(toolbox, planner, outside_paths=False) as collection:
        with pytest.raises(ImageRejected, match="not an image"):
            collection.stream("what is this?", image=b"\xff\xd8 not a jpeg")  # raised here, not when read
        outside = tmp_path / "elsewhere.png"
        Image.new("RGB", (32, 32)).save(outside)
        with pytest.raises(PathRefused):
            collection.stream("what is this?", image=outside)
    assert planner.asked_for_words == []


def test_the_mcp_ask_sends_the_records_as_progress_before_its_result(toolbox: Toolbox) -> None:
    planner = WatchedPlanner()
    progress: list[tuple[float, float | None, str, int]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message or "", len(planner.asked_for_words)))

    async def ask() -> Any:
        async with Client(build_server(collection)) as client:
            return await client.call_tool("ask", {"question": QUESTION, "thread": "mcp"}, progress_callback=on_progress)

    with _collection(toolbox, planner, outside_paths=False) as collection:
        result = anyio.run(ask)
    assert not result.is_error, result.content
    [(done, total, message, words_written)] = progress
    assert (done, total, words_written) == (1, 2, 0)  # sent while the model had not yet written its words
    record = result.structured_content["records"][0]
    assert message.startswith("found 1 record in ") and f"#1 receipt.png (id {record['id']})" in message
