"""The Python API (loupe.open): the README's example as written, and what each method returns."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import loupe
from loupe.base.errors import LoupeError
from loupe.sample import build_sample
from tests.test_boundary import recording
from loupe.tools.boundary import PathRefused
from loupe.tools.records import MatchedRecord, MatchLabel

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("sample")
    collection, _, queries = build_sample(folder)
    with loupe.open(folder / "index") as photos:
        assert photos.index([collection]).problems == []
    return collection, folder / "index", queries


def readme_example() -> str:
    """The first Python block under "### Python API" in the README."""
    section = README.read_text(encoding="utf-8").split("### Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(sample: tuple[Path, Path, dict[str, Path]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    collection, index, queries = sample
    monkeypatch.setenv("LOUPE_OFFLINE", "1")
    code = (readme_example().replace('"~/.loupe/index"', repr(str(index)))
            .replace('"~/Pictures"', repr(str(collection))).replace('"phone_photo.jpg"',
                                                                   repr(str(queries["temple_phone_photo"]))))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert re.match(r"\d+ added", lines[0]) and lines[0].endswith("[]")
    assert lines[1].startswith("receipt_bookshop.png text match")
    image_hits = [line for line in lines if re.fullmatch(r"\S+ (identical|near-duplicate|similar) \d\.\d\d", line)]
    assert image_hits[0].startswith("temple") and "near-duplicate" in image_hits[0]
    assert "18.60" in printed.getvalue()  # the agent read the bookshop's total
    groups = [line for line in lines if line.startswith("keep ")]
    assert any(line.startswith("keep daisy.jpg") and "daisy_cropped.jpg" in line for line in groups)
    assert not any("receipt" in line for line in groups)  # three receipts of one layout are not copies


def test_search_ask_record_and_errors(sample: tuple[Path, Path, dict[str, Path]]) -> None:
    collection, index, queries = sample
    with loupe.open(index) as photos:
        photos.index([collection])  # nothing new: a no-op that keeps the index
        by_text = photos.search(text="total 21.00", k=3)
        assert isinstance(by_text[0], MatchedRecord) and by_text[0].file_name == "receipt_hardware.png"
        photo = queries["temple_phone_photo"]
        both = photos.search(image=photo, text="temple", k=5)
        assert both[0].file_name.startswith("temple")  # found by both searches: first

        record = photos.record(by_text[0].id)
        assert record.path == by_text[0].path and "MILLER HARDWARE" in record.ocr_text
        assert photos.thumbnail(record.id)[:2] == b"\xff\xd8"
        assert "MILLER" in photos.ocr(record_id=record.id).text
        again = photos.search(record_id=record.id, k=3)
        assert record.id not in {r.id for r in again}
        with pytest.raises(LoupeError, match="no record with id nope"):
            photos.record("nope")
        with pytest.raises(LoupeError, match="give an image"):
            photos.search()


def test_a_server_collection_reads_no_path_outside_the_indexed_folders(
        sample: tuple[Path, Path, dict[str, Path]], tmp_path: Path) -> None:
    collection, index, queries = sample
    private = tmp_path / "private.jpg"
    private.write_bytes(queries["temple_phone_photo"].read_bytes())
    upload = private.read_bytes()
    with loupe.open(index, outside_paths=False) as served, recording() as opened:
        inside = next((collection / "photos").glob("temple*.jpg"))
        assert served.search(image=inside, k=1)[0].match == MatchLabel.IDENTICAL
        messages = set()
        for path in (private, tmp_path / "missing.jpg"):
            with pytest.raises(PathRefused) as refused:
                served.search(image=path)
            messages.add(str(refused.value).replace(str(path), "PATH"))
        assert len(messages) == 1 and "Loupe reads only" in messages.pop()  # the same whether the file exists
        for call in (lambda: served.ask("what is this?", image=private), lambda: served.ocr(image=private),
                     lambda: served.caption(image=str(private))):
            with pytest.raises(PathRefused):
                call()
        assert served.search(image=upload, k=1)[0].file_name.startswith("temple")  # an upload's bytes
    assert str(inside) in opened and str(private) not in opened  # the hook sees reads, and none outside
