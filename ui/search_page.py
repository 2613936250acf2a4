"""The search page: words and/or a picture straight to the records gallery, no LLM and no conversation.

For people who only want the grid: the same searches the agent's tools run (:meth:`Collection.search`), the same
cards as the chat's answers. "More like this" on a card searches by that record; nothing here is remembered by
the agent's conversations.
"""

from __future__ import annotations

import streamlit as st

from loupe.api import Collection
from loupe.base.errors import LoupeError
from loupe.ui.gallery import show_records

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
RESULTS = 12  # six rows of two cards


def search_page(collection: Collection) -> None:
    st.title("Search")
    st.caption("Words and/or a picture, straight to the matching records: no assistant, no explanation.")
    with st.form("search"):
        words = st.text_input("Words", placeholder="corner bookshop, total 18.60, a dog on a beach")
        upload = st.file_uploader("Picture", type=IMAGE_TYPES)
        submitted = st.form_submit_button("Search")
    if submitted:
        st.session_state.search_query = {"text": words.strip() or None,
                                         "image": upload.getvalue() if upload is not None else None}
    query = st.session_state.get("search_query")
    if query:
        show_results(collection, query)


def show_results(collection: Collection, query: dict) -> None:
    """The records of one search (by words, picture or record id), or the one-line reason there are none."""
    if not any(query.values()):
        st.info("Type some words or choose a picture to search with.")
        return
    try:
        records = collection.search(k=RESULTS, **query)
    except LoupeError as exc:
        st.error(str(exc))
        return
    if not records:
        st.info("Nothing matched well enough to show.")
        return
    st.caption(f"{len(records)} records, best first")
    show_records(records, query.get("text") or "", key="search",
                 on_more=lambda rank: more_like(records[rank - 1].id))


def more_like(record_id: str) -> None:
    """The next search: records that show what this one shows."""
    st.session_state.search_query = {"record_id": record_id}
