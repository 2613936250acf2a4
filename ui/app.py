"""Loupe's Streamlit app: a chat with image upload and camera, a gallery per answer,
the collection page, the duplicates page and the LLM settings. Started by ``loupe ui``.

The app is a thin layer over the Python API (:class:`loupe.api.Collection`), like
the CLI and the MCP server, so every question goes to the same agent as ``loupe
ask``; the conversation is kept by its checkpointer under the thread id shown in
the sidebar. The collection is opened with ``outside_paths=False``: the browser
sends uploads as bytes and never names a file on the server.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

import streamlit as st

from loupe.agent.llm import backend_label, backend_names
from loupe.api import Collection
from loupe.base.config import LLMSettings, Settings, load_settings
from loupe.base.errors import LoupeError
from loupe.tools.models import Models
from loupe.tools.process import configure_process
from loupe.tools.toolbox import Toolbox
from loupe.ui.collection_page import collection_page
from loupe.ui.duplicates_page import duplicates_page
from loupe.ui.gallery import show_records

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
    turns = st.session_state.turns
    user_turn = {"role": "user", "text": question, "image": image}
    turns.append(user_turn)
    try:
        collection = collection_for(settings)
        with st.spinner("Searching..."):
            answer = collection.ask(question, image=image, thread=st.session_state.thread)
    except LoupeError as exc:
        user_turn["image"] = None  # a rejected upload may not even be drawable
        turns.append({"role": "assistant", "error": str(exc)})
        return
    except Exception as exc:  # noqa: BLE001 - the page gets one line; the details go to the server's log
        log.exception("answering %r failed", question[:200])
        if type(exc).__module__.split(".")[0] in ("openai", "httpx", "httpcore"):
            message = f"the LLM backend ({backend_label(settings.llm)}) failed ({type(exc).__name__})"
        else:
            message = "Loupe hit an unexpected error; the details are in the server's log"
        turns.append({"role": "assistant", "error": message})
        return
    turns.append({"role": "assistant", "words": answer.words, "records": answer.records, "trace": answer.trace,
                  "seconds": answer.seconds})


def show_turns() -> None:
    for number, turn in enumerate(st.session_state.turns):
        with st.chat_message(turn["role"]):
            if turn["role"] == "user":
                if turn.get("image"):
                    st.image(turn["image"], width=240)
                st.markdown(turn["text"])
            elif "error" in turn:
                st.error(turn["error"])
            else:
                st.markdown(turn["words"] or "(no explanation)")
                if turn["records"]:
                    show_records(turn["records"], turn["trace"], key=f"turn{number}",
                                 on_more=lambda rank: queue_question(f"more like #{rank}"),
                                 on_text=lambda rank: queue_question(f"what does the text on #{rank} say?"))
                tools = ", ".join(f"{s['tool']} ({(s.get('seconds') or 0) * 1000:.0f} ms)" for s in turn["trace"])
                st.caption(f"{tools or 'no tool'} · {turn['seconds']:.1f} s")


def chat_page(settings: Settings) -> None:
    st.title("Loupe")
    st.caption(f"Ask about your images · {backend_label(settings.llm)}")
    upload = st.file_uploader("Drop an image to search with", type=["jpg", "jpeg", "png", "webp", "bmp", "gif",
                                                                    "tif", "tiff"])
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
    if question:
        ask(settings, question, image)
    show_turns()


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
    page = st.sidebar.radio("Page", ["Chat", "Collection", "Duplicates"], horizontal=True)
    settings = settings_panel(base)
    st.sidebar.button("New conversation", on_click=new_conversation)
    st.sidebar.caption(f"thread {st.session_state.thread} · index {settings.index_dir}")
    if page == "Chat":
        chat_page(settings)
    elif page == "Collection":
        collection_page(collection_for(settings), on_indexed=collection_for.clear)
    else:
        duplicates_page(collection_for(settings))


main()
