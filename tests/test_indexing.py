"""Indexing real images: incremental runs, metadata, bad input, and crash safety."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loupe.base.config import Settings
from loupe.base.errors import LoupeError
from loupe.indexer import Indexer, IndexReport, pace
from loupe.metadata import load_metadata
from loupe.store.image_table import ImageTable
from loupe.evals.paths import DATASETS
from tests.conftest import holidays_files
from loupe.tools.models import Models
from loupe.tools.toolbox import Toolbox

REPO = Path(__file__).resolve().parents[1]


def _copy_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(p, folder / p.name)) for p in holidays_files(count)]


def _index(settings: Settings, models: Models, roots: list[Path], **kwargs) -> tuple[IndexReport, ImageTable]:
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    return Indexer(settings, models, table, batch_size=3).run(roots, **kwargs), table


@pytest.fixture()
def fresh(tmp_path: Path, models: Models) -> Settings:
    """Settings pointing at an empty index; the session's models are reused."""
    return dataclasses.replace(models.settings, index_dir=tmp_path / "index")


def _paths(table: ImageTable) -> list[str]:
    return [row["path"] for row in table.find("true", limit=1000, columns=["path"])]


def test_rerun_is_incremental_and_prune_removes_deleted(fresh: Settings, models: Models, tmp_path: Path) -> None:
    photos = _copy_photos(tmp_path / "photos", 5)
    report, table = _index(fresh, models, [tmp_path / "photos"])
    assert (report.added, report.updated, report.unchanged) == (5, 0, 0)
    row = table.find(f"file_name = '{photos[0].name}'", limit=1)[0]
    assert row["width"] > 0 and row["caption_kind"] == "tags" and row["caption"]

    report, _ = _index(fresh, models, [tmp_path / "photos"])
    assert (report.added, report.updated, report.unchanged) == (0, 0, 5)
    assert report.stage_seconds.get("embed", 0) == 0  # no model ran

    Image.open(photos[1]).convert("RGB").rotate(90, expand=True).save(photos[1])  # changed content
    os.utime(photos[2], (time.time() + 5, time.time() + 5))  # touched, same content
    photos[3].unlink()
    report, table = _index(fresh, models, [tmp_path / "photos"], prune=True)
    assert (report.added, report.updated, report.unchanged, report.pruned) == (0, 1, 3, 1)  # photos 0, 4 by stat; 2 by hash
    assert sorted(Path(p).name for p in _paths(table)) == sorted(p.name for p in photos if p.exists())
    assert len(set(_paths(table))) == table.count() == 4

    for photo in photos:  # all touched, none changed: no features or thumbnails computed, the stored ones kept
        if photo.exists():
            os.utime(photo, (time.time() + 9, time.time() + 9))
    report, table = _index(fresh, models, [tmp_path / "photos"])
    assert (report.added, report.updated, report.unchanged) == (0, 0, 4)
    assert report.stage_seconds.get("local-features", 0) == 0 and report.stage_seconds.get("thumbnail", 0) == 0
    rows = table.find("true", limit=10, columns=["path", "thumbnail", "orb_descriptors"])
    assert all(row["thumbnail"] and row["orb_descriptors"] for row in rows)


def test_prune_leaves_rows_of_other_folders(fresh: Settings, models: Models, tmp_path: Path) -> None:
    _copy_photos(tmp_path / "a", 2)
    other = tmp_path / "b"
    other.mkdir()
    shutil.copyfile(holidays_files(3)[2], other / "only_in_b.jpg")
    _index(fresh, models, [tmp_path / "a", other])
    report, table = _index(fresh, models, [tmp_path / "a"], prune=True)
    assert report.pruned == 0 and table.count() == 3


