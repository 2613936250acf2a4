"""The collection page: what is indexed, with which models, and indexing a folder with progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from loupe.api import Collection
from loupe.base.errors import LoupeError
from loupe.indexer import pace
from loupe.store.image_table import IndexNotFoundError


def collection_page(collection: Collection, on_indexed: Callable[[], None]) -> None:
    st.title("Collection")
    try:
        table = collection.toolbox.table
    except IndexNotFoundError:
        table = None
        st.info(f"Nothing indexed yet in {collection.settings.index_name}. Index a folder below.")
    if table is not None:
        info = table.info
        left, right = st.columns(2)
        left.metric("Images", table.count())
        right.metric("Last indexed", (table.last_indexed() or "never").replace("T", " ")[:16])
        st.markdown(f"**Models:** image {info.image_encoder} ({info.image_dim}-d) · text {info.text_embedder} "
                    f"({info.text_dim}-d) · OCR {info.ocr} · captions {info.captioner}")

    with st.form("index"):
        folder = st.text_input("Folder to index", placeholder="/home/me/Pictures")
        prune = st.checkbox("Remove rows of files deleted from this folder")
        submitted = st.form_submit_button("Index")
    if submitted and folder:
        run_indexing(collection, Path(folder).expanduser(), prune)
        on_indexed()


def run_indexing(collection: Collection, folder: Path, prune: bool) -> None:
    bar = st.progress(0.0, text="Looking for images...")
    start = time.perf_counter()

    def progress(done: int, total: int, stage: str) -> None:
        bar.progress(done / total if total else 1.0,
                     text=f"{done} of {total} images · {stage} · {pace(done, total, time.perf_counter() - start)}")

    try:
        report = collection.index([folder], prune=prune, progress=progress)
    except LoupeError as exc:
        st.error(str(exc))
        return
    bar.progress(1.0, text="Done")
    st.success(f"Indexed: {report.summary()}")
    if report.problems:
        with st.expander(f"{len(report.problems)} files could not be indexed", expanded=True):
            for problem in report.problems:
                st.warning(problem)
