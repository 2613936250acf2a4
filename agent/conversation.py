"""Reading the conversation: the current request, its attached image, and earlier results.

Everything the agent remembers lives in the message list the checkpointer
stores: the user's words (with ``[attached image: PATH]`` markers), the tool
calls and the tool results with their records. Both the rule-based planner
and the answer node read it through these helpers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

IMAGE_MARKER = re.compile(r"\[attached image: (?P<path>[^\]]+)\]")
SEARCH_TOOLS = ("image_search", "text_search")


def with_image(text: str, image_path: str | None) -> str:
    """The user's words as stored, with the attached image's path where a model can see it."""
    return f"{text}\n\n[attached image: {image_path}]" if image_path else text


@dataclass
class ToolRun:
    """One tool call of the current turn and, once it ran, its structured result."""

    name: str
    args: dict[str, Any]
    call_id: str
    result: dict[str, Any] | None = None


@dataclass
class Turn:
    request: str  # the user's words without the image marker
    image: str | None  # attached to this message, or referred to ("this photo") from earlier
    runs: list[ToolRun] = field(default_factory=list)  # this turn's tool calls so far
    previous_search: ToolRun | None = None  # the last search of earlier turns (for "only 2019")
    previous_records: list[dict[str, Any]] = field(default_factory=list)  # its records, for "#3"


def read_turn(messages: list[AnyMessage]) -> Turn:
    """The current turn: the last human message and everything after it."""
    start = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    content = _text(messages[start])
    match = IMAGE_MARKER.search(content)
    request = IMAGE_MARKER.sub("", content).strip()
    image = match.group("path") if match else None
    if image is None and re.search(r"\b(this|that|the|my) (photo|image|picture|pic|label|receipt)\b", request, re.I):
        image = _last_image(messages[:start])
    earlier = runs_of(messages[:start])
    searches = [r for r in earlier if r.name in SEARCH_TOOLS and r.result and not r.result.get("error")]
    previous = searches[-1] if searches else None
    return Turn(request=request, image=image, runs=runs_of(messages[start:]), previous_search=previous,
                previous_records=previous.result["records"] if previous else [])


def runs_of(messages: list[AnyMessage]) -> list[ToolRun]:
    """Tool calls in ``messages`` paired with their results, in order."""
    runs: dict[str, ToolRun] = {}
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                runs[call["id"]] = ToolRun(call["name"], dict(call["args"]), call["id"])
        elif isinstance(message, ToolMessage) and message.tool_call_id in runs:
            artifact = message.artifact if isinstance(message.artifact, dict) else {"text": _text(message)}
            runs[message.tool_call_id].result = artifact
    return list(runs.values())


def _last_image(messages: list[AnyMessage]) -> str | None:
    for message in reversed(messages):
        if isinstance(message, HumanMessage) and (match := IMAGE_MARKER.search(_text(message))):
            return match.group("path")
    return None


def _text(message: AnyMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
