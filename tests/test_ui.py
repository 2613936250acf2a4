"""The Streamlit app run by streamlit.testing's AppTest over real indexes."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from loupe.config import Settings
from tests.conftest import holidays_files, sroie_key
from tools.toolbox import Toolbox

APP = Path(__file__).resolve().parents[1] / "ui" / "app.py"


def _app(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("LOUPE_INDEX", str(index_dir))
    monkeypatch.setenv("LOUPE_OFFLINE", "1")
    app = AppTest.from_file(str(APP), default_timeout=300)
    app.run()
    assert not app.exception, app.exception
    return app


def _ask(app: AppTest, text: str) -> AppTest:
    app.chat_input[0].set_value(text).run()
    assert not app.exception, app.exception
    return app


def _last_answer(app: AppTest) -> dict:
    return app.session_state.turns[-1]


def test_upload_ask_and_see_the_gallery(indexed: Toolbox, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(indexed.settings.index_dir, monkeypatch)
    source = holidays_files()[12]
    buffer = io.BytesIO()
    Image.open(source).convert("RGB").resize((240, 180)).save(buffer, "JPEG", quality=75)
    app.file_uploader[0].set_value(("phone.jpg", buffer.getvalue(), "image/jpeg"))
    _ask(app, "where else does this photo appear?")
    answer = _last_answer(app)
    assert answer["records"][0].file_name == source.name
    assert answer["records"][0].match == "near-duplicate"
    cards = [m.value for m in app.markdown if m.value.startswith("**#")]
    assert cards[0] == f"**#1 {source.stem}\\.jpg**"
    assert len(app.image) >= 1 + len(answer["records"])  # the upload, then a thumbnail per record
    assert [b.label for b in app.button][:2] == ["More like this", "Show text"]

    app.button[0].click().run()  # "More like this" on the first card
    follow = _last_answer(app)
    assert follow["trace"][0]["tool"] == "image_search"
    assert follow["trace"][0]["args"]["record_id"] == answer["records"][0].id


def test_follow_up_narrows_the_results(receipts_index: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(receipts_index.index_dir, monkeypatch)
    first = _last_answer(_ask(app, "receipts from SDN BHD companies"))
    narrowed = _last_answer(_ask(app, "only the ones from 2018"))
    # SROIE writes dates day first with a two- or four-digit year: "25/12/2018", "18-11-18".
    years = {f"{n:03d}.jpg": "20" + re.split(r"[/-]", sroie_key(f"{n:03d}")["date"])[-1][-2:] for n in range(8)}
    assert 0 < len(narrowed["records"]) < len(first["records"])
    assert all(years[r.file_name] == "2018" for r in narrowed["records"])
    highlighted = [m.value for m in app.markdown if "orange-background" in m.value]
    assert highlighted  # the matched words of the OCR text are highlighted


def test_broken_upload_shows_an_error_and_the_app_keeps_working(
        receipts_index: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(receipts_index.index_dir, monkeypatch)
    app.file_uploader[0].set_value(("broken.jpg", b"\xff\xd8\xff\xe0 not a jpeg at all", "image/jpeg"))
    _ask(app, "what is this?")
    assert any("not an image" in e.value for e in app.error)
    app.file_uploader[0].set_value(None)
    answer = _last_answer(_ask(app, f"find the receipt from {sroie_key('006')['company']}"))
    assert answer["records"][0].file_name == "006.jpg"


def test_missing_llm_key_is_explained(receipts_index: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    app = _app(receipts_index.index_dir, monkeypatch)
    app.sidebar.selectbox[0].set_value("openai").run()
    _ask(app, "find receipts")
    assert any("OPENAI_API_KEY" in e.value for e in app.error)


def test_collection_page_indexes_a_folder_and_lists_bad_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in holidays_files(2):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "empty.jpg").write_bytes(b"")
    app = _app(tmp_path / "index", monkeypatch)
    app.sidebar.radio[0].set_value("Collection").run()
    assert any("Nothing indexed yet" in i.value for i in app.info)
    app.text_input[0].set_value(str(folder))
    app.button[0].click().run()  # the form's "Index" button
    assert not app.exception, app.exception
    assert any("2 added" in s.value for s in app.success)
    assert any("empty.jpg" in w.value and "0 bytes" in w.value for w in app.warning)
    app.run()
    assert [m.value for m in app.metric][0] == "2"