def test_metadata_joined_by_name_and_applied_later_without_reindexing(
        fresh: Settings, models: Models, tmp_path: Path) -> None:
    photos = _copy_photos(tmp_path / "photos", 3)
    _index(fresh, models, [tmp_path / "photos"])
    csv_file = tmp_path / "meta.csv"
    csv_file.write_text(
        "file,title,price,date,colour\n"
        f"{photos[0].name},Lake at dawn,€12.50,2019-05-04,blue\n"
        f"{photos[1].name},Old mill,not a price,,red\n",
        encoding="utf-8",
    )
    metadata = load_metadata(csv_file)
    report, table = _index(fresh, models, [tmp_path / "photos"], metadata=metadata)
    assert report.metadata_updated == 2 and report.indexed == 0
    assert any("not a price" in p for p in metadata.problems)
    row = table.find(f"file_name = '{photos[0].name}'", limit=1)[0]
    assert (row["title"], row["price"], row["year"]) == ("Lake at dawn", 12.5, 2019)
    assert '"colour": "blue"' in row["metadata_json"]
    assert table.find("year = 2019", limit=10, columns=["id"])  # usable as a filter
    assert table.full_text_search("dawn", 5)[0]["file_name"] == photos[0].name


@pytest.mark.parametrize("content, message", [
    ("not,a,header\n1,2,3\n", "header row must name the image column"),
    ("", "header row must name the image column"),
    ("file,title\n,a title but no file\n", "no usable entries"),
])
def test_wrong_metadata_file_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "meta.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LoupeError, match=message):
        load_metadata(path)
    with pytest.raises(LoupeError, match="does not exist"):
        load_metadata(tmp_path / "missing.jsonl")


def test_jsonl_metadata_with_a_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "meta.jsonl"
    path.write_text('{"sha256": "abc", "title": "x", "tags": ["a"]}\n{broken\n', encoding="utf-8")
    metadata = load_metadata(path)
    assert metadata.by_key["abc"].title == "x"
    assert metadata.problems and "not valid JSON" in metadata.problems[0]


def _bad_files(folder: Path) -> dict[str, str]:
    """Every kind of bad file, with a word its message must contain."""
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "not_an_image.png").write_text("hello", encoding="utf-8")
    good = holidays_files(1)[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    # A decompression bomb: 30000 x 30000 pixels in a few hundred kilobytes.
    Image.new("1", (30000, 30000)).save(folder / "bomb.png")
    (folder / "notes.txt").write_text("skipped silently: not an image suffix", encoding="utf-8")
    bad_name = os.fsencode(folder) + b"/caf\xe9.jpg"
    with open(bad_name, "wb") as handle:
        handle.write(good)
    return {"empty.jpg": "0 bytes", "not_an_image.png": "not an image", "truncated.jpg": "truncated",
            "bomb.png": "megapixels", "caf": "not valid UTF-8"}


def test_bad_files_are_reported_and_good_ones_indexed(fresh: Settings, models: Models, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _copy_photos(tmp_path / "photos", 2)
    expected = _bad_files(tmp_path / "photos" / "bad")
    locked = tmp_path / "photos" / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path=".", *args):
        # Running as root, chmod cannot make a folder unreadable; the OS error is simulated.
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path, *args)

    monkeypatch.setattr(os, "scandir", scandir)
    report, table = _index(fresh, models, [tmp_path / "photos", tmp_path / "missing_folder"])
    assert report.added == 2 and table.count() == 2
    for name, word in expected.items():
        assert any(name in p and word in p for p in report.problems), (name, report.problems)
    assert any("locked" in p and "cannot be read" in p for p in report.problems)
    assert any("missing_folder" in p and "no such file" in p for p in report.problems)
    assert len(report.problems) == len(expected) + 2

    report, table = _index(fresh, models, [tmp_path / "photos"])  # nothing lost, nothing doubled
    assert table.count() == 2 and report.added == 0


def test_file_vanishing_mid_run_is_reported(fresh: Settings, models: Models, tmp_path: Path) -> None:
    photos = _copy_photos(tmp_path / "photos", 5)

    def progress(done: int, total: int, stage: str) -> None:
        if photos[4].exists():
            photos[4].unlink()  # deleted after the walk found it, before it was read

    table = ImageTable.open_or_create(fresh.index_dir, models.index_info())
    report = Indexer(fresh, models, table, batch_size=2).run([tmp_path / "photos"], progress=progress)
    assert report.added == 4 and table.count() == 4
    assert any(photos[4].name in p and "not found" in p for p in report.problems)


