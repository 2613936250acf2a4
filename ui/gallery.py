"""Drawing an answer's records: thumbnail, score, match badge, highlighted text, metadata."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from loupe.tools.records import MatchedRecord, MatchLabel

BADGE_COLOURS = {MatchLabel.IDENTICAL: "green", MatchLabel.NEAR_DUPLICATE: "blue", MatchLabel.POSSIBLE: "gray",
                 MatchLabel.SIMILAR: "violet", MatchLabel.TEXT_MATCH: "orange"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|$~:])")
_WORD = re.compile(r"\w+", re.UNICODE)


def escape(text: str) -> str:
    """OCR text shown as markdown must not turn '$4.99' into maths or '*' into emphasis."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def highlight(text: str, query: str) -> str:
    """Markdown of ``text`` with the words it shares with ``query`` highlighted."""
    wanted = {w.lower() for w in _WORD.findall(query)}
    parts = []
    for piece in re.split(r"(\w+)", text):
        if piece and piece.lower() in wanted:
            parts.append(f":orange-background[**{escape(piece)}**]")
        else:
            parts.append(escape(piece))
    return "".join(parts)


def query_words(trace: list[dict]) -> str:
    """The words the searches ran with, for highlighting."""
    return " ".join(str(step["args"].get("query", "")) for step in trace)


def show_records(records: list[MatchedRecord], words: str, key: str, on_more: Callable[[int], None] | None = None,
                 on_text: Callable[[int], None] | None = None) -> None:
    """Two cards per row on a wide screen; Streamlit stacks them on a phone. ``words`` are highlighted in the
    matched text. A card gets a button per callback given: the records shown while the answer is still being
    written get none, since a widget's key may appear only once in a run and the finished answer brings them."""
    for start in range(0, len(records), 2):
        columns = st.columns(2)
        for offset, record in enumerate(records[start:start + 2]):
            rank = start + offset + 1
            with columns[offset].container(border=True):
                _card(record, rank, words, key, on_more, on_text)


def _card(record: MatchedRecord, rank: int, words: str, key: str, on_more: Callable[[int], None] | None,
          on_text: Callable[[int], None] | None) -> None:
    if record.thumbnail_path and Path(record.thumbnail_path).is_file():
        st.image(record.thumbnail_path, width="stretch")
    st.markdown(f"**#{rank} {escape(record.file_name)}**")
    st.badge(record.match, color=BADGE_COLOURS.get(record.match, "gray"))
    st.caption(f"score {record.score:.2f} · {record.why}")
    if facts := record.facts_line():
        st.caption(escape(facts))
    if record.matched_text:
        st.markdown("Matched text: " + highlight(record.matched_text, words))
    if record.caption:
        st.caption(f"{record.caption_kind or 'caption'}: {record.caption}")
    with st.expander("Metadata"):
        st.json({"path": record.path, "id": record.id, **record.metadata})
    buttons = [(label, name, callback) for label, name, callback in (
        ("More like this", "more", on_more), ("Show text", "text", on_text)) if callback is not None]
    for column, (label, name, callback) in zip(st.columns(2) if buttons else [], buttons):
        column.button(label, key=f"{key}-{name}-{rank}", on_click=callback, args=(rank,))
