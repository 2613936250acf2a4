"""The Streamlit app run by streamlit.testing's AppTest over real indexes."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest
from PIL import Image
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button, parse_tree_from_messages

from loupe.evals.duplicates_bench import write_with_copies
from loupe.api import Collection
from loupe.base.config import Settings
from tests.conftest import holidays_files, sroie_key
from loupe.tools.models import Models
from loupe.tools.toolbox import Toolbox
from loupe.ui.gallery import escape

COPIED = [holidays_files()[i] for i in (0, 5)]  # each with the copies below; Holidays 0, 5 and 20 are unrelated
KINDS = ("exact", "resized", "turned90")

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


def _page_so_far() -> list[str]:
    """The markdown the running script has sent to the browser so far (called from inside the app's run)."""
    runner = get_script_run_ctx()._enqueue.__self__  # AppTest's LocalScriptRunner, collecting every message
    return [m.value for m in parse_tree_from_messages(runner.forward_msgs()).markdown]


def test_the_records_reach_the_page_before_the_words(receipts_index: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Collection.stream
    seen: list[tuple[str, list[str]]] = []  # each event of the answer, with the page as it was when it came

    def watched(self: Collection, *args, **kwargs):
        events = stream(self, *args, **kwargs)
        return (seen.append((type(event).__name__, _page_so_far())) or event for event in events)

    monkeypatch.setattr(Collection, "stream", watched)
    app = _app(receipts_index.index_dir, monkeypatch)
    answer = _last_answer(_ask(app, f"find the receipt from {sroie_key('006')['company']}"))
    (found, before_found), (done, before_answer) = seen
    assert (found, done) == ("Found", "Answer")
    card = f"**#1 {answer['records'][0].file_name.replace('.', chr(92) + '.')}**"
    assert card not in before_found and card in before_answer  # drawn while the answer was still coming
    assert answer["words"] not in before_answer and answer["words"] in [m.value for m in app.markdown]
    final = [m.value for m in app.chat_message[-1].markdown]
    assert final.index(card) < final.index(answer["words"])  # the gallery above the words, as it came
    assert [b.label for b in app.button][:2] == ["More like this", "Show text"]  # buttons once it is done


def test_the_search_page_shows_the_grid_without_the_assistant(receipts_index: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def no_agent(self: Collection, *args, **kwargs):
        raise AssertionError("the search page asked the agent")

    monkeypatch.setattr(Collection, "stream", no_agent)
    app = _app(receipts_index.index_dir, monkeypatch)
    app.sidebar.radio[0].set_value("Search").run()
    company = sroie_key("006")["company"]
    next(t for t in app.text_input if t.label == "Words").set_value(company)
    _button(app, "Search").click().run()
    assert not app.exception and not app.error, (app.exception, [e.value for e in app.error])
    cards = [m.value for m in app.markdown if m.value.startswith("**#")]
    assert cards[0] == "**#1 006\\.jpg**" and any("orange-background" in m.value for m in app.markdown)
    labels = [b.label for b in app.button]
    assert labels.count("More like this") == len(cards) and "Show text" not in labels  # a search, not a chat

    _button(app, "More like this").click().run()  # the first card's look-alikes, itself left out
    after = [m.value for m in app.markdown if m.value.startswith("**#")]
    assert after and "**#1 006\\.jpg**" not in after and app.session_state.search_query == {
        "record_id": next(r["id"] for r in _rows(receipts_index) if r["file_name"] == "006.jpg")}

    app.file_uploader[0].set_value(("photo.jpg", (receipts_index.index_dir.parent / "receipts" / "003.jpg")
                                    .read_bytes(), "image/jpeg"))
    next(t for t in app.text_input if t.label == "Words").set_value("")
    _button(app, "Search").click().run()
    assert [m.value for m in app.markdown if m.value.startswith("**#")][0] == "**#1 003\\.jpg**"
    assert ":green-badge[identical]" in [m.value for m in app.markdown]


def _rows(settings: Settings) -> list[dict]:
    return Collection(settings).toolbox.table.find("true", columns=["id", "file_name"])


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


@pytest.fixture(scope="module")
def copies_library(models: Models, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    """Two photos with three copies each and one unrelated photo, indexed through the Python API."""
    root = tmp_path_factory.mktemp("copies")
    photos = root / "photos"
    write_with_copies(photos, COPIED, KINDS, [holidays_files()[20]])
    settings = dataclasses.replace(models.settings, index_dir=root / "index")
    report = Collection(settings, toolbox=Toolbox(settings, models)).index([photos])
    assert report.problems == [] and report.added == len(COPIED) * (1 + len(KINDS)) + 1
    return settings, photos


def _button(app: AppTest, label: str) -> Button:
    return next(button for button in app.button if button.label == label)


def _find_duplicates(app: AppTest) -> list:
    app.sidebar.radio[0].set_value("Duplicates").run()
    _button(app, "Find duplicates").click().run()
    assert not app.exception, app.exception
    return app.session_state.duplicate_review.report.groups


def _moves(app: AppTest, folder: Path) -> list[tuple[str, str]]:
    """The dry run's listing as the page shows it."""
    next(t for t in app.text_input if t.label == "Move copies to folder").set_value(str(folder))
    _button(app, "List the moves").click().run()
    assert not app.exception and not app.error, (app.exception, [e.value for e in app.error])
    table = app.dataframe[0].value
    return list(zip(table["from"], table["to"]))


def test_duplicates_page_shows_the_groups_and_lists_the_moves_for_the_keepers_picked(
        copies_library: tuple[Settings, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, photos = copies_library
    app = _app(settings.index_dir, monkeypatch)
    groups = _find_duplicates(app)
    expected = sorted({s.name, *(f"{s.stem}-{kind}.jpg" for kind in KINDS)} for s in COPIED)
    assert sorted({m.file_name for m in group.members} for group in groups) == expected
    assert any(c.value.startswith("2 groups, 6 copies in 9 images") for c in app.caption)
    assert len(app.image) == 8  # a thumbnail per member, the unrelated photo in none
    captions = [c.value for c in app.caption]
    for copy in (c for group in groups for c in group.copies):
        assert f"copy: {escape(copy.why)}" in captions
    assert any("SHA\\-256" in caption for caption in captions)  # the exact copy's reason

    before = _moves(app, tmp_path / "moved")
    assert sorted(source for source, _ in before) == sorted(c.path for group in groups for c in group.copies)
    keep = [radio for radio in app.radio if radio.label == "Keep"]
    assert len(keep) == 2 and [radio.value for radio in keep] == [group.keeper.id for group in groups]
    picked = next(c for c in groups[0].copies if c.file_name.endswith("-resized.jpg"))
    keep[0].set_value(picked.id).run()
    after = _moves(app, tmp_path / "moved")
    sources = [source for source, _ in after]
    assert picked.path not in sources and groups[0].keeper.path in sources and len(after) == 6
    assert all(Path(target).is_relative_to(tmp_path / "moved") for _, target in after)
    former = groups[0].with_keeper(picked.id).copies[0]  # the rule's keeper, now shown as a copy of the pick
    assert former.id == groups[0].keeper.id and f"copy: {escape(former.why)}" in [c.value for c in app.caption]

    next(t for t in app.text_input if t.label == "Move copies to folder").set_value(str(photos / "copies"))
    _button(app, "Move copies").click().run()
    assert any("inside the indexed collection" in e.value for e in app.error)
    assert not (photos / "copies").exists() and len(list(photos.iterdir())) == 9


def test_duplicates_page_keeps_a_pick_across_pages(copies_library: tuple[Settings, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from loupe.ui import duplicates_page

    monkeypatch.setattr(duplicates_page, "GROUPS_PER_PAGE", 1)
    app = _app(copies_library[0].index_dir, monkeypatch)
    groups = _find_duplicates(app)
    assert len(app.image) == 4 and len([r for r in app.radio if r.label == "Keep"]) == 1
    picked = groups[0].copies[-1]
    next(r for r in app.radio if r.label == "Keep").set_value(picked.id).run()
    app.number_input[0].set_value(2).run()
    assert {m.file_name for m in groups[1].members} == {c.value.strip("*").replace("\\", "") for c in app.markdown
                                                         if c.value.startswith("**") and "Group" not in c.value}
    sources = [source for source, _ in _moves(app, tmp_path / "moved")]
    assert picked.path not in sources and groups[0].keeper.path in sources and len(sources) == 6


def test_duplicates_page_moves_the_copies_out_and_says_how_to_undo(
        copies_library: tuple[Settings, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Last of the module's tests: it moves files out of the library the others read."""
    settings, photos = copies_library
    app = _app(settings.index_dir, monkeypatch)
    groups = _find_duplicates(app)
    picked = next(c for c in groups[1].copies if c.file_name.endswith("-turned90.jpg"))
    [radio for radio in app.radio if radio.label == "Keep"][1].set_value(picked.id).run()
    target = tmp_path / "moved"
    next(t for t in app.text_input if t.label == "Move copies to folder").set_value(str(target))
    _button(app, "Move copies").click().run()
    assert not app.exception and not app.error, (app.exception, [e.value for e in app.error])

    kept = {groups[0].keeper.file_name, picked.file_name, holidays_files()[20].name}
    assert {p.name for p in photos.iterdir()} == kept
    everyone = {m.file_name for group in groups for m in group.members}
    assert {p.name for p in (target / photos.name).iterdir()} == everyone - kept
    undo = next(target.glob("loupe-undo-*.json"))
    assert any(str(undo) in s.value and "Moved 6 copies" in s.value for s in app.success)
    assert f"duplicates --undo {undo}" in app.code[0].value and str(settings.index_dir) in app.code[0].value
    assert not [radio for radio in app.radio if radio.label == "Keep"]  # the old report is gone with the copies

    _button(app, "Find duplicates").click().run()  # the moved copies left the index
    assert any(c.value.startswith("0 groups, 0 copies in 3 images") for c in app.caption)


def test_duplicates_page_without_an_index_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(tmp_path / "index", monkeypatch)
    app.sidebar.radio[0].set_value("Duplicates").run()
    assert any("Nothing indexed yet" in i.value for i in app.info)
    assert not [b for b in app.button if b.label == "Find duplicates"]
