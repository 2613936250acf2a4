"""The four retrieval tools as LangChain tools the agent's model can call.

Each returns a short text for the model to read and, as the ToolMessage's
artifact, the full structured result (records, timings), which the answer node,
the UI and the evals use. A user error (a bad filter, an unreadable image)
comes back as an ``error`` result the model can explain, not as a crash.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, tool

from loupe.errors import LoupeError
from tools.records import SearchResult
from tools.toolbox import Toolbox

MAX_LISTED = 10


def summarise(result: SearchResult) -> str:
    """What the model reads: one line per record, numbered as the user will refer to them."""
    if not result.records:
        return f"{result.tool}: no results. {result.note}"
    lines = [f"{result.tool}: {len(result.records)} results"]
    for rank, record in enumerate(result.records[:MAX_LISTED], start=1):
        meta = record.metadata
        facts = ", ".join(f"{k}={meta[k]}" for k in ("title", "price", "taken_at") if meta.get(k) is not None)
        snippet = f' text "{record.matched_text[:80]}"' if record.matched_text else ""
        lines.append(f"#{rank} id={record.id} file={record.file_name} {record.match} score={record.score:.2f}"
                     f"{snippet} {facts}".rstrip())
    return "\n".join(lines)


def _guarded(tool_name: str, action) -> tuple[str, dict[str, Any]]:
    try:
        return action()
    except LoupeError as exc:
        return f"{tool_name} failed: {exc}", {"tool": tool_name, "error": str(exc), "records": []}


def make_tools(toolbox: Toolbox) -> list[BaseTool]:
    @tool(response_format="content_and_artifact")
    def image_search(image_path: str = "", record_id: str = "", k: int = 10, where: str = "") -> tuple[str, dict]:
        """Find records showing the same picture (identical), a copy or re-photo of it (near-duplicate), or a
        similar picture. Give image_path (an uploaded or local image) or record_id (for "more like #3").
        where: optional SQL filter on stored columns, e.g. "year = 2019" or "price IS NOT NULL"."""
        def run():
            result = toolbox.image_search(image=image_path or None, record_id=record_id or None, k=k,
                                          where=where or None)
            return summarise(result), result.to_dict()
        return _guarded("image_search", run)

    @tool(response_format="content_and_artifact")
    def text_search(query: str, k: int = 10, where: str = "") -> tuple[str, dict]:
        """Find records whose printed text (OCR), caption/tags or metadata (title, description) match the
        words, e.g. a shop name, a total like 42.50, or "dog on a beach".
        where: optional SQL filter on stored columns, e.g. "year = 2019"."""
        def run():
            result = toolbox.text_search(query, k=k, where=where or None)
            return summarise(result), result.to_dict()
        return _guarded("text_search", run)

    @tool(response_format="content_and_artifact")
    def ocr(image_path: str = "", record_id: str = "") -> tuple[str, dict]:
        """Read the printed text in an image (image_path) or in a stored record (record_id), line by line."""
        def run():
            result = toolbox.ocr(image=image_path or None, record_id=record_id or None)
            text = result.text or "(no text found)"
            return f"ocr of {result.source}:\n{text}", result.to_dict()
        return _guarded("ocr", run)

    @tool(response_format="content_and_artifact")
    def caption(image_path: str = "", record_id: str = "") -> tuple[str, dict]:
        """Describe an image (image_path) or a stored record (record_id). Offline this gives tags
        (ImageNet labels), not a sentence."""
        def run():
            result = toolbox.caption(image=image_path or None, record_id=record_id or None)
            return f"{result.kind} of {result.source}: {result.text}", result.to_dict()
        return _guarded("caption", run)

    return [image_search, text_search, ocr, caption]
