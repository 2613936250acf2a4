"""``loupe mcp`` through the MCP SDK's own client: in process, over stdio and over streamable HTTP.

One small real index (Holidays photos and SROIE receipts, real models) is served three ways; every test runs
against each. Files that must never be read lie outside the indexed folder; in process, the audit hook of
tests/test_boundary.py records every ``open`` and none of them may be among them.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from PIL import Image

from loupe.api import Collection
from loupe.mcp_server import build_server, encoded_size
from tests.conftest import HOLIDAYS, SROIE
from tests.test_boundary import recording
from loupe.tools.models import Models
from loupe.tools.toolbox import Toolbox

REPO = Path(__file__).resolve().parents[1]
TOOLS = {"image_search", "text_search", "stats", "ocr", "caption", "ask"}
PHOTOS = ("100000.jpg", "100001.jpg", "100200.jpg")  # 100000 and 100001 show the same scene
RECEIPTS = {"receipt_000.jpg": "000", "receipt_001.jpg": "001"}  # 001 is INDAH GIFT & HOME DECO's
IN_PROCESS_UPLOAD_LIMIT = 50_000  # the photos are 13-23 kB, the receipts 86-98 kB
TRANSPORTS = ("in-process", "stdio", "http")


@dataclass
class World:
    index: Path
    photos: Path
    secret: Path  # a picture outside the indexed folder
    ids: dict[str, str]  # file name -> record id


@dataclass
class Connected:
    """One MCP client session, driven from the test's thread through an anyio portal."""

    transport: str
    portal: BlockingPortal
    client: Client

    def call(self, tool: str, **arguments: Any) -> CallToolResult:
        return self.portal.call(self.client.call_tool, tool, arguments)

    def read(self, uri: str) -> Any:
        return self.portal.call(self.client.read_resource, uri)

    def error(self, tool: str, **arguments: Any) -> str:
        """The tool error's text (the call must fail)."""
        result = self.call(tool, **arguments)
        assert result.is_error, result
        return result.content[0].text


@pytest.fixture(scope="module")
def world(models: Models, tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("mcp")
    photos = base / "photos"
    photos.mkdir()
    for name in PHOTOS:
        shutil.copyfile(HOLIDAYS / "images" / name, photos / name)
    for name, receipt in RECEIPTS.items():
        shutil.copyfile(SROIE / "images" / f"{receipt}.jpg", photos / name)
    private = base / "private"
    private.mkdir()
    secret = private / "secret.jpg"
    shutil.copyfile(HOLIDAYS / "images" / "100002.jpg", secret)
    settings = dataclasses.replace(models.settings, index_dir=base / "index")
    report = Collection(settings, toolbox=Toolbox(settings, models)).index([photos])
    assert report.problems == [] and report.added == len(PHOTOS) + len(RECEIPTS)
    (photos / "link.jpg").symlink_to(secret)  # inside the folder, pointing out of it
    table = Toolbox(settings, models).table
    ids = {row["file_name"]: row["id"] for row in table.find("true", columns=["id", "file_name"])}
    return World(settings.index_dir, photos, secret, ids)


@pytest.fixture(scope="module", params=TRANSPORTS)
def session(request: pytest.FixtureRequest, world: World, models: Models) -> Iterator[Connected]:
    """One server per transport for the module (models load once per server process)."""
    with start_blocking_portal() as portal, ExitStack() as stack:
        target = stack.enter_context(_server(request.param, world, models))
        # Both protocol eras: the initialize handshake (2025-11-25, what desktop clients speak), in process
        # over the SDK's in-memory streams and over HTTP; over stdio, what this SDK negotiates (2026-07-28).
        mode = "auto" if request.param == "stdio" else "legacy"
        client = stack.enter_context(portal.wrap_async_context_manager(Client(target, mode=mode,
                                                                              read_timeout_seconds=300)))
        yield Connected(request.param, portal, client)


@contextmanager
def _server(transport: str, world: World, models: Models) -> Iterator[Any]:
    """What the client connects to: the server object, a stdio subprocess, or an HTTP subprocess's URL."""
    if transport == "in-process":  # the tests' models; a small upload limit
        settings = dataclasses.replace(models.settings, index_dir=world.index, max_upload_bytes=IN_PROCESS_UPLOAD_LIMIT)
        with Collection(settings, outside_paths=False, toolbox=Toolbox(settings, models)) as collection:
            yield build_server(collection)
    elif transport == "stdio":
        with (world.index.parent / "stdio-server.log").open("w") as log:
            yield stdio_client(StdioServerParameters(command=sys.executable, args=_loupe(world, "mcp"), cwd=REPO,
                                                     env={"LOUPE_OFFLINE": "1"}), errlog=log)
    else:
        with _http_server(world) as url:
            yield streamable_http_client(url)


def _loupe(world: World, *args: str) -> list[str]:
    return ["-m", "loupe.cli", "--index", str(world.index), *args]


@contextmanager
def _http_server(world: World) -> Iterator[str]:
    port = _free_port()
    log_path = world.index.parent / "http-server.log"
    env = {**os.environ, "LOUPE_OFFLINE": "1"}
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, *_loupe(world, "mcp", "--transport", "http", "--port", str(port))],
                                   cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(port, process, log_path)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"loupe mcp exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"loupe mcp did not listen on port {port} within {timeout} s:\n{log.read_text()[-3000:]}")


