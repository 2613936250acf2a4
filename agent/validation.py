"""Checking a model's tool call before it runs, and an answer's words after: nothing unfounded gets through.

A small local model invents tool names, arguments, record ids and paths, and
any model may have read an instruction printed in a photo. So every call is
checked against the tools' schemas, the conversation and the index before it
runs (:func:`call_problem`): an invalid call is answered to the model with the
reason, and after a second one the rule-based planner takes over the turn
(agent/graph.py). After the turn, :func:`ungrounded` finds any record the
model's words name that no tool of the turn returned or was asked about.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import ValidationError

from loupe.agent import intents
from loupe.agent.conversation import conversation_records, read_turn
from loupe.agent.planner import CALL_PREFIX
from loupe.agent.tools import CallRefused, check_image
from loupe.base.errors import LoupeError
from loupe.store.filters import where_clause
from loupe.tools.document_fields import fold
from loupe.tools.toolbox import Toolbox

CallCheck = Callable[[dict[str, Any], dict[str, Any]], str | None]  # (tool call, graph state) -> problem or None

_IMAGE_TOOLS = ("image_search", "ocr", "caption")
_FILE_NAME = re.compile(r"[\w.-]+\.(?:jpe?g|png|webp|tiff?|bmp|gif|heic|avif)\b", re.I)
_RECORD_ID = re.compile(r"\b[0-9a-f]{16}\b")


def make_call_check(toolbox: Toolbox, tools: list[BaseTool]) -> CallCheck:
    """The check the graph runs on every tool call, bound to this index and tool set."""
    by_name = {tool.name: tool for tool in tools}

    def check(call: dict[str, Any], state: dict[str, Any]) -> str | None:
        return call_problem(call, by_name, state, toolbox)

    return check


def call_problem(call: dict[str, Any], tools: dict[str, BaseTool], state: dict[str, Any],
                 toolbox: Toolbox) -> str | None:
    """Why this call may not run (one line for the model to correct), or None when it may."""
    tool = tools.get(call.get("name", ""))
    if tool is None:
        return f"there is no tool {str(call.get('name'))[:40]!r}; use one of {', '.join(tools)}"
    args = call.get("args") or {}
    try:
        tool.tool_call_schema.model_validate(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "arguments"
        return f"{tool.name}: {where}: {first['msg']}"
    if call["name"] == "aggregate" and not str(call.get("id", "")).startswith(CALL_PREFIX) \
            and (problem := _aggregate_problem(args, read_turn(state["messages"]).request)):
        return problem  # the planner's calls come from the request's own words
    try:
        if call["name"] in _IMAGE_TOOLS:
            check_image(toolbox, state, str(args.get("image") or ""), str(args.get("record_id") or ""))
        if args.get("filters"):
            where = where_clause([dict(f) for f in args["filters"]])
            if where:
                toolbox.table.find(where, limit=1, columns=["id"])  # compiles against this table, or says why
    except CallRefused as exc:
        return str(exc)
    except LoupeError as exc:
        return str(exc)
    return None


def _aggregate_problem(args: dict[str, Any], request: str) -> str | None:
    """An aggregate's arguments must come from the request: a small model copies its examples' shop ("Shell")
    and item switch into questions that name neither."""
    if args.get("items") and not intents.asks_about_items(request):
        return ("aggregate: items=true is for questions about the single items bought; this one is about "
                "receipts: leave items out")
    numbers = set(re.findall(r"\d+", request))
    implied = {str(c["value"]) for c in intents.filters(request) if c["column"] == "year"}  # "last year"
    if args.get("year") and str(args["year"]) not in numbers | implied:
        return f"aggregate: the request names no year {str(args['year'])[:10]}: leave year out"
    for condition in args.get("filters") or []:
        value = dict(condition).get("value")
        if isinstance(value, int | float) and not isinstance(value, bool) and \
                f"{value:g}" not in numbers | implied:
            return f"aggregate: the request names no {value!r}: filter only on what the user asked"
        if dict(condition).get("op") in ("is set", "is not set"):
            return "aggregate: every figure already counts only the records that have its column: leave that filter out"
    shop = "".join(fold(str(args.get("shop") or "")).split())
    if shop and shop not in "".join(fold(request).split()) and not any(
            word in fold(request).split() for word in fold(str(args["shop"])).split() if len(word) >= 3):
        return f"aggregate: the request names no shop {str(args['shop'])[:40]!r}; give shop only as the user typed it"
    return None


def ungrounded(words: str, messages: list[Any]) -> list[str]:
    """File names and record ids the words name that no tool call of the current turn returned or read.

    What a turn may name: the records its searches returned, the earlier records its calls were about
    (an OCR of "#2" names #2's file), and any text its tools read (quoting a receipt's card number is
    not naming a record).
    """
    turn = read_turn(messages)
    returned = [r for run in turn.runs if run.result for r in run.result.get("records", [])]
    asked_about = {str(run.args.get("record_id")) for run in turn.runs if run.args.get("record_id")}
    known = returned + [r for r in conversation_records(messages) if r.id in asked_about]
    names = {r.file_name.lower() for r in known} | {r.path.rsplit("/", 1)[-1].lower() for r in known}
    ids = {r.id for r in known} | asked_about
    read = {str(run.result.get("source", "")).rsplit("/", 1)[-1].lower() for run in turn.runs if run.result}
    allowed_names = names | read
    quoted = _text_read(turn.runs).lower()
    return sorted({m for m in _FILE_NAME.findall(words) if m.lower() not in allowed_names and m.lower() not in quoted}
                  | {m for m in _RECORD_ID.findall(words) if m not in ids and m not in quoted})


def _text_read(runs: list[Any]) -> str:
    """What the turn's tools read out of images and rows: a 16-digit card number or a file name printed on a
    receipt, quoted from there, is not a record the model invented."""
    parts = []
    for run in runs:
        if not run.result:
            continue
        parts.append(str(run.result.get("text", "")))
        for record in run.result.get("records", []):
            parts += [record.ocr_text, record.matched_text, record.caption, str(record.metadata)]
    return "\n".join(parts)
