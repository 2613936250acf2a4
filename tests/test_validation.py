"""A model's tool calls are checked before they run, and its answer may name only records a tool returned."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from loupe.agent.assistant import Assistant
from loupe.agent.tools import make_tools
from loupe.agent.validation import call_problem, ungrounded
from tests.test_fast_pipeline import toolbox  # noqa: F401 - the fixture: a real table, fake models
from loupe.tools.toolbox import Toolbox

pytestmark = pytest.mark.fast


class ScriptedModel(GenericFakeChatModel):
    """langchain_core's scripted chat model, with the bind_tools an LLM has."""

    def bind_tools(self, tools, **kwargs):
        return self


def _call(name: str, **args) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{name}_{len(args)}"}])


def _ask(toolbox: Toolbox, script: list[AIMessage], text: str = "find the bookshop receipt", thread: str = "t"):
    assistant = Assistant(toolbox.settings, model=ScriptedModel(messages=iter(script)), toolbox=toolbox)
    try:
        return assistant.ask(text, thread_id=thread)
    finally:
        assistant.close()


@pytest.mark.parametrize(("call", "problem"), [
    ({"name": "web_search", "args": {"query": "x"}}, "there is no tool 'web_search'"),
    ({"name": "text_search", "args": {"k": 3}}, "query: Field required"),
    ({"name": "ocr", "args": {"record_id": "0123456789abcdef"}}, "0123456789abcdef"),
    ({"name": "ocr", "args": {"image": "/etc/passwd"}}, "was not named by the user"),
    ({"name": "text_search", "args": {"query": "x", "filters": [{"column": "path", "op": "=", "value": "/"}]}},
     "filters.0.column"),
    ({"name": "text_search", "args": {"query": "x", "order_by": "colour"}}, "order_by"),
])
def test_invalid_calls_are_named_with_their_reason(toolbox: Toolbox, call: dict, problem: str) -> None:  # noqa: F811
    tools = {tool.name: tool for tool in make_tools(toolbox)}
    found = call_problem({**call, "id": "c"}, tools, {"messages": [HumanMessage("hi")]}, toolbox)
    assert found is not None and problem in found


def test_a_valid_call_passes(toolbox: Toolbox) -> None:  # noqa: F811
    tools = {tool.name: tool for tool in make_tools(toolbox)}
    call = {"name": "text_search", "args": {"query": "bookshop", "filters": [{"column": "year", "op": "=",
                                                                             "value": 2019}]}, "id": "c"}
    assert call_problem(call, tools, {"messages": [HumanMessage("hi")]}, toolbox) is None


def test_one_invalid_call_is_answered_and_the_model_retries(toolbox: Toolbox) -> None:  # noqa: F811
    answer = _ask(toolbox, [_call("web_search", query="bookshop"), _call("text_search", query="bookshop"),
                            AIMessage(content="Found it.")], thread="retry")
    assert [(step["tool"], bool(step.get("refused"))) for step in answer.trace] == [
        ("web_search", True), ("text_search", False)]
    assert answer.fallback == "" and answer.records and answer.words == "Found it."


def test_a_second_invalid_call_hands_the_turn_to_the_planner(toolbox: Toolbox) -> None:  # noqa: F811
    answer = _ask(toolbox, [_call("web_search", query="bookshop"), _call("ocr", image="/etc/passwd"),
                            AIMessage(content="never reached")], thread="fallback")
    assert [bool(step.get("refused")) for step in answer.trace] == [True, True, False]
    assert answer.trace[2]["tool"] == "text_search" and "rule-based planner answered" in answer.fallback
    assert "never reached" not in answer.text and "rule-based planner" in answer.words


def test_an_answer_never_names_a_record_no_tool_returned(toolbox: Toolbox) -> None:  # noqa: F811
    words = "It is receipt.png, and also holiday_secret.jpg (id 0123456789abcdef)."
    answer = _ask(toolbox, [_call("text_search", query="bookshop"), AIMessage(content=words)], thread="grounded")
    assert answer.records and answer.records[0].file_name == "receipt.png"
    assert answer.ungrounded == ["0123456789abcdef", "holiday_secret.jpg"]
    assert "holiday_secret.jpg" not in answer.text and "0123456789abcdef" not in answer.text
    assert "receipt.png" in answer.words


def test_quoting_what_a_tool_read_is_not_naming_a_record() -> None:
    # A receipt's printed card number has the shape of a record id: quoted from the OCR it is grounded,
    # while an id or file name found nowhere in the turn's results is still caught.
    read = {"tool": "ocr", "source": "061.jpg", "text": "VISA 6018840059147765\nTOTAL 88.17", "records": []}
    messages = [HumanMessage("read the top one"), _call("ocr", record_id="abc"),
                ToolMessage(content="read", artifact=read, tool_call_id="call_ocr_1", name="ocr")]
    assert ungrounded("061.jpg says VISA 6018840059147765, total 88.17.", messages) == []
    assert ungrounded("See also 0123456789abcdef and other.jpg.", messages) == ["0123456789abcdef", "other.jpg"]


def test_the_agent_eval_judges_tools_records_facts_and_grounding() -> None:
    from types import SimpleNamespace

    from loupe.evals.agent_eval import judge

    record = SimpleNamespace(path="/data/sroie/images/001.jpg", file_name="001.jpg")
    answer = SimpleNamespace(trace=[{"tool": "web_search", "refused": True}, {"tool": "text_search"}],
                             records=[record], text="total 60.30", ungrounded=[])
    query = {"expected_tools": ["text_search"], "expected_records": ["sroie/images/001.jpg"],
             "expected_answer_contains": ["60.30"]}
    assert judge(query, answer).right and judge(query, answer).grounded
    assert not judge({**query, "expected_answer_contains": ["9.00"]}, answer).right
    assert not judge({**query, "expect_nothing": True}, answer).records
    assert not judge(query, SimpleNamespace(**{**vars(answer), "ungrounded": ["x.jpg"]})).grounded


def test_an_eval_sample_spreads_over_every_kind() -> None:
    from loupe.evals.agent_eval import sample

    entries = [{"id": f"{kind}-{n}", "kind": kind} for kind in ("image", "text", "follow-up") for n in range(10)]
    chosen = sample(entries, 6)
    assert [e["kind"] for e in chosen] == ["image", "image", "text", "text", "follow-up", "follow-up"]
    assert sample(entries, None) == entries and sample(entries, 99) == entries