def test_index_built_with_other_models_is_refused(fresh: Settings, models: Models, tmp_path: Path) -> None:
    _index(fresh, models, [_copy_photos(tmp_path / "photos", 1)[0]])
    other = dataclasses.replace(models.index_info(), image_encoder="open_clip:ViT-B-32", image_dim=512)
    with pytest.raises(LoupeError, match="Vectors of different models cannot be mixed"):
        ImageTable.open_or_create(fresh.index_dir, other)


def test_reading_threads_write_the_same_rows_as_the_serial_indexer(fresh: Settings, models: Models,
                                                                   tmp_path: Path) -> None:
    photos = _copy_photos(tmp_path / "photos", 5)
    for receipt in sorted((DATASETS / "sroie" / "images").iterdir())[:2]:  # rows with OCR text too
        photos.append(Path(shutil.copyfile(receipt, tmp_path / "photos" / receipt.name)))
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    tables = {}
    for workers in (1, 2):
        settings = dataclasses.replace(fresh, index_dir=tmp_path / f"index-{workers}")
        table = ImageTable.open_or_create(settings.index_dir, models.index_info())
        report = Indexer(settings, models, table, batch_size=3, workers=workers).run([tmp_path / "photos"])
        assert report.added == len(photos) and len(report.problems) == 1 and "broken.jpg" in report.problems[0]
        columns = [field.name for field in table._table.schema]  # every stored column, vectors too
        tables[workers] = {row["path"]: row for row in table.find("true", limit=100, columns=columns)}
    serial, threaded = tables[1], tables[2]
    assert serial.keys() == threaded.keys() and len(serial) == len(photos)
    assert sum(bool(row["ocr_text"]) for row in serial.values()) >= 2
    for path, row in serial.items():
        other = threaded[path]
        for column in ("image_vector", "ocr_vector", "caption_vector"):
            assert np.allclose(row[column], other[column], atol=1e-5), (path, column)
        differing = {c for c in row if c not in ("image_vector", "ocr_vector", "caption_vector", "indexed_at")
                     and row[c] != other[c]}
        assert not differing, (path, differing)  # same OCR text, hashes, keypoints, thumbnail...