def _upload(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _files(result: CallToolResult) -> list[str]:
    return [record["file_name"] for record in result.structured_content["records"]]


def test_the_six_tools_and_the_record_resources_are_listed(session: Connected) -> None:
    tools = session.portal.call(session.client.list_tools).tools
    assert session.client.protocol_version == ("2026-07-28" if session.transport == "stdio" else "2025-11-25")
    assert {tool.name for tool in tools} == TOOLS
    for tool in tools:
        assert len(tool.description) > 80, tool.name  # what a client's model reads to pick a tool
        assert "where" not in tool.input_schema["properties"]  # no SQL for a model to write
    image_tools = [tool for tool in tools if tool.name not in ("text_search", "stats")]
    assert all({"path", "upload_base64", "record_id"} <= set(tool.input_schema["properties"]) for tool in image_tools)
    templates = session.portal.call(session.client.list_resource_templates).resource_templates
    assert {(t.uri_template, t.mime_type) for t in templates} == {
        ("loupe://records/{record_id}", "application/json"), ("loupe://records/{record_id}/thumbnail", "image/jpeg")}


def test_image_search_by_record_id(session: Connected, world: World) -> None:
    result = session.call("image_search", record_id=world.ids["100000.jpg"], k=3)
    assert not result.is_error, result.content
    assert "100000.jpg" not in _files(result)  # "more like this one": the record itself is left out
    first = result.structured_content["records"][0]
    assert (first["file_name"], first["match"]) == ("100001.jpg", "similar")  # the same scene, another shot
    assert result.content[0].text.startswith("image_search: ") and "#1 100001.jpg" in result.content[0].text


def test_image_search_by_a_path_inside_the_collection(session: Connected, world: World) -> None:
    result = session.call("image_search", path=str(world.photos / "100200.jpg"), k=3)
    assert not result.is_error, result.content
    first = result.structured_content["records"][0]
    assert (first["file_name"], first["match"]) == ("100200.jpg", "identical")


def test_image_search_by_an_upload(session: Connected, world: World) -> None:
    result = session.call("image_search", upload_base64=_upload(HOLIDAYS / "images" / "100001.jpg"), k=3, year=None)
    assert not result.is_error, result.content
    assert result.structured_content["records"][0]["file_name"] == "100001.jpg"
    assert result.structured_content["records"][0]["match"] == "identical"


def test_text_search_finds_the_receipt_by_its_printed_words(session: Connected) -> None:
    result = session.call("text_search", query="INDAH GIFT HOME DECO", k=3)
    assert not result.is_error, result.content
    first = result.structured_content["records"][0]
    assert first["file_name"] == "receipt_001.jpg" and first["match"] == "text match"
    assert "INDAH GIFT" in first["matched_text"]
    assert len(first["ocr_text"]) <= 2_003  # records carry at most 2,000 characters of OCR text
    assert "#1 receipt_001.jpg" in result.content[0].text


def test_text_search_takes_a_year_not_sql(session: Connected) -> None:
    in_2018 = session.call("text_search", query="INDAH GIFT HOME DECO", year=2018)
    assert _files(in_2018)[0] == "receipt_001.jpg"  # the receipt's printed date
    in_2019 = session.call("text_search", query="INDAH GIFT HOME DECO", year=2019)
    assert not in_2019.is_error and _files(in_2019) == []
    assert in_2019.content[0].text.startswith("text_search: nothing matched")
    assert "Input should be a valid integer" in session.error("text_search", query="gift", year="2019 OR 1=1")


def test_stats_gives_exact_figures_over_every_receipt(session: Connected) -> None:
    """The collection's figures as the agent's aggregate tool computes them: the count, the records behind it."""
    counted = session.call("stats", measure="count")
    assert not counted.is_error, counted.content
    figure = counted.structured_content["figure"]
    assert figure["measure"] == "count" and figure["value"] == figure["selected"] >= len(RECEIPTS)
    at_shop = session.call("stats", measure="sum", shop="INDAH GIFT")
    assert at_shop.structured_content["figure"]["ids"] and "INDAH GIFT" in at_shop.content[0].text
    assert "Input should be" in session.error("stats", measure="sum; DROP TABLE images")
    hostile = session.call("stats", measure="count", shop="x' OR 1=1 --")  # a name matched as text, never SQL
    assert not hostile.is_error and hostile.structured_content["figure"]["value"] == 0


def test_ocr_of_a_record(session: Connected, world: World) -> None:
    result = session.call("ocr", record_id=world.ids["receipt_001.jpg"])
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["from_index"] is True and "INDAH GIFT" in data["text"] and data["lines"]
    assert "INDAH GIFT" in result.content[0].text


def test_caption_of_a_file_in_the_collection(session: Connected, world: World) -> None:
    result = session.call("caption", path=str(world.photos / "100000.jpg"))
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["kind"] == "tags" and data["text"] and data["from_index"] is False
    assert data["text"] in result.content[0].text


def test_ask_the_agent_in_words(session: Connected) -> None:
    result = session.call("ask", question="receipts from indah gift", thread=f"words-{session.transport}")
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["records"][0]["file_name"] == "receipt_001.jpg"
    assert "receipt_001.jpg" in data["text"] and result.content[0].text == data["text"]
    assert [step["tool"] for step in data["trace"]] == ["text_search"]


def test_ask_sends_the_records_as_progress_before_its_result(session: Connected) -> None:
    progress: list[tuple[float, float | None, str]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message or ""))

    arguments = {"question": "receipts from indah gift", "thread": f"progress-{session.transport}"}
    result = session.portal.call(partial(session.client.call_tool, "ask", arguments, progress_callback=on_progress))
    assert not result.is_error, result.content
    [(done, total, message)] = progress  # one batch of records: the text search's
    first = result.structured_content["records"][0]
    assert (done, total) == (1, 2) and message.startswith("found ")
    assert f"#1 {first['file_name']} (id {first['id']})" in message and first["file_name"] == "receipt_001.jpg"


