"""The LangGraph agent over a real index: rule-based planner, scripted LLMs, the OpenAI client, restarts."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from PIL import Image

from loupe.agent.assistant import Assistant
from loupe.agent.conversation import conversation_records
from loupe.agent.llm import make_chat_model
from loupe.base.config import LLMSettings, Settings
from loupe.base.errors import ConfigError
from tests.conftest import SROIE, holidays_files, sroie_key
from tests.scripted_openai import ScriptedOpenAI
from loupe.tools.document_fields import iso_date
from loupe.tools.models import Models
from loupe.tools.records import MatchedRecord, MatchLabel, SearchResult, ToolName
from loupe.tools.toolbox import Toolbox

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def assistant(indexed: Toolbox) -> Assistant:
    helper = Assistant(indexed.settings, toolbox=indexed)
    yield helper
    helper.close()


def _tools(answer) -> list[str]:
    return [step["tool"] for step in answer.trace]


def test_words_about_a_receipt_run_text_search(assistant: Assistant) -> None:
    company = sroie_key("003")["company"]
    answer = assistant.ask(f"find the receipt from {company}", thread_id="words")
    assert _tools(answer) == ["text_search"]
    assert answer.records[0].file_name == "receipt_003.jpg"
    assert "rule-based planner" in answer.text and "receipt_003.jpg" in answer.text
    assert "why:" in answer.text and answer.trace[0]["seconds"] > 0


def test_photo_runs_image_search_and_labels_the_copy(assistant: Assistant) -> None:
    source = holidays_files()[6]
    buffer = io.BytesIO()
    Image.open(source).convert("RGB").resize((200, 150)).save(buffer, "JPEG", quality=70)
    answer = assistant.ask("where else does this photo appear?", image=buffer.getvalue(), thread_id="photo")
    assert _tools(answer) == ["image_search"]
    assert answer.records[0].file_name == source.name
    assert answer.records[0].match == "near-duplicate"
    assert answer.trace[0]["args"]["image"] == "attached"  # the upload's bytes, kept in the conversation


def test_label_question_reads_the_text_then_searches(assistant: Assistant) -> None:
    answer = assistant.ask("what does the text in this picture say, and do we have it?",
                           image=SROIE / "images" / "005.jpg", thread_id="label")
    assert _tools(answer) == ["ocr", "text_search", "image_search"]
    assert "ABC HO TRADING" in answer.text.upper()
    assert answer.records[0].file_name == "receipt_005.jpg"


def test_nothing_found_is_said_not_padded(assistant: Assistant) -> None:
    answer = assistant.ask("find qwxzv plorkt", thread_id="nothing")
    assert answer.records == [] and "nothing" in answer.text.lower()


def test_broken_upload_is_a_clear_error(assistant: Assistant) -> None:
    with pytest.raises(Exception, match="not an image"):
        assistant.ask("what is this?", image=b"GIF89a broken", thread_id="broken")


class ToolCallingFake(GenericFakeChatModel):
    """langchain_core's scripted chat model; its bind_tools raises, an LLM's returns the model."""

    def bind_tools(self, tools, **kwargs):
        return self


def test_scripted_llm_drives_the_same_graph(indexed: Toolbox) -> None:
    company = sroie_key("001")["company"]
    script = iter([
        AIMessage(content="", tool_calls=[{"name": "text_search", "args": {"query": company, "k": 3},
                                           "id": "call_1"}]),
        AIMessage(content="I searched the printed text for the shop name and found its receipt."),
    ])
    helper = Assistant(indexed.settings, model=ToolCallingFake(messages=script), toolbox=indexed)
    answer = helper.ask("which receipt is from the gift shop?", thread_id="scripted")
    helper.close()
    assert answer.trace == [{"tool": "text_search", "args": {"query": company, "k": 3},
                             "seconds": answer.trace[0]["seconds"], "results": len(answer.records)}]
    assert answer.records[0].file_name == "receipt_001.jpg"
    assert answer.text.startswith("I searched the printed text") and "#1 receipt_001.jpg" in answer.text


def test_openai_client_against_a_local_chat_completions_server(indexed: Toolbox) -> None:
    company = sroie_key("002")["company"]
    replies = [
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_abc", "type": "function",
            "function": {"name": "text_search", "arguments": json.dumps({"query": company, "k": 5})}}]},
        {"role": "assistant", "content": "The receipt from that shop is #1."},
    ]
    with ScriptedOpenAI(chat_replies=replies) as server:
        llm = LLMSettings(backend="openai-compatible", model="scripted-model", base_url=server.base_url)
        helper = Assistant(indexed.settings, model=make_chat_model(llm), toolbox=indexed)
        answer = helper.ask("find the receipt from the DIY shop in Johor", thread_id="openai")
        helper.close()
    first, second = (r["body"] for r in server.requests)
    assert all(r["path"] == "/v1/chat/completions" for r in server.requests)
    assert {t["function"]["name"] for t in first["tools"]} == {"image_search", "text_search", "ocr", "caption",
                                                                "aggregate"}
    assert first["messages"][0]["role"] == "system" and first["model"] == "scripted-model"
    tool_reply = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_reply and tool_reply[0]["tool_call_id"] == "call_abc" and "receipt_002.jpg" in tool_reply[0]["content"]
    assert answer.records[0].file_name == "receipt_002.jpg"
    assert answer.text.startswith("The receipt from that shop is #1.")


def test_llm_backend_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        make_chat_model(LLMSettings(backend="openai"))
    with pytest.raises(ConfigError, match="base_url"):
        make_chat_model(LLMSettings(backend="openai-compatible"))
    with pytest.raises(ConfigError, match="unknown LLM backend"):
        make_chat_model(LLMSettings(backend="gpt-banana"))


def test_follow_ups_survive_a_restart(receipts_index: Settings, models: Models) -> None:
    # Two-digit years ("18-11-18") count: the index reads every date as a day (tools/document_fields.py).
    years = {f"{n:03d}.jpg": iso_date(sroie_key(f"{n:03d}")["date"])[:4] for n in range(8)}
    helper = Assistant(receipts_index, toolbox=Toolbox(receipts_index, models))
    first = helper.ask("receipts from SDN BHD companies", thread_id="restart")
    assert len(first.records) >= 3 and {years[r.file_name] for r in first.records} != {"2018"}

    narrowed = helper.ask("only the ones from 2018", thread_id="restart")
    assert narrowed.trace[0]["args"]["filters"] == [{"column": "year", "op": "=", "value": 2018}]
    assert narrowed.records and all(years[r.file_name] == "2018" for r in narrowed.records)

    second = narrowed.records[1]
    similar = helper.ask("more like #2", thread_id="restart")
    assert similar.trace[0]["tool"] == "image_search"
    assert similar.trace[0]["args"] == {"record_id": second.id, "k": 10, "filters": []}
    assert second.id not in [r.id for r in similar.records]
    helper.close()

    # A new process, the same thread id: "#1" still means the first result of "more like #2".
    env = {**os.environ, "LOUPE_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "loupe.cli", "--index", str(receipts_index.index_dir), "ask",
         "what does the text on #1 say?", "--thread", "restart", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    expected = similar.records[0] if similar.records else None
    assert expected is not None, "more like #2 found nothing to refer back to"
    assert reply["trace"][0]["tool"] == "ocr" and reply["trace"][0]["args"] == {"record_id": expected.id}
    assert "The text reads:" in reply["text"]


def test_saved_conversations_keep_records_typed_and_older_ones_still_load(
        receipts_index: Settings, models: Models, caplog: pytest.LogCaptureFixture) -> None:
    toolbox = Toolbox(receipts_index, models)
    helper = Assistant(receipts_index, toolbox=toolbox)
    found = helper.ask("receipts from SDN BHD companies", thread_id="typed")
    assert len(found.records) >= 2
    # A conversation saved before records were kept typed: the same search, its records as plain dicts. And a
    # stranger's class in the saved state, which a conversation file must not be able to make Loupe build.
    call = {"name": "text_search", "args": {"query": "SDN BHD"}, "id": "call_old"}
    saved = [HumanMessage("receipts from SDN BHD companies"), AIMessage("", tool_calls=[call]),
             ToolMessage("results", tool_call_id="call_old", name="text_search",
                         artifact={"tool": "text_search", "records": [
                             {**r.to_dict(), "match": str(r.match)} for r in found.records]}),
             AIMessage("Here they are.")]
    stranger = SearchResult(ToolName.TEXT_SEARCH, {}, [], 0.0)
    helper.graph.update_state({"configurable": {"thread_id": "older"}},
                              {"messages": saved, "answer": {"stranger": stranger}}, as_node="answer")
    helper.close()

    caplog.set_level(logging.WARNING)
    reopened = Assistant(receipts_index, toolbox=toolbox)  # a new connection: everything below is read back
    for thread in ("typed", "older"):
        records = conversation_records(reopened.history(thread))
        assert [r.id for r in records] == [r.id for r in found.records]
        assert all(isinstance(r, MatchedRecord) and isinstance(r.match, MatchLabel) for r in records)
    answer = reopened.graph.get_state({"configurable": {"thread_id": "typed"}}).values["answer"]
    assert answer["records"] == found.records  # the answer's own records, saved as MatchedRecords
    older = reopened.graph.get_state({"configurable": {"thread_id": "older"}}).values["answer"]
    assert not isinstance(older["stranger"], SearchResult)
    assert "Blocked deserialization of loupe.tools.records.SearchResult" in caplog.text
    assert "unregistered type" not in caplog.text  # our records and labels are allowed by name
    for thread in ("typed", "older"):
        follow_up = reopened.ask("what does the text on #2 say?", thread_id=thread)
        assert follow_up.trace[0]["tool"] == "ocr"
        assert follow_up.trace[0]["args"] == {"record_id": found.records[1].id}
    reopened.close()


def test_chat_in_the_terminal(receipts_index: Settings) -> None:
    env = {**os.environ, "LOUPE_OFFLINE": "1"}
    session = "\n".join([f"/image {SROIE / 'images' / '004.jpg'}", "where else does this picture appear?",
                         "/new", "find the receipt with total 33.90", "/quit"]) + "\n"
    result = subprocess.run([sys.executable, "-m", "loupe.cli", "--index", str(receipts_index.index_dir), "chat"],
                            cwd=REPO, env=env, input=session, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    answers = result.stdout.split("loupe> ")[1:]
    assert len(answers) == 2
    # The records' table first ("found by ..."), as soon as the search returned, then the words.
    for answer, tool, file_name in zip(answers, ("image_search", "text_search"), ("004.jpg", "002.jpg")):
        table, _, words = answer.partition("└")  # the table's last line
        assert f"found by {tool} in " in table.splitlines()[0]
        assert "│ 1 │" in table and file_name in table.split("│ 1 │")[1].splitlines()[0]  # the first row
        assert f"I ran {tool}" in words and "s; thread " in words.split("you>")[0].strip().splitlines()[-1]
    assert "identical" in answers[0].split("│ 1 │")[1].splitlines()[0]