@pytest.mark.parametrize("workers", ["1", "2"])
def test_kill_dash_nine_then_resume_loses_and_duplicates_nothing(tmp_path: Path, workers: str) -> None:
    photos = _copy_photos(tmp_path / "photos", 12)
    index_dir = tmp_path / "index"
    command = [sys.executable, "-m", "loupe.cli", "--index", str(index_dir), "index", str(tmp_path / "photos"),
               "--batch-size", "2", "--workers", workers]
    env = {**os.environ, "LOUPE_OFFLINE": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    rows = 0
    while time.time() < deadline and process.poll() is None:
        try:
            rows = ImageTable.open(index_dir).count()
        except Exception:  # noqa: BLE001 - the index may not exist yet
            rows = 0
        if rows >= 2:
            break
        time.sleep(0.1)
    assert process.poll() is None, "indexing finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 2 <= ImageTable.open(index_dir).count() < len(photos)

    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    table = ImageTable.open(index_dir)
    paths = _paths(table)
    assert table.count() == len(photos) == len(set(paths))
    assert sorted(Path(p).name for p in paths) == sorted(p.name for p in photos)


def test_metadata_reaches_a_touched_but_unchanged_file(fresh: Settings, models: Models, tmp_path: Path) -> None:
    photos = _copy_photos(tmp_path / "photos", 1)
    _index(fresh, models, [tmp_path / "photos"])
    os.utime(photos[0], (time.time() + 10, time.time() + 10))
    meta = tmp_path / "meta.jsonl"
    meta.write_text('{"file": "%s", "title": "Harbour", "date": "2017-08-01"}\n' % photos[0].name, encoding="utf-8")
    report, table = _index(fresh, models, [tmp_path / "photos"], metadata=load_metadata(meta))
    assert report.unchanged == 1 and report.indexed == 0
    row = table.find("true", limit=1, columns=["title", "year", "mtime"])[0]
    assert (row["title"], row["year"]) == ("Harbour", 2017) and row["mtime"] == photos[0].stat().st_mtime


def test_a_long_lived_reader_sees_rows_another_process_indexed(fresh: Settings, models: Models,
                                                               tmp_path: Path) -> None:
    photos = _copy_photos(tmp_path / "photos", 3)
    _index(fresh, models, [photos[0]])
    toolbox = Toolbox(fresh, models)  # like the UI: opened once, kept for the whole session
    assert toolbox.table.count() == 1
    command = [sys.executable, "-m", "loupe.cli", "--index", str(fresh.index_dir), "index", str(tmp_path / "photos")]
    finished = subprocess.run(command, cwd=REPO, env={**os.environ, "LOUPE_OFFLINE": "1"}, capture_output=True,
                              text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert toolbox.table.count() == 3
    found = toolbox.image_search(image=photos[2], k=1)  # inside the collection, found by the other process
    assert found.records[0].file_name == photos[2].name and found.records[0].match == "identical"


def test_skipped_files_make_index_exit_with_status_3(tmp_path: Path) -> None:
    _copy_photos(tmp_path / "photos", 1)
    (tmp_path / "photos" / "empty.jpg").write_bytes(b"")
    command = [sys.executable, "-m", "loupe.cli", "--index", str(tmp_path / "index"), "index", str(tmp_path / "photos")]
    finished = subprocess.run(command, cwd=REPO, env={**os.environ, "LOUPE_OFFLINE": "1"}, capture_output=True,
                              text=True, timeout=600)
    assert finished.returncode == 3, finished.stderr
    assert "empty.jpg" in finished.stdout and "1 added" in finished.stdout


def test_disk_full_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    """A real full disk: a 12 MB tmpfs holds the index (mounting needs root, as CI runs)."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        photos = _copy_photos(tmp_path / "photos", 2)
        command = [sys.executable, "-m", "loupe.cli", "--index", str(mount / "index"), "index"]
        env = {**os.environ, "LOUPE_OFFLINE": "1"}
        first = subprocess.run([*command, str(photos[0])], cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=600)
        assert first.returncode == 0, first.stderr
        _fill_disk(mount / "filler")
        full = subprocess.run([*command, str(tmp_path / "photos")], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)
        assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
        assert "disk full" in full.stderr and len(full.stderr.strip().splitlines()) == 1, full.stderr
        (mount / "filler").unlink()
        assert ImageTable.open(mount / "index").count() == 1  # the earlier commit is intact
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _fill_disk(path: Path) -> None:
    handle = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(handle, b"\0" * 65536):
            pass
    except OSError:
        pass  # ENOSPC: the disk is full now
    finally:
        os.close(handle)


def test_a_changed_file_gets_a_fresh_thumbnail_and_long_metadata_is_capped(fresh: Settings, models: Models,
                                                                           tmp_path: Path) -> None:
    photo = _copy_photos(tmp_path / "photos", 1)[0]
    meta = tmp_path / "meta.csv"
    meta.write_text(f"file,description\n{photo.name},{'very long words ' * 600}\n", encoding="utf-8")
    _index(fresh, models, [photo], metadata=load_metadata(meta))
    toolbox = Toolbox(fresh, models)
    before = toolbox.text_search("very long words", k=1).records[0]
    assert len(before.metadata["description"]) <= 503  # 9,600 characters stored, 500 shown and kept in answers
    Image.open(photo).rotate(90, expand=True).save(photo)  # the file changes in place
    _index(fresh, models, [photo])
    after = toolbox.text_search("very long words", k=1).records[0]
    assert after.thumbnail_path != before.thumbnail_path
    assert Image.open(after.thumbnail_path).size == Image.open(before.thumbnail_path).size[::-1]


def test_the_progress_line_gives_the_rate_and_the_time_left() -> None:
    assert pace(0, 10, 0.0) == "starting"
    assert pace(5, 10, 1.0) == "5.0 images/s, 1 s left"
    assert pace(1, 1000, 1.0) == "1.0 images/s, 17 min left"
    assert pace(10, 10, 2.0) == "5.0 images/s"