def test_ask_the_agent_about_an_uploaded_photo(session: Connected) -> None:
    result = session.call("ask", question="where else does this photo appear?",
                      upload_base64=_upload(HOLIDAYS / "images" / "100000.jpg"), thread=f"photo-{session.transport}")
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["records"][0]["file_name"] == "100000.jpg" and data["records"][0]["match"] == "identical"
    assert data["trace"][0]["tool"] == "image_search"


def test_ask_the_agent_about_a_record(session: Connected, world: World) -> None:
    result = session.call("ask", question="where else does this photo appear?", record_id=world.ids["100200.jpg"],
                          thread=f"record-{session.transport}")
    assert not result.is_error, result.content
    assert result.structured_content["records"][0]["file_name"] == "100200.jpg"


def test_a_record_is_a_resource(session: Connected, world: World) -> None:
    record_id = world.ids["receipt_000.jpg"]
    metadata = session.read(f"loupe://records/{record_id}").contents[0]
    assert metadata.mime_type == "application/json"
    record = json.loads(metadata.text)
    assert (record["id"], record["file_name"]) == (record_id, "receipt_000.jpg")
    assert record["metadata"]["total"] == pytest.approx(9.00) and len(record["ocr_text"]) <= 2_003
    thumbnail = session.read(f"loupe://records/{record_id}/thumbnail").contents[0]
    assert thumbnail.mime_type == "image/jpeg"
    with Image.open(io.BytesIO(base64.b64decode(thumbnail.blob))) as image:
        assert image.format == "JPEG" and max(image.size) <= 256


