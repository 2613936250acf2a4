"""Text search's name retriever on a real LanceDB table: a long name is found where OCR misread one character."""

from __future__ import annotations

from pathlib import Path

import pytest

from loupe.store.image_table import ImageTable
from loupe.tools.text_search import MATCH_NAME_COVERAGE, _name_matches, word_weight
from tests.test_aggregate import INFO, _line, receipt_row

pytestmark = pytest.mark.fast  # no model is loaded


def test_a_long_name_with_one_character_misread_is_found_first(tmp_path: Path) -> None:
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    misread = receipt_row("042", [_line("Taste Of The WorId Sdn Bhd", 0.1), _line("TOTAL 64.15", 0.5)])
    other = receipt_row("027", [_line("MR. D.I.Y. (M) SDN BHD", 0.1), _line("WORLD OF TOOLS", 0.2)],
                        "/receipts/world.jpg")
    table.upsert([misread, other])
    ranked, shares = _name_matches(table, "the receipt from TASTE OF THE WORLD SDN BHD", None)
    assert [row["id"] for row, _ in ranked] == [misread["id"], other["id"]]
    assert shares[misread["id"]] == 1.0 and shares[other["id"]] < 0.5  # "world" alone is not the name
    assert _name_matches(table, "taste of the wurst", None)[0][0][0]["id"] == misread["id"]  # "taste" is printed
    assert _name_matches(table, "tasty wold", None)[0] == []  # two characters off is another name


def test_a_plural_finds_the_singular_and_a_record_is_credited_with_every_name_it_holds(tmp_path: Path) -> None:
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    breakfast = receipt_row("009", [_line("Licensee of McDonald's", 0.1), _line("1 BM 2 HotCakes 10.00", 0.5)])
    tools = receipt_row("081", [_line("MR. D.I.Y. SDN BHD", 0.1), _line("BATTERY LR03 AAA", 0.5)],
                        "/receipts/battery.jpg")
    table.upsert([breakfast, tools])
    assert [row["id"] for row, _ in _name_matches(table, "the batteries", None)[0]] == [tools["id"]]
    both = _name_matches(table, "mcdonalds brekfast, the one with the hotcakes", None)[1]
    one = _name_matches(table, "mcdonalds brekfast, the one with the pancakes", None)[1]
    assert both[breakfast["id"]] >= MATCH_NAME_COVERAGE > one[breakfast["id"]]  # the hotcakes make it a match


def test_a_name_told_inside_a_story_still_matches(tmp_path: Path) -> None:
    """The common words of a story that no record prints count less than a name that none prints, and a name of
    two words matches however long the story around it (agent_unseen6: "After the midnight screening marathon a
    bunch of us drove up to Genting Highlands and demolished a ribs platter")."""
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    ribs = receipt_row("050", [_line("RESTORAN GENTING HIGHLANDS", 0.1), _line("BBQ PORK RIBS 45.00", 0.5)])
    other = receipt_row("027", [_line("MR. D.I.Y. (M) SDN BHD", 0.1), _line("HIGHLANDS TOWER", 0.2)],
                        "/receipts/other.jpg")
    table.upsert([ribs, other])
    story = "after the midnight screening marathon a bunch of us drove up to genting highlands and demolished a platter"
    shares = _name_matches(table, story, None)[1]
    assert shares[ribs["id"]] >= MATCH_NAME_COVERAGE > shares[other["id"]]  # "highlands" alone names nothing
    assert word_weight("marathon", 0, 100) < word_weight("petronas", 0, 100)  # a story's word, a name's
    assert word_weight("marathon", 2, 100) == word_weight("petronas", 2, 100)  # printed: its rarity alone
