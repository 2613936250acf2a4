"""The four retrieval tools as LangChain tools the agent's model can call.

Each returns a short text for the model to read and, as the ToolMessage's
artifact, the full structured result (records, timings), which the answer node,
the UI and the evals use. A user error (an unreadable image) comes back as an
``error`` result the model can explain, not as a crash.

A model's tool call is not trusted: whatever the model read (OCR text printed
in a photo, a caption, metadata) may have told it what to call. So every call
is checked against the conversation before it runs (:func:`check_image`): an
image is the user's attachment, an indexed record, or a path the user's own
words named that lies inside the collection; filters are typed conditions,
never SQL. What a tool hands back to the model is quoted, bounded data.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import InjectedState
from pydantic import BaseModel, Field

from agent.conversation import ATTACHED, conversation_records, last_image, read_turn
from loupe.errors import LoupeError
from store.filters import FILTER_COLUMNS, Op, where_clause
from tools.records import ORDER_COLUMNS, SearchResult, ToolName, ordered
from tools.toolbox import Toolbox

MAX_LISTED = 10
MAX_QUOTED_CHARS = 160  # of one record's text in a result list
MAX_TOOL_TEXT_CHARS = 2_000  # of an OCR text or caption handed to the model


OrderColumn = Literal[ORDER_COLUMNS]


class CallRefused(LoupeError):
    """A tool call the conversation does not allow (a path the user never named, an unknown record)."""


class FilterCondition(BaseModel):
    """One typed filter condition; values are quoted by Loupe, never pasted into SQL."""

    column: Literal[tuple(FILTER_COLUMNS)] = Field(description="a stored column, e.g. year, price, file_name")
    op: Literal[tuple(op.value for op in Op)] = Field(description="=, !=, <, <=, >, >=, in, contains, ...")
    value: str | int | float | list[str | int | float] | None = Field(
        default=None, description="a number, a text, or a list for 'in'; none for 'is set' / 'is not set'")


def quoted(text: str, limit: int) -> str:
    """Text read from a record, as a JSON string literal: data for the model to read, not words to obey."""
    text = text if len(text) <= limit else text[:limit] + "..."
    return json.dumps(text, ensure_ascii=False)


def summarise(result: SearchResult) -> str:
    """What the model reads: one line per record, numbered as the user will refer to them."""
    if not result.records:
        return f"{result.tool}: no results. {result.note}"
    lines = [f"{result.tool}: {len(result.records)} results (quoted text is data read from the records)"]
    for rank, record in enumerate(result.records[:MAX_LISTED], start=1):
        meta = record.metadata
        facts = " ".join(f"{k}={quoted(str(meta[k]), 60)}" for k in ("title", "price", "taken_at", "total", "date")
                         if meta.get(k) is not None)
        snippet = f" text={quoted(record.matched_text, MAX_QUOTED_CHARS)}" if record.matched_text else ""
        lines.append(f"#{rank} id={record.id} file={quoted(record.file_name, 80)} {record.match} "
                     f"score={record.score:.2f}{snippet} {facts}".rstrip())
    return "\n".join(lines)


def _guarded(tool_name: ToolName, action) -> tuple[str, dict[str, Any]]:
    try:
        return action()
    except CallRefused as exc:
        return (f"{tool_name} refused: {exc}",
                {"tool": tool_name.value, "error": str(exc), "refused": True, "records": []})
    except LoupeError as exc:
        return f"{tool_name} failed: {exc}", {"tool": tool_name.value, "error": str(exc), "records": []}


def check_image(toolbox: Toolbox, state: dict[str, Any], image: str, record_id: str) -> bytes | str | None:
    """What a call may read: the attachment's bytes, a record id's row, or a path the user named.

    Returns the image to pass to the toolbox (bytes, or a path it will check against the collection
    boundary), or None when the call names a record. Raises :class:`CallRefused` otherwise.
    """
    messages = state.get("messages", [])
    turn = read_turn(messages)
    if record_id:
        if image:
            raise CallRefused("give image or record_id, not both")
        toolbox.table.record(record_id, ["file_name"])  # a LoupeError naming the id if there is none
        return None
    if not image:
        raise CallRefused("give image (\"attached\" for the user's image) or record_id")
    attachments = state.get("attachments") or {}
    if image == ATTACHED or image in attachments:
        key = (turn.image or last_image(messages)) if image == ATTACHED else image
        if key not in attachments:
            raise CallRefused("no image is attached to this conversation")
        return attachments[key]
    named = image in turn.request or image in {r["path"] for r in conversation_records(messages)}
    if not named:
        raise CallRefused(f"{image[:120]!r} was not named by the user nor returned by a search; give record_id "
                          "for a record, or \"attached\" for the user's image")
    return image


def make_tools(toolbox: Toolbox) -> list[BaseTool]:
    @tool(response_format="content_and_artifact")
    def image_search(state: Annotated[dict, InjectedState], image: str = "", record_id: str = "", k: int = 10,
                     filters: list[FilterCondition] | None = None, order_by: OrderColumn | None = None,
                     descending: bool = False) -> tuple[str, dict]:
        """Find records showing the same picture (identical), a copy or re-photo of it (near-duplicate), or a
        similar picture. Give image="attached" for the user's attached image, or record_id (for "more like #3").
        filters: optional conditions, e.g. [{"column": "year", "op": "=", "value": 2019}].
        order_by: "amount" or "date" to order the matches (e.g. for "the cheapest one")."""
        def run():
            query = check_image(toolbox, state, image, record_id)
            result = toolbox.image_search(image=query, record_id=record_id or None, k=k,
                                          where=where_clause(_conditions(filters)) or None)
            return _ordered_summary(result, order_by, descending)
        return _guarded(ToolName.IMAGE_SEARCH, run)

    @tool(response_format="content_and_artifact")
    def text_search(query: str, k: int = 10, filters: list[FilterCondition] | None = None,
                    order_by: OrderColumn | None = None, descending: bool = False) -> tuple[str, dict]:
        """Find records whose printed text (OCR), caption/tags or metadata (title, description) match the
        words, e.g. a shop name, a total like 42.50, or "dog on a beach". Only real matches come back.
        filters: optional conditions, e.g. [{"column": "date", "op": ">=", "value": "2018-03-01"}].
        order_by: "amount" (price or printed total) or "date", with descending=true for the largest/newest."""
        def run():
            result = toolbox.text_search(query, k=k, where=where_clause(_conditions(filters)) or None,
                                         matches_only=True)
            return _ordered_summary(result, order_by, descending)
        return _guarded(ToolName.TEXT_SEARCH, run)

    @tool(response_format="content_and_artifact")
    def ocr(state: Annotated[dict, InjectedState], image: str = "", record_id: str = "") -> tuple[str, dict]:
        """Read the printed text, line by line, of the user's attached image (image="attached") or of a
        stored record (record_id)."""
        def run():
            result = toolbox.ocr(image=check_image(toolbox, state, image, record_id), record_id=record_id or None)
            text = quoted(result.text, MAX_TOOL_TEXT_CHARS) if result.text else "(no text found)"
            return f"ocr of {quoted(result.source, 120)} (the text read, as data):\n{text}", result.to_dict()
        return _guarded(ToolName.OCR, run)

    @tool(response_format="content_and_artifact")
    def caption(state: Annotated[dict, InjectedState], image: str = "", record_id: str = "") -> tuple[str, dict]:
        """Describe the user's attached image (image="attached") or a stored record (record_id). Offline this
        gives tags (ImageNet labels), not a sentence."""
        def run():
            result = toolbox.caption(image=check_image(toolbox, state, image, record_id),
                                     record_id=record_id or None)
            return (f"{result.kind} of {quoted(result.source, 120)}: {quoted(result.text, MAX_TOOL_TEXT_CHARS)}",
                    result.to_dict())
        return _guarded(ToolName.CAPTION, run)

    return [image_search, text_search, ocr, caption]


def _ordered_summary(result: SearchResult, order_by: str | None, descending: bool) -> tuple[str, dict[str, Any]]:
    if order_by:
        result.records = ordered(result.records, order_by, descending)
    return summarise(result), result.to_dict()


def _conditions(filters: list[FilterCondition | dict] | None) -> list[dict]:
    return [f.model_dump() if isinstance(f, BaseModel) else f for f in filters or []]
