"""Asking the agent: one call per user message, conversations kept on disk by thread id.

The graph's state is saved after every step by LangGraph's SQLite
checkpointer in ``<index>/conversations.sqlite``, so a conversation survives a
restart: asking again with the same thread id continues it. An attached image
travels as bytes in that state, never as a path in the message text.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver

from loupe.agent.conversation import attachment_key, with_image
from loupe.agent.graph import build_graph
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


class Assistant:
    def __init__(self, settings: Settings, model: BaseChatModel | None = None,
                 toolbox: Toolbox | None = None) -> None:
        self.settings = settings
        self.toolbox = toolbox or Toolbox(settings)
        self.toolbox.table  # fail now, with the "run loupe index" message, if there is no index
        self._connection = sqlite3.connect(settings.index_dir / CONVERSATIONS_FILE, check_same_thread=False)
        tools = make_tools(self.toolbox)
        self.graph = build_graph(model or make_chat_model(settings.llm), tools, make_call_check(self.toolbox, tools),
                                 SqliteSaver(self._connection))

    def ask(self, text: str, image: Path | bytes | None = None, thread_id: str = "default") -> Answer:
        """One user message (words, optionally an image) in a conversation; returns the explained answer.

        ``image`` is an upload's bytes or a file the caller chose (the CLI's ``--image``); either way the
        agent gets its bytes, checked here, and no path.
        """
        start = time.perf_counter()
        turn: dict[str, Any] = {}
        if image is not None:
            data = self._image_bytes(image)
            key = attachment_key(data)
            turn["attachments"] = {key: data}
            text = with_image(text, key)
        config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 30}
        state = self.graph.invoke({"messages": [HumanMessage(text)], **turn}, config)
        answer = state["answer"]
        records = [MatchedRecord.from_dict(record) for record in answer["records"]]
        return Answer(text=answer["text"], words=answer["words"], records=records, trace=answer["trace"],
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
