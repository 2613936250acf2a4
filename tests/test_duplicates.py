"""The duplicate report on a real index: copies of every kind grouped with their original, look-alikes and
unrelated photos left alone, the keeper rule, moving copies out and back, and the CLI's four formats."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from loupe.evals.duplicates_bench import COPY_KINDS, write_with_copies
from loupe.api import Collection
from loupe.base.config import Settings
from loupe.base.errors import LoupeError
from tests.conftest import SROIE, holidays_files, sroie_key
from tests.test_cli import loupe
from loupe.tools import duplicates
from loupe.tools.document_fields import printed_date
from loupe.tools.duplicates import parse_keeper_rule

ORIGINALS = [holidays_files()[i] for i in (0, 5, 12)]
UNRELATED = [holidays_files()[i] for i in (20, 23)]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Collection, Path]:
    root = tmp_path_factory.mktemp("library")
    photos = root / "photos"
    write_with_copies(photos, ORIGINALS, COPY_KINDS, UNRELATED)
    collection = Collection(Settings(index_dir=root / "index", offline=True))
    report = collection.index([photos])
    assert report.problems == []
    return collection, photos


def test_every_copy_kind_is_grouped_with_its_original_and_nothing_else(library: tuple[Collection, Path]) -> None:
    collection, photos = library
    report = collection.duplicates()
    groups = sorted({Path(m.path).name for m in group.members} for group in report.groups)
    expected = sorted({source.name, *(f"{source.stem}-{kind}.jpg" for kind in COPY_KINDS)} for source in ORIGINALS)
    assert groups == expected
    whys = {Path(c.path).name: c.why for group in report.groups for c in group.copies}
    stem = ORIGINALS[0].stem
    assert "a rotated copy" in whys.get(f"{stem}-turned90.jpg", "a rotated copy")  # unless it is the keeper
    assert any("SHA-256" in why for why in whys.values()) and any("same pixels" in why for why in whys.values())
    assert report.pairs_checked < report.rows * (report.rows - 1) // 2


def test_the_keeper_follows_the_rule(library: tuple[Collection, Path]) -> None:
    collection, _ = library
    by_resolution = collection.duplicates()
    for group in by_resolution.groups:  # the screenshot-like copy has the most pixels (its border)
        assert group.keeper.width * group.keeper.height == max(m.width * m.height for m in group.members)
    by_path = collection.duplicates(keep=parse_keeper_rule("path"))
    for group in by_path.groups:
        assert len(group.keeper.path) == min(len(m.path) for m in group.members)
        assert Path(group.keeper.path).name in {source.name for source in ORIGINALS}
    with pytest.raises(LoupeError, match="resolution, date, size, path"):
        parse_keeper_rule("biggest")


def test_copies_move_out_with_an_undo_file_and_come_back(library: tuple[Collection, Path], tmp_path: Path) -> None:
    collection, photos = library
    report = collection.duplicates(keep=parse_keeper_rule("path"))
    before = sorted(p.name for p in photos.iterdir())
    planned, undo = collection.move_duplicates(report, tmp_path / "copies", dry_run=True)
    assert len(planned) == report.copies and undo is None and sorted(p.name for p in photos.iterdir()) == before

    for inside in (photos / "copies", photos.parent):  # the parent: copies would land back in photos/
        with pytest.raises(LoupeError, match="inside the indexed collection"):
            collection.move_duplicates(report, inside, dry_run=False)
    occupied = Path(planned[0][1])
    occupied.parent.mkdir(parents=True)
    occupied.write_bytes(b"someone else's file")
    replanned, _ = collection.move_duplicates(report, tmp_path / "copies", dry_run=True)
    assert replanned[0][1] == str(occupied.with_name(f"{occupied.stem} (2){occupied.suffix}"))  # never replaced

    moved, undo = collection.move_duplicates(report, tmp_path / "copies", dry_run=False)
    assert len(moved) == report.copies and undo is not None and undo.is_file()
    left = sorted(p.name for p in photos.iterdir())
    assert left == sorted([s.name for s in ORIGINALS] + [s.name for s in UNRELATED])
    assert all(Path(target).is_file() for _, target in moved) and occupied.read_bytes() == b"someone else's file"
    assert collection.toolbox.table.count() == len(before) - report.copies  # their rows left the index

    restored = duplicates.undo_moves(undo)
    assert len(restored) == report.copies and sorted(p.name for p in photos.iterdir()) == before
    assert collection.index([photos]).added == report.copies  # indexed again on request


def test_cli_prints_json_csv_and_a_contact_sheet(library: tuple[Collection, Path], tmp_path: Path) -> None:
    collection, _ = library
    index = collection.settings.index_dir
    result = loupe("duplicates", "--format", "json", index=index)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["groups"]) == len(ORIGINALS) and data["copies"] == len(ORIGINALS) * len(COPY_KINDS)

    rows = list(csv.DictReader(io.StringIO(loupe("duplicates", "--format", "csv", index=index).stdout)))
    assert sum(row["role"] == "keep" for row in rows) == len(ORIGINALS)

    sheet = tmp_path / "sheet.html"
    assert loupe("duplicates", "--format", "html", "--out", str(sheet), index=index).returncode == 0
    assert sheet.read_text().count("data:image/jpeg;base64,") == len(rows)

    refused = loupe("duplicates", "--keep", "newest", index=index)
    assert refused.returncode == 1 and refused.stderr.strip().count("\n") == 0


@pytest.mark.fast
def test_hash_candidates_find_every_pair_within_the_limit_and_none_beyond() -> None:
    rng = np.random.default_rng(3)
    hashes = rng.integers(-2**63, 2**63 - 1, 400)
    near = hashes.copy()
    for i in range(0, 400, 2):  # each odd row within 0..6 bits of the row before it, or 7 bits (not a copy)
        bits = rng.choice(64, size=(i // 2) % 8, replace=False)
        near[i + 1] = hashes[i] ^ np.bitwise_or.reduce(np.left_shift(np.int64(1), bits.astype(np.int64)), initial=0)
    rows = [{"phash": int(value), "rotated_phashes": []} for value in near]
    rows[0]["rotated_phashes"] = [int(hashes[200] ^ 1), 5, 6]  # row 0, turned 90 degrees, is row 200's copy
    found = duplicates._hash_pairs(rows)
    expected = {(i, i + 1) for i in range(0, 400, 2) if (i // 2) % 8 <= 6}
    assert {pair for pair, (_, turned) in found.items() if not turned} >= expected
    assert found[(0, 200)] == (1, 90)
    for (i, j), (bits, turned) in found.items():
        assert bits <= 6 and (turned or bin((int(near[i]) ^ int(near[j])) & (2**64 - 1)).count("1") == bits)


@pytest.mark.fast
def test_embedding_cells_find_the_same_neighbours_as_comparing_every_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((3000, 64)).astype(np.float32)
    vectors[1::2] = vectors[0::2] + 0.2 * rng.standard_normal((1500, 64)).astype(np.float32)  # near copies
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    every = duplicates._embedding_pairs(vectors)
    monkeypatch.setattr(duplicates, "BRUTE_FORCE_ROWS", 100)
    cells = duplicates._embedding_pairs(vectors)
    copies = {(i, i + 1) for i in range(0, 3000, 2)}
    assert copies <= every
    assert len(copies & cells) >= 0.99 * len(copies)


def _printed_receipt(receipt_id: str, text_edit: tuple[str, str] = ("", "")) -> dict:
    """A row as the indexer stores a SROIE receipt's text (its annotated lines), with one misreading if asked."""
    lines = [line.split(",", 8)[8] for line in (SROIE / "box" / f"{receipt_id}.csv").read_text().splitlines()
             if line.count(",") >= 8]
    text = "\n".join(lines).replace(*text_edit)
    return {"ocr_text": text, "date": printed_date(text), "total": float(sroie_key(receipt_id)["total"].lstrip("$"))}


@pytest.mark.fast
def test_receipts_of_one_shop_for_one_order_are_told_apart_by_their_time_a_misread_copy_is_not() -> None:
    first, second = _printed_receipt("030"), _printed_receipt("036")  # same shop, items and total; 9 days apart
    assert first["total"] == second["total"] and first["date"] != second["date"]
    assert not duplicates._mostly_other_numbers(first["ocr_text"], second["ocr_text"])  # the old rule let it by
    assert duplicates._different_documents(first, second)
    misread = _printed_receipt("030", ("05 MAR 2018", "06 MAR 2018"))  # a bad copy: one digit of the date
    assert misread["date"] != first["date"] and not duplicates._different_documents(first, misread)
