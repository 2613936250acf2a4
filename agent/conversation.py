"""Reading the conversation: the current request, its attached image, and earlier results.

Everything the agent remembers lives in the state the checkpointer stores: the
message list (the user's words, the tool calls and the tool results with their
records) and the attached images' bytes, keyed by their hash. A user's message
carries ``[attached image: KEY]`` where an image came with it; the key only
names bytes in the state, never a file, so no words typed into a message can
make a tool read a path. The planner, the tools and the answer node read the
conversation through these helpers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from loupe.tools.records import MatchedRecord, MatchLabel, ToolName

IMAGE_MARKER = re.compile(r"\[attached image: (?P<key>[0-9a-f]{16})\]")
SEARCH_TOOLS = (ToolName.IMAGE_SEARCH, ToolName.TEXT_SEARCH)
# The tools whose records an answer lists. An aggregate's are the records its figure came from; it is no search a
# follow-up ("only 2019", "#3", "the cheapest one") repeats or points into.
RECORD_TOOLS = (*SEARCH_TOOLS, ToolName.AGGREGATE)
ATTACHED = "attached"  # what a tool call passes as ``image`` for the user's attached image
# The types of ours a saved conversation holds, by LangGraph's (module, name): the conversation store revives
# these and LangGraph's own, nothing else (agent/assistant.py). LangGraph saves a message's artifact as plain
# values (a record as a dict, its label kept typed); the answer's records are saved as MatchedRecords.
STATE_TYPES = [(kind.__module__, kind.__name__) for kind in (MatchedRecord, MatchLabel)]


def attachment_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def with_image(text: str, key: str | None) -> str:
    """The user's words as stored, with a marker naming the attached image's bytes in the state."""
    return f"{text}\n\n[attached image: {key}]" if key else text


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
    image: str | None  # key of the image attached to this message, or referred to ("this photo") from earlier
    image_is_new: bool = False  # the image came with this message (not one referred back to)
    runs: list[ToolRun] = field(default_factory=list)  # this turn's tool calls so far
    previous_search: ToolRun | None = None  # the last search of earlier turns (for "only 2019")
    previous_records: list[MatchedRecord] = field(default_factory=list)  # its records, for "#3"


def read_turn(messages: list[AnyMessage]) -> Turn:
    """The current turn: the last human message and everything after it."""
    start = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    content = _text(messages[start])
    match = IMAGE_MARKER.search(content)
    request = IMAGE_MARKER.sub("", content).strip()
    image = match.group("key") if match else None
    if image is None and re.search(r"\b(this|that|the|my) (photo|image|picture|pic|label|receipt)\b", request, re.I):
        image = last_image(messages[:start])
    earlier = runs_of(messages[:start])
    searches = [r for r in earlier if r.name in SEARCH_TOOLS and r.result and not r.result.get("error")]
    previous = searches[-1] if searches else None
    return Turn(request=request, image=image, image_is_new=match is not None, runs=runs_of(messages[start:]),
                previous_search=previous,
                previous_records=previous.result["records"] if previous else [])


def conversation_records(messages: list[AnyMessage]) -> list[MatchedRecord]:
    """Every record any search of the conversation returned, for checking what a tool call names."""
    return [record for run in runs_of(messages) if run.result for record in run.result.get("records", [])]


def runs_of(messages: list[AnyMessage]) -> list[ToolRun]:
    """Tool calls in ``messages`` paired with their results, in order."""
    runs: dict[str, ToolRun] = {}
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                runs[call["id"]] = ToolRun(call["name"], dict(call["args"]), call["id"])
        elif isinstance(message, ToolMessage) and message.tool_call_id in runs:
            if isinstance(message.artifact, dict):
                artifact = {**message.artifact, "records": [_typed(r) for r in message.artifact.get("records", [])]}
            elif message.status == "error":  # arguments that failed the tool's schema, answered by ToolNode
                artifact = {"tool": message.name, "error": _text(message)[:500], "records": []}
            else:
                artifact = {"text": _text(message)}
            runs[message.tool_call_id].result = artifact
    return list(runs.values())


def _typed(record: MatchedRecord | dict[str, Any]) -> MatchedRecord:
    """A result's record: a MatchedRecord in the turn that ran the tool, a plain dict once the conversation was
    saved (LangGraph writes a message's artifact as plain values), from any Loupe version."""
    return record if isinstance(record, MatchedRecord) else MatchedRecord.from_dict(record)


def last_image(messages: list[AnyMessage]) -> str | None:
    """The key of the most recent image the user attached in the conversation."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage) and (match := IMAGE_MARKER.search(_text(message))):
            return match.group("key")
    return None


def _text(message: AnyMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