def test_a_path_outside_the_collection_is_refused_whether_or_not_it_exists(session: Connected, world: World) -> None:
    missing = world.secret.with_name("missing.jpg")
    link = world.photos / "link.jpg"
    with recording() as opened:
        refusals = {str(path): [session.error(tool, path=str(path)) for tool in ("image_search", "ocr", "caption")]
                    + [session.error("ask", question="what is this?", path=str(path))]
                    for path in (world.secret, missing, link, Path("/etc/passwd"))}
        inside = session.call("caption", path=str(world.photos / "100001.jpg"))
    assert not inside.is_error, inside.content
    if session.transport == "in-process":  # the other servers run in their own process
        assert [p for p in opened if str(world.secret.parent) in p or p == "/etc/passwd"] == []
        assert str(world.photos / "100001.jpg") in opened  # the hook does see what the server reads
    generic = {path: [text.replace(repr(path), "PATH") for text in texts] for path, texts in refusals.items()}
    assert generic[str(world.secret)] == generic[str(missing)] == generic[str(link)] == generic["/etc/passwd"]
    message = generic[str(missing)][0]
    assert message == ("Error executing tool image_search: refused PATH: Loupe reads only the attached image, "
                       "indexed records, and files inside the indexed folders")
    assert all("\n" not in text and "Traceback" not in text for texts in refusals.values() for text in texts)


def test_a_missing_record_id_is_a_clear_error(session: Connected) -> None:
    for tool in ("image_search", "ocr", "caption"):
        assert session.error(tool, record_id="0000000000000000") == (
            f"Error executing tool {tool}: no record with id 0000000000000000 in the index")
    assert "no record with id 0000000000000000" in session.error("ask", question="more like this", record_id="0" * 16)
    for uri in ("loupe://records/0000000000000000", "loupe://records/0000000000000000/thumbnail"):
        with pytest.raises(MCPError, match="no record with id '?0000000000000000"):
            session.read(uri)


def test_an_image_is_given_exactly_one_way(session: Connected, world: World) -> None:
    both = session.error("ocr", path=str(world.photos / "100000.jpg"), record_id=world.ids["100000.jpg"])
    assert both == ("Error executing tool ocr: give exactly one of path, upload_base64 or record_id "
                    "(got path and record_id)")
    assert session.error("caption").endswith("give exactly one of path, upload_base64 or record_id")
    assert session.error("image_search", upload_base64="not base64!") == (
        "Error executing tool image_search: upload_base64 is not valid base64")


def test_an_oversized_upload_is_refused(session: Connected) -> None:
    """In process the limit is 50 kB, so a receipt photo is over it; a subprocess has the default 50 MB."""
    if session.transport == "in-process":
        upload, limit = _upload(SROIE / "images" / "000.jpg"), "50,000 bytes"
    else:  # the text alone is over the limit: refused before it is decoded
        upload, limit = "A" * (encoded_size(50 * 2**20) + 4), "50 MB"
    for tool, arguments in (("image_search", {}), ("ask", {"question": "what is this?"})):
        assert session.error(tool, upload_base64=upload, **arguments) == (
            f"Error executing tool {tool}: the uploaded image is over the {limit} limit")
