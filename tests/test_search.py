"""image_search and text_search over a real index of Holidays, SROIE and SMVS images."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import SMVS, SMVS_SAMPLE, holidays_files, sroie_ids, sroie_key
from loupe.tools.boundary import ChosenFile
from loupe.tools.records import MatchLabel
from loupe.tools.toolbox import Toolbox


def _jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _edited_copies(path: Path) -> dict[str, bytes]:
    image = Image.open(path).convert("RGB")
    w, h = image.size
    return {
        "resized": _jpeg_bytes(image.resize((w // 2, h // 2)), 90),
        "recompressed": _jpeg_bytes(image, 30),
        "cropped": _jpeg_bytes(image.crop((int(w * 0.1), int(h * 0.1), int(w * 0.9), int(h * 0.9))), 90),
        "turned": _jpeg_bytes(image.rotate(90, expand=True), 90),  # a copy that lost its EXIF orientation
    }


@pytest.mark.parametrize("source", holidays_files()[::6], ids=lambda p: p.name)
def test_edited_copy_comes_back_first_as_near_duplicate(indexed: Toolbox, source: Path) -> None:
    for edit, data in _edited_copies(source).items():
        result = indexed.image_search(image=data, k=5)
        top = result.records[0]
        assert top.file_name == source.name, f"{edit} copy of {source.name} found {top.file_name}"
        assert top.match == MatchLabel.NEAR_DUPLICATE, f"{edit}: {top.match} ({top.why})"


def test_exact_copy_is_identical(indexed: Toolbox, tmp_path: Path) -> None:
    source = holidays_files()[3]
    copy = tmp_path / "renamed copy.jpg"
    shutil.copyfile(source, copy)
    result = indexed.image_search(image=ChosenFile(copy), k=5)
    assert result.records[0].file_name == source.name
    assert result.records[0].match == MatchLabel.IDENTICAL
    assert "SHA-256" in result.records[0].why
    assert result.records[0].thumbnail_path and Path(result.records[0].thumbnail_path).is_file()


def test_same_scene_photo_is_found_as_similar_or_better(indexed: Toolbox) -> None:
    # Holidays 100000.jpg and 100001.jpg are two photos of the same scene.
    query, relevant = holidays_files()[0], holidays_files()[1]
    result = indexed.image_search(image=ChosenFile(query), k=5)
    labels = {r.file_name: r.match for r in result.records}
    assert labels[query.name] == MatchLabel.IDENTICAL
    assert labels.get(relevant.name) in (MatchLabel.NEAR_DUPLICATE, MatchLabel.SIMILAR)


def test_phone_photo_finds_its_catalogue_record(indexed: Toolbox) -> None:
    truth = json.loads((SMVS / "groundtruth.json").read_text())
    indexed_refs = {p.name for p in sorted((SMVS / "reference").iterdir())[:SMVS_SAMPLE]}
    cases = [c for c in truth if Path(c["relevant"][0]).name in indexed_refs]
    hits = verified = 0
    for case in cases:
        result = indexed.image_search(image=ChosenFile(SMVS / case["query"]), k=3)
        expected = "dvd_" + Path(case["relevant"][0]).name
        if result.records and result.records[0].file_name == expected:
            hits += 1
            verified += result.records[0].match == MatchLabel.NEAR_DUPLICATE
            assert "local features" in result.records[0].why or result.records[0].match == MatchLabel.NEAR_DUPLICATE
    assert hits / len(cases) >= 0.85, f"{hits} of {len(cases)} phone photos found their DVD cover first"
    assert verified / len(cases) >= 0.8, f"only {verified} of {len(cases)} labelled near-duplicate"


def test_unrelated_picture_returns_nothing_rather_than_padding(indexed: Toolbox) -> None:
    flat = Image.new("RGB", (300, 200), (90, 160, 220))
    result = indexed.image_search(image=_jpeg_bytes(flat, 90), k=5)
    assert result.records == []
    assert "nothing" in result.note


def test_more_like_a_record_excludes_the_record_itself(indexed: Toolbox) -> None:
    first = indexed.image_search(image=ChosenFile(holidays_files()[0]), k=1).records[0]
    result = indexed.image_search(record_id=first.id, k=5)
    assert first.id not in [r.id for r in result.records]
    assert holidays_files()[1].name in [r.file_name for r in result.records]


@pytest.mark.parametrize("receipt", sroie_ids(), ids=str)
def test_receipt_found_by_printed_company_name(indexed: Toolbox, receipt: str) -> None:
    company = sroie_key(receipt)["company"]
    result = indexed.text_search(company, k=5)
    names = [r.file_name for r in result.records]
    assert f"receipt_{receipt}.jpg" in names, f"{company!r} -> {names}"
    hit = result.records[names.index(f"receipt_{receipt}.jpg")]
    assert hit.match == MatchLabel.TEXT_MATCH and hit.matched_text


def test_receipt_found_by_total(indexed: Toolbox) -> None:
    found = 0
    for receipt in sroie_ids():
        total = sroie_key(receipt)["total"]
        names = [r.file_name for r in indexed.text_search(f"total {total}", k=5).records]
        found += f"receipt_{receipt}.jpg" in names
    assert found >= len(sroie_ids()) - 1, f"only {found} of {len(sroie_ids())} receipts found by their total"


def test_an_amount_run_into_its_currency_and_only_words_of_a_request_finds_the_receipts_that_print_it(
        indexed: Toolbox) -> None:
    """"Would you find the receipt where I paid RM73.00, please?": the amount is all it names, so a record that
    prints it as a whole amount is a match to show (the agent shows matches only), and one printing 173.00 is not."""
    for receipt in sroie_ids():
        total = sroie_key(receipt)["total"]
        shown = indexed.text_search(f"the receipt where I paid RM{total}", k=10, matches_only=True).records
        assert f"receipt_{receipt}.jpg" in [r.file_name for r in shown], total
        assert all(re.search(rf"(?<![\d.,]){re.escape(total)}(?!\d)", r.ocr_text or "") for r in shown), total


def test_an_amount_in_a_story_still_finds_the_receipts_that_print_it(indexed: Toolbox) -> None:
    receipt = sroie_ids()[0]
    total = sroie_key(receipt)["total"]
    shown = indexed.text_search(f"the bank feed has an unmatched card line for exactly RM{total}. which receipt is it",
                                k=10, matches_only=True).records
    assert f"receipt_{receipt}.jpg" in [r.file_name for r in shown]


def test_where_filter_restricts_results(indexed: Toolbox) -> None:
    result = indexed.text_search("SDN BHD", k=10, where="file_name LIKE 'receipt_00%'")
    assert result.records
    assert all(r.file_name.startswith("receipt_00") for r in result.records)


def test_nonsense_text_finds_nothing(indexed: Toolbox) -> None:
    assert indexed.text_search("zxqvbnm qwpzk", k=5).records == []


def test_stored_ocr_and_caption_of_a_record(indexed: Toolbox) -> None:
    record = indexed.text_search(sroie_key("000")["company"], k=1).records[0]
    ocr = indexed.ocr(record_id=record.id)
    assert ocr.from_index and "TAMAN DAYA" in ocr.text.upper()
    assert all(0 <= x <= 1 and 0 <= y <= 1 for line in ocr.lines for x, y in line.box)
    caption = indexed.caption(record_id=record.id)
    assert caption.kind == "tags" and "printed text" in caption.text


def test_a_request_naming_only_a_filter_lists_every_record_the_filter_chooses(indexed: Toolbox) -> None:
    """"Pull every receipt dated 27 March 2018": the words name nothing, so a receipt of that day is shown even
    where it prints no word of the request; words that name something still have to match."""
    day = indexed.table.find("date IS NOT NULL", limit=1)[0]["date"]
    where = f"date = '{day}'"
    of_that_day = {row["file_name"] for row in indexed.table.find(where)}
    shown = indexed.text_search("whatever i bought that day, maybe yeah", k=10, where=where, matches_only=True)
    assert {r.file_name for r in shown.records} == of_that_day
    assert indexed.text_search("zxqvbnm", k=10, where=where, matches_only=True).records == []  # a name: nothing
    # a story around the filter whose words no record of that day holds: the day's records
    story = indexed.text_search("Prior-year audit: I need all receipts", k=10, where=where, matches_only=True)
    assert {r.file_name for r in story.records} == of_that_day
    assert all("matches the filter" in r.why for r in story.records)


def test_a_quoted_company_name_finds_its_receipt(indexed: Toolbox) -> None:
    """A phrase in quotes is matched as typed; the full-text index, which keeps no word positions, ranks its words
    instead of refusing the phrase query."""
    receipt = sroie_ids()[0]
    company = sroie_key(receipt)["company"]
    names = [r.file_name for r in indexed.text_search(f'"{company}"', k=5).records]
    assert f"receipt_{receipt}.jpg" in names, f"{company!r} -> {names}"
