"""Loupe's Streamlit app: a chat with image upload and camera, a gallery per answer,
a plain search page (the grid without the assistant), the collection page, the
duplicates page and the LLM settings. Started by ``loupe ui``.

The app is a thin layer over the Python API (:class:`loupe.api.Collection`), like
the CLI and the MCP server, so every question goes to the same agent as ``loupe
ask``; the conversation is kept by its checkpointer under the thread id shown in
the sidebar. An answer's records are drawn as soon as the searches return
(:meth:`Collection.stream`), its words after them. The collection is opened with
``outside_paths=False``: the browser sends uploads as bytes and never names a
file on the server.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator

import streamlit as st

from loupe.agent.llm import backend_label, backend_names
from loupe.api import Answer, Collection, Found
from loupe.base.config import LLMSettings, Settings, load_settings
from loupe.base.errors import LoupeError
from loupe.tools.models import Models
from loupe.tools.process import configure_process
from loupe.tools.toolbox import Toolbox
from loupe.ui.collection_page import collection_page
from loupe.ui.duplicates_page import duplicates_page
from loupe.ui.gallery import query_words, show_records
from loupe.ui.search_page import IMAGE_TYPES, search_page

log = logging.getLogger("loupe.ui")


@st.cache_resource(show_spinner="Loading models...")
def models_for(settings: Settings) -> Models:
    return Models(settings)


@st.cache_resource(show_spinner=False)
def collection_for(settings: Settings) -> Collection:
    """One collection per settings (the LLM backend is part of them), shared by every browser session, so a
    question does not reload the models or reopen the table; cleared when indexing changed the rows."""
    return Collection(settings, outside_paths=False, toolbox=Toolbox(settings, models_for(settings)))


def settings_panel(base: Settings) -> Settings:
    """The sidebar's LLM backend choice; returns the settings the chat uses."""
    with st.sidebar.expander("Settings", expanded=False):
        backends = backend_names()
        backend = st.selectbox("LLM backend", backends, index=backends.index(base.llm.backend)
                               if base.llm.backend in backends else 0)
        model = st.text_input("Model", value=base.llm.model, disabled=backend == "rule-based")
        base_url = st.text_input("Server URL (OpenAI-compatible)", value=base.llm.base_url,
                                 disabled=backend != "openai-compatible", placeholder="http://127.0.0.1:8080/v1")
    return dataclasses.replace(base, llm=LLMSettings(backend=backend, model=model, base_url=base_url))


def new_conversation() -> None:
    st.session_state.thread = uuid.uuid4().hex[:8]
    st.session_state.turns = []


def queue_question(text: str) -> None:
    st.session_state.pending = text


def ask(settings: Settings, question: str, image: bytes | None) -> None:
    """The question, then its records as soon as the searches return, then the words; both turns are kept."""
    turns = st.session_state.turns
    user_turn = {"role": "user", "text": question, "image": image}
    reply = None
    try:  # a rejected upload fails here, before anything runs or is drawn
        events = collection_for(settings).stream(question, image=image, thread=st.session_state.thread)
    except Exception as exc:  # noqa: BLE001 - the page gets one line (see failure)
        user_turn["image"] = None  # a rejected upload may not even be drawable
        reply = {"role": "assistant", "error": failure(exc, settings, question)}
    turns.append(user_turn)
    show_user_turn(user_turn)
    with st.chat_message("assistant"):
        reply = reply or follow(events, settings, question, key=f"turn{len(turns)}")
        if "error" in reply:
            st.error(reply["error"])
    turns.append(reply)


