"""Asking the agent: one call per user message, conversations kept on disk by thread id.

The graph's state is saved after every step by LangGraph's SQLite
checkpointer in ``<index>/conversations.sqlite``, so a conversation survives a
restart: asking again with the same thread id continues it. An attached image
travels as bytes in that state, never as a path in the message text.

Results before words: :meth:`Assistant.stream` runs the same graph through
LangGraph's stream and hands out the records as soon as a tools step returns
them, then the answer once the model has written its words (seconds later with
a real LLM); :meth:`Assistant.ask` is that stream read to its end.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from loupe.agent.conversation import STATE_TYPES, attachment_key, with_image
from loupe.agent.graph import assemble_answer, build_graph
from loupe.agent.llm import make_chat_model
from loupe.agent.tools import make_tools
from loupe.agent.validation import make_call_check
from loupe.base.config import Settings
from loupe.base.errors import ImageRejected
from loupe.tools.image_file import decode_image_bytes
from loupe.tools.records import MatchedRecord
from loupe.tools.toolbox import Toolbox

CONVERSATIONS_FILE = "conversations.sqlite"


@dataclass
class Answer:
    text: str  # the whole answer: the model's words, then the matched records
    words: str  # the model's words alone (the UI shows the records as a gallery)
    records: list[MatchedRecord]
    trace: list[dict[str, Any]]
    seconds: float
    thread_id: str
    messages: list[Any] = field(default_factory=list, repr=False)
    fallback: str = ""  # why the rule-based planner answered instead of the model ("" if it did not)
    ungrounded: list[str] = field(default_factory=list)  # records the model named that no tool returned


@dataclass
class Found:
    """The records the turn's tools have returned so far, sent before the model writes its words: with a real
    LLM the words take seconds longer than the search, and a person wants to see the pictures meanwhile."""

    records: list[MatchedRecord]  # deduplicated and ordered as the answer will list them
    trace: list[dict[str, Any]]  # the tool calls so far
    seconds: float  # since the question was asked


class Assistant:
    def __init__(self, settings: Settings, model: BaseChatModel | None = None,
                 toolbox: Toolbox | None = None) -> None:
        self.settings = settings
        self.toolbox = toolbox or Toolbox(settings)
        self.toolbox.table  # fail now, with the "run loupe index" message, if there is no index
        self._connection = sqlite3.connect(settings.index_dir / CONVERSATIONS_FILE, check_same_thread=False)
        tools = make_tools(self.toolbox)
        self.graph = build_graph(model or make_chat_model(settings.llm), tools, make_call_check(self.toolbox, tools),
                                 SqliteSaver(self._connection, serde=_conversation_serializer()))

    def ask(self, text: str, image: Path | bytes | None = None, thread_id: str = "default") -> Answer:
        """One user message (words, optionally an image) in a conversation; returns the explained answer.

        ``image`` is an upload's bytes or a file the caller chose (the CLI's ``--image``); either way the
        agent gets its bytes, checked here, and no path.
        """
        *_, answer = self.stream(text, image=image, thread_id=thread_id)
        return answer

    def stream(self, text: str, image: Path | bytes | None = None,
               thread_id: str = "default") -> Iterator[Found | Answer]:
        """Like :meth:`ask`, but yields a :class:`Found` each time the tools return new records, then the
        :class:`Answer` last. Read it to the end: the turn runs only as far as it is read.

        The image is checked now (a rejected one raises here, before anything runs).
        """
        start = time.perf_counter()
        turn: dict[str, Any] = {}
        if image is not None:
            data = self._image_bytes(image)
            key = attachment_key(data)
            turn["attachments"] = {key: data}
            text = with_image(text, key)
        return self._run_turn({"messages": [HumanMessage(text)], **turn}, thread_id, start)

    def _run_turn(self, request: dict[str, Any], thread_id: str, start: float) -> Iterator[Found | Answer]:
        """The graph's states after each step (LangGraph's "values" stream): the records after a tools step,
        the answer after the last."""
        config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 30}
        shown: list[str] = []
        state: dict[str, Any] = {}
        for state in self.graph.stream(request, config, stream_mode="values"):
            if not isinstance(state["messages"][-1], ToolMessage):
                continue
            # The answer node's own assembly, so these records are deduplicated and ordered as the answer's.
            so_far = assemble_answer(state)["answer"]
            if so_far["records"] and [record.id for record in so_far["records"]] != shown:
                shown = [record.id for record in so_far["records"]]
                yield Found(records=so_far["records"], trace=so_far["trace"], seconds=time.perf_counter() - start)
        answer = state["answer"]
        yield Answer(text=answer["text"], words=answer["words"], records=answer["records"], trace=answer["trace"],
                     seconds=time.perf_counter() - start, thread_id=thread_id, messages=state["messages"],
                     fallback=answer.get("fallback", ""), ungrounded=answer.get("ungrounded", []))

    def history(self, thread_id: str) -> list[Any]:
        """The stored messages of a conversation ([] for a new thread id)."""
        snapshot = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        return list(snapshot.values.get("messages", [])) if snapshot and snapshot.values else []

    def close(self) -> None:
        self._connection.close()

    def _image_bytes(self, image: Path | bytes) -> bytes:
        """The image's bytes, refused now (one line) when too large or not an image Loupe can read."""
        name = Path("uploaded image") if isinstance(image, bytes) else Path(image).expanduser()
        limit = self.settings.max_upload_bytes
        if isinstance(image, bytes):
            data = image
        elif not name.is_file():  # a folder, a pipe (reading one would block) or nothing at all
            raise ImageRejected(f"{name}: not a readable image file")
        else:
            try:
                with name.open("rb") as handle:
                    data = handle.read(limit + 1)
            except OSError as exc:
                raise ImageRejected(f"{name}: cannot be read ({exc.strerror or exc})") from exc
        if len(data) > limit:
            raise ImageRejected(f"{name}: over the {limit // 2**20} MB limit for an attached image")
        decode_image_bytes(data, name, self.settings.max_pixels)
        return data


def _conversation_serializer() -> JsonPlusSerializer:
    """LangGraph's serializer, reviving only its own types and our records (STATE_TYPES) from a saved conversation:
    a conversation file written by anyone else cannot make Loupe construct other classes."""
    return JsonPlusSerializer(allowed_msgpack_modules=STATE_TYPES)