def follow(events: Iterator[Found | Answer], settings: Settings, question: str, key: str) -> dict:
    """Draw each batch of records as the tools return it, then the finished answer in its place."""
    shown, status = st.empty(), st.empty()
    status.caption("Searching...")
    try:
        for event in events:
            if isinstance(event, Found):
                with shown.container():
                    show_records(event.records, query_words(event.trace), key)
                status.caption(f"{len(event.records)} found in {event.seconds:.1f} s · writing the answer...")
    except Exception as exc:  # noqa: BLE001 - the page gets one line (see failure)
        shown.empty()
        status.empty()
        return {"role": "assistant", "error": failure(exc, settings, question)}
    turn = {"role": "assistant", "words": event.words, "records": event.records, "trace": event.trace,
            "seconds": event.seconds}
    status.empty()
    with shown.container():
        show_answer(turn, key)
    return turn


def failure(exc: Exception, settings: Settings, question: str) -> str:
    """One line for the page: a LoupeError says what to do; anything else is logged, its details kept off it."""
    if isinstance(exc, LoupeError):
        return str(exc)
    log.error("answering %r failed", question[:200], exc_info=exc)
    if type(exc).__module__.split(".")[0] in ("openai", "httpx", "httpcore"):
        return f"the LLM backend ({backend_label(settings.llm)}) failed ({type(exc).__name__})"
    return "Loupe hit an unexpected error; the details are in the server's log"


def show_turns() -> None:
    for number, turn in enumerate(st.session_state.turns):
        if turn["role"] == "user":
            show_user_turn(turn)
            continue
        with st.chat_message("assistant"):
            if "error" in turn:
                st.error(turn["error"])
            else:
                show_answer(turn, key=f"turn{number}")


def show_user_turn(turn: dict) -> None:
    with st.chat_message("user"):
        if turn.get("image"):
            st.image(turn["image"], width=240)
        st.markdown(turn["text"])


def show_answer(turn: dict, key: str) -> None:
    """Results before words: the gallery, then the explanation, then the tools' timings."""
    if turn["records"]:
        show_records(turn["records"], query_words(turn["trace"]), key,
                     on_more=lambda rank: queue_question(f"more like #{rank}"),
                     on_text=lambda rank: queue_question(f"what does the text on #{rank} say?"))
    st.markdown(turn["words"] or "(no explanation)")
    tools = ", ".join(f"{s['tool']} ({(s.get('seconds') or 0) * 1000:.0f} ms)" for s in turn["trace"])
    st.caption(f"{tools or 'no tool'} · {turn['seconds']:.1f} s")


def chat_page(settings: Settings) -> None:
    st.title("Loupe")
    st.caption(f"Ask about your images · {backend_label(settings.llm)}")
    upload = st.file_uploader("Drop an image to search with", type=IMAGE_TYPES)
    with st.expander("Take a photo"):
        shot = st.camera_input("Camera")
    image_file = upload or shot
    image = image_file.getvalue() if image_file is not None else None

    question = st.chat_input("Ask, e.g. \"where else does this photo appear?\" or \"only the ones from 2019\"")
    if st.session_state.get("pending"):
        question, image = st.session_state.pop("pending"), None
    elif question and image is not None:
        # An image is attached to the first question after it is chosen; follow-ups refer back to it.
        marker = hash(image)
        if st.session_state.get("used_image") == marker:
            image = None
        else:
            st.session_state.used_image = marker
    elif question is None:
        image = None
    show_turns()
    if question:
        ask(settings, question, image)


def main() -> None:
    configure_process()
    st.set_page_config(page_title="Loupe", page_icon=":mag:", layout="centered")
    if "thread" not in st.session_state:
        new_conversation()
    try:
        base = load_settings()
    except LoupeError as exc:
        st.error(str(exc))
        return
    page = st.sidebar.radio("Page", ["Chat", "Search", "Collection", "Duplicates"], horizontal=True)
    settings = settings_panel(base)
    st.sidebar.button("New conversation", on_click=new_conversation)
    st.sidebar.caption(f"thread {st.session_state.thread} · index {settings.index_name}")
    if page == "Chat":
        chat_page(settings)
    elif page == "Search":
        search_page(collection_for(settings))
    elif page == "Collection":
        collection_page(collection_for(settings), on_indexed=collection_for.clear)
    else:
        duplicates_page(collection_for(settings))


main()
