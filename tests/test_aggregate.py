"""Exact figures over a real LanceDB table of SROIE receipts: sums, counts, latest, groups, and what is left out."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lancedb
import pyarrow as pa

import loupe
from loupe.evals.bench import synthetic_rows
from loupe.evals.document_fields_eval import truth_lines
from loupe.cli import app
from loupe.base.config import Settings
from loupe.base.errors import LoupeError
from loupe.indexer import Indexer, derived_columns, record_id, search_text
from loupe.store.filters import Condition
from loupe.store.image_table import ImageTable
from loupe.store.schema import TABLE_NAME, IndexInfo, image_table_schema
from tests.conftest import SROIE, sroie_key
from loupe.tools.aggregate import aggregate
from loupe.tools.document_fields import iso_date

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier

INFO = IndexInfo("efficientnet-lite0", 1280, "all-MiniLM-L6-v2", 384, "rapidocr", "tags")
AEON = ("031", "071", "093", "094")  # AEON CO. (M) BHD, printed with and without a final dot; no currency sign
MR_DIY = ("004", "027", "079", "081")  # MR D.I.Y. (M), MR. D.I.Y. (M), MR.D.I.Y(M), MR. D.I.Y. SDN BHD; RM
SHELL, DOLLARS = "019", "030"  # SHELL ISNI PETRO TRADING (RM); UNIHAKKA prints its amounts with "$"


def receipt_row(stem: str, lines: list[dict] | None = None, path: str | None = None) -> dict:
    """A table row for a SROIE receipt, its OCR being the ground-truth lines, its fields derived as indexing does."""
    random.seed(stem)
    row = synthetic_rows(int(stem), 1, INFO, np.random.default_rng(int(stem)))[0]
    lines = truth_lines(SROIE / "images" / f"{stem}.jpg", SROIE / "box" / f"{stem}.csv") if lines is None else lines
    path = path or f"/receipts/{stem}.jpg"
    row.update(id=record_id(path), path=path, file_name=Path(path).name, year=None, taken_at=None,
               ocr_text="\n".join(line["text"] for line in lines), ocr_lines=json.dumps(lines))
    row["search_text"] = search_text(row)
    return {**row, **derived_columns(row)}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> ImageTable:
    table = ImageTable.open_or_create(tmp_path_factory.mktemp("receipts") / "index", INFO)
    rows = [receipt_row(stem) for stem in (*AEON, *MR_DIY, SHELL, DOLLARS)]
    header = truth_lines(SROIE / "images" / f"{SHELL}.jpg", SROIE / "box" / f"{SHELL}.csv")[:8]
    rows.append(receipt_row(SHELL, header, "/receipts/shell-torn.jpg"))  # the top half: the shop, no total
    rows.append(receipt_row("500", [], "/photos/beach.jpg"))  # a photo: no text at all
    table.upsert(rows)
    return table


def _id(table: ImageTable, name: str) -> str:
    return table.find(f"file_name = '{name}'", limit=1, columns=["id"])[0]["id"]


def test_a_run_of_the_typed_words_may_have_one_letter_misread_or_lost(tmp_path: Path) -> None:
    """OCR lost the I of LIAN HING: the name is still found when typed with other words around it."""
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    misread = receipt_row("073", [_line("LAN HING STATIONERY SDN BHD", 0.1), _line("TOTAL 79.50", 0.5)])
    table.upsert([misread, receipt_row("500", [], "/photos/beach.jpg")])
    for typed in ("lian hing", "stationery lian hing", "lian hing stationery"):
        assert aggregate(table, "count", shop=typed).ids == [misread["id"]]
    assert aggregate(table, "count", shop="stationery lian king").value == 0  # one letter in one run, no more


def test_a_long_name_may_be_typed_with_its_vowels_left_out(tmp_path: Path) -> None:
    """"99 spdmart" is 99 SPEED MART; the typed consonants must all be printed, in order, with only vowels between."""
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    mart = receipt_row("040", [_line("99 SPEED MART S/B", 0.1), _line("TOTAL 12.30", 0.5)])
    other = receipt_row("041", [_line("99 SPECTRUM ART SDN BHD", 0.1), _line("TOTAL 8.00", 0.5)], "/r/041.jpg")
    table.upsert([mart, other])
    for typed in ("99 spdmart", "99spdmrt", "99 speedmart"):
        assert aggregate(table, "count", shop=typed).ids == [mart["id"]]
    assert aggregate(table, "count", shop="spdm").value == 0  # a short run says no name: no vowels are filled in


def test_words_no_receipt_prints_are_left_out_of_a_shop_only_where_a_name_is_left(tmp_path: Path) -> None:
    """"hit lightroom gallery": a word of the question left in the shop's name; "home depot" is no HOME MASTER."""
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    gallery = receipt_row("016", [_line("LIGHTROOM GALLERY SDN BHD", 0.1), _line("TOTAL 73.00", 0.5)])
    hardware = receipt_row("012", [_line("HOME MASTER HARDWARE", 0.1), _line("TOTAL 15.90", 0.5)],
                           "/receipts/home.jpg")
    table.upsert([gallery, hardware])
    found = aggregate(table, "count", shop="hit lightroom gallery")
    assert found.ids == [gallery["id"]] and "'hit'" in found.left_out[-1]
    assert aggregate(table, "count", shop="home depot").value == 0


def test_a_shop_typed_with_its_kind_or_legal_form_is_found(table: ImageTable) -> None:
    """"aeon store" is AEON CO.; "mr diy sdn bhd" is also MR. D.I.Y. (M) where no SDN BHD was read."""
    assert aggregate(table, "count", shop="aeon store").value == len(AEON)
    assert aggregate(table, "count", shop="aeonstore").value == len(AEON)
    assert aggregate(table, "count", shop="mr diy sdn bhd").value == len(MR_DIY)
    assert aggregate(table, "count", shop="shell co").value == 2  # Shell's two, not AEON CO.'s


def test_a_shop_typed_with_its_branch_is_found_where_its_receipts_print_the_branch(table: ImageTable) -> None:
    """AEON's receipts print "AEON TAMAN MALURI SC" under the company's name; no shop name has "maluri"."""
    assert aggregate(table, "count", shop="aeon maluri").value == len(AEON)
    assert aggregate(table, "count", "item", shop="aeon maluri").value == 6  # 1 + 3 + 1 + 1 printed item lines
    assert aggregate(table, "count", shop="mr diy maluri").value == 0  # MR D.I.Y.'s receipts print no Maluri
    assert aggregate(table, "count", shop="aeon co").value == len(AEON)  # the name alone needs no branch


def test_a_misspelt_shop_is_read_as_the_name_the_receipts_print(table: ImageTable) -> None:
    """"unihaka" (a K lost, seven letters: too short to be read with a letter lost) is UNIHAKKA, as printed."""
    unihakka = aggregate(table, "count", shop="unihakka")
    assert unihakka.value == 1 and aggregate(table, "count", shop="unihaka").ids == unihakka.ids
    assert aggregate(table, "count", shop="walmart").value == 0  # no printed word like it: nothing is made to match


def test_the_sum_spent_at_a_shop_in_a_year_names_its_receipts(table: ImageTable) -> None:
    result = aggregate(table, "sum", "total", [Condition("year", "=", 2018)], shop="aeon")
    assert result.value == pytest.approx(75.00 + 17.70 + 5.90 + 5.90) and result.currency is None
    assert sorted(result.ids) == sorted(_id(table, f"{stem}.jpg") for stem in AEON)
    assert result.left_out == [] and result.missing == [] and result.selected == 4


def test_a_shop_is_found_however_it_is_typed(table: ImageTable) -> None:
    for typed in ("Mr Diy", "mr d.i.y", "MRDIY"):
        assert aggregate(table, "count", shop=typed).value == len(MR_DIY)
    latest = aggregate(table, "latest", shop="Shell")  # the whole receipt, and its torn top half with no date
    assert latest.value == "2018-03-18" and latest.ids == [_id(table, f"{SHELL}.jpg")]
    assert latest.missing == [_id(table, "shell-torn.jpg")]
    assert latest.left_out == ["1 of 2 records show no readable date"]
    earliest = aggregate(table, "earliest", shop="mr diy")  # 079's product code "CK 11-22-31" is no date
    assert earliest.value == min(iso_date(sroie_key(stem)["date"]) for stem in MR_DIY) == "2017-09-19"


def test_an_empty_set_is_zero_or_no_value_never_an_error(table: ImageTable) -> None:
    assert aggregate(table, "count", shop="Starbucks").value == 0
    empty = aggregate(table, "sum", shop="Starbucks")
    assert (empty.value, empty.ids, empty.left_out, empty.selected) == (None, [], [], 0)


def test_rows_without_a_total_are_left_out_and_said_to_be(table: ImageTable) -> None:
    result = aggregate(table, "sum", shop="shell")
    assert result.value == 86.00 and result.currency == "MYR" and result.ids == [_id(table, f"{SHELL}.jpg")]
    assert result.missing == [_id(table, "shell-torn.jpg")]
    assert result.left_out == ["1 of 2 records show no readable total"]


def test_figures_over_item_lines_name_the_item_and_the_receipts_without_any(table: ImageTable) -> None:
    """MR DIY's four receipts print 5, 2, 0 (as read) and 1 item lines; the priciest is the WD40 at 11.23."""
    priciest = aggregate(table, "max", "item", shop="mr diy")
    assert (priciest.value, priciest.items, priciest.currency) == (11.23, ["WD40 27ML MOO 2572"], "MYR")
    assert priciest.ids == [_id(table, "004.jpg")] and priciest.selected == 4
    assert priciest.left_out == ["1 of 4 records show no readable item lines"]
    counted = aggregate(table, "count", "item", shop="mr diy")
    assert counted.value == 8 and len(counted.ids) == 3 and counted.missing == [_id(table, "079.jpg")]
    assert aggregate(table, "sum", "item", shop="unihakka").value == 8.20  # its items add up to its total
    assert aggregate(table, "count", "item", shop="Starbucks").value == 0


def test_a_dollar_sign_on_a_malaysian_receipt_is_ringgit(table: ImageTable) -> None:
    """UNIHAKKA (Johor) prints "$8.20" for RM 8.20: its total is added to the RM receipts', and the answer says so."""
    result = aggregate(table, "sum", conditions=[Condition("date", ">=", "2018-03-01")])
    march = [stem for stem in (*AEON, *MR_DIY, SHELL, DOLLARS) if iso_date(sroie_key(stem)["date"]) >= "2018-03-01"]
    spent = sum(float(sroie_key(stem)["total"].lstrip("$")) for stem in march)
    assert result.value == pytest.approx(spent) and result.currency == "MYR" and result.per_currency == {}
    assert sorted(result.ids) == sorted(_id(table, f"{stem}.jpg") for stem in march) and result.missing == []
    assert '1 receipt printing "$" with a Malaysian address or RM counted as MYR' in result.left_out
    assert "2 receipts with no printed currency counted as MYR" in result.left_out  # AEON prints none


def test_amounts_in_two_currencies_are_not_added_together(tmp_path: Path) -> None:
    """A US receipt's dollars are not ringgit: one figure per currency, and the unsigned receipt in neither."""
    us = [_line("CORNER BOOKSHOP", 0.05), _line("12 MAIN ST, PORTLAND OR 97201", 0.10),
          _line("DATE 03/20/2018 10:12", 0.15), _line("TOTAL", 0.30, 0.05, 0.40), _line("$18.60", 0.30, 0.70, 0.90)]
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    table.upsert([receipt_row(stem) for stem in (SHELL, DOLLARS, AEON[0])]
                 + [receipt_row("501", us, "/receipts/portland.jpg")])
    result = aggregate(table, "sum")
    assert result.value is None and result.per_currency == {"$": 18.60, "MYR": pytest.approx(86.00 + 8.20)}
    assert any("not added together" in note and "1 receipt with no printed currency left out" in note
               for note in result.left_out)
    assert result.missing == [_id(table, f"{AEON[0]}.jpg")]  # AEON prints no currency: neither figure takes it
    biggest = aggregate(table, "max")
    assert biggest.per_currency == {"$": 18.60, "MYR": 86.00} and len(biggest.ids) == 2


def _line(text: str, top: float, left: float = 0.05, right: float = 0.60) -> dict:
    """One OCR line with its 0..1 box, a line height tall."""
    return {"text": text, "box": [[left, top], [right, top], [right, top + 0.02], [left, top + 0.02]]}


def test_groups_by_shop_fold_the_ways_a_name_is_printed(table: ImageTable) -> None:
    result = aggregate(table, "count", group_by="shop")
    counts = {group.key: group.value for group in result.groups}
    assert counts["AEON CO. (M) BHD"] == 4  # "AEON CO. (M) BHD." is the same shop
    assert counts["MR D.I.Y. (M) SDN BHD"] == 3 and counts["MR. D.I.Y. SDN BHD"] == 1  # MR.D.I.Y(M)SDN BHD joins
    assert [group.value for group in result.groups] == sorted(counts.values(), reverse=True)
    assert result.value == 12 and result.left_out == ["in no group: 1 record with no shop"]
    spent = aggregate(table, "sum", shop="aeon", group_by="month")
    assert [(group.key, group.value) for group in spent.groups] == [("2018-02", 23.60), ("2018-03", 80.90)]


@pytest.mark.parametrize(("call", "message"), [
    (dict(measure="average"), "unknown measure"), (dict(measure="sum", column="path"), "not on 'path'"),
    (dict(measure="count", group_by="camera"), "cannot group by"),
    (dict(measure="count", conditions=[Condition("path", "=", "/etc")]), "cannot filter on"),
    (dict(measure="count", conditions=[{"column": "year", "op": "=", "value": "2018) OR (1=1"}]), "takes a number"),
    (dict(measure="count", conditions=[Condition("date", ">=", "2018' OR '1'='1\n")]), "control characters"),
    (dict(measure="count", shop="..."), "no letters or digits"),
    (dict(measure="count", column="total"), "item lines with column 'item'"),
])
def test_bad_requests_are_one_line_errors(table: ImageTable, call: dict, message: str) -> None:
    with pytest.raises(LoupeError, match=message) as error:
        aggregate(table, **call)
    assert "\n" not in str(error.value)


def test_the_python_api_and_loupe_stats_give_the_same_figure(table: ImageTable) -> None:
    with loupe.open(table.index_dir) as receipts:
        assert receipts.aggregate("sum", shop="aeon", conditions=[Condition("year", "=", 2018)]).value == 104.50
    runner = CliRunner()
    index = ["--index", str(table.index_dir), "stats"]
    result = runner.invoke(app, [*index, "--sum", "total", "--shop", "aeon", "--year", "2018"])
    assert result.exit_code == 0, result.output
    assert "sum of total over 4 records: 104.50" in result.output and "031.jpg" in result.output
    shell = runner.invoke(app, [*index, "--sum", "total", "--shop", "shell"])
    assert "86.00 MYR" in shell.output and "left out: 1 of 2 records show no readable total" in shell.output
    groups = runner.invoke(app, [*index, "--count", "--group-by", "shop"])
    assert "AEON CO. (M) BHD: 4 (4 records)" in groups.output
    dearest = runner.invoke(app, [*index, "--max", "item", "--shop", "mr diy"])
    assert "max of item over 4 records: 11.23 MYR (WD40 27ML MOO 2572)" in dearest.output
    counted = runner.invoke(app, [*index, "--count", "--items", "--shop", "mr diy"]).output
    assert "count of item over 4 records: 8" in counted and "left out: 1 of 4 records" in counted
    as_json = json.loads(runner.invoke(app, [*index, "--latest", "--shop", "shell", "--json"]).output)
    assert as_json["value"] == "2018-03-18" and as_json["measure"] == "latest"
    for bad, message in ((["--sum", "path"], "not on 'path'"), (["--since", "2018-01-01' OR 1=1"], "--since"),
                         (["--count", "--latest"], "give one of")):
        failed = runner.invoke(app, [*index, *bad])
        assert failed.exit_code == 1 and message in failed.output and failed.output.count("\n") == 1


def test_an_index_built_before_the_shop_column_gets_it_from_its_stored_text(tmp_path: Path) -> None:
    """No model runs: `loupe index` reads the shop from the OCR text each row stores, once."""
    index = tmp_path / "index"
    index.mkdir()
    INFO.save(index)
    rows = [receipt_row(stem) for stem in (*AEON[:2], SHELL)] + [receipt_row("500", [], "/photos/beach.jpg")]
    old_schema = pa.schema([f for f in image_table_schema(INFO) if f.name != "shop"])
    lancedb.connect(index).create_table(TABLE_NAME, data=pa.Table.from_pylist(
        [{k: v for k, v in row.items() if k != "shop"} for row in rows], schema=old_schema))

    table = ImageTable.open(index)  # the column is added, empty
    assert table.find("shop IS NULL", limit=10, columns=["id"]) != []
    assert aggregate(table, "count", shop="aeon").value == 0  # nothing to match until it is filled
    assert Indexer(Settings(index_dir=index), None, table).run([]).derived_filled == 4
    shops = {row["file_name"]: row["shop"] for row in table.find("true", limit=10, columns=["file_name", "shop"])}
    assert shops == {"031.jpg": "AEON CO. (M) BHD", "071.jpg": "AEON CO. (M) BHD",
                     "019.jpg": "SHELL ISNI PETRO TRADING", "beach.jpg": ""}  # "": read, and no shop printed
    assert aggregate(table, "sum", shop="aeon").value == 75.00 + 17.70
    assert Indexer(Settings(index_dir=index), None, table).run([]).derived_filled == 0  # once only


def test_a_brand_printed_at_the_head_of_a_receipt_names_its_shop(tmp_path: Path) -> None:
    """IKANO HANDEL SDN BHD trades as IKEA, printed on its receipts' third line (or glued to the branch, as OCR
    reads it): "ikea" finds both; a word printed among the items names no shop."""
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    printed = receipt_row("087")
    glued = receipt_row("088", [_line("IKANO HANDEL SDN BHD", 0.1), _line("IKEACheras", 0.14),
                                _line("TOTAL 77.90", 0.5)], "/receipts/glued.jpg")
    item = receipt_row("081", [_line("MR. D.I.Y. SDN BHD", 0.1), *[_line("ADDRESS LINE", 0.12)] * 8,
                               _line("IKEA STYLE HOOK 3.90", 0.4)], "/receipts/hook.jpg")
    table.upsert([printed, glued, item])
    assert sorted(aggregate(table, "count", shop="ikea").ids) == sorted([printed["id"], glued["id"]])
    assert aggregate(table, "count", shop="ikea cheras").value == 2
    assert aggregate(table, "count", shop="hook").value == 0  # an item's word, not a heading's


@pytest.mark.parametrize(("typed", "stems"), [
    ("popular bkstore", ["072"]), ("word hardware their name", ["012"]), ("d uni hakka lunch", [DOLLARS]),
    ("shell station", [SHELL]),  # a kind of place after a short name
    ("home depot", []),  # "depot" is a common word: "home" is too short a name to stand for it
    ("99 spdmart", []),  # "99" is no ordinary word
])
def test_ordinary_words_typed_around_a_shop_are_left_out_of_its_name(tmp_path: Path, typed: str,
                                                                     stems: list[str]) -> None:
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    rows = {"072": receipt_row("072", [_line("POPULAR BOOK CO. (M) SDN BHD", 0.1), _line("TOTAL 49.40", 0.5)]),
            "012": receipt_row("012", [_line("HOME MASTER HARDWARE", 0.1), _line("TOTAL 15.90", 0.5)]),
            DOLLARS: receipt_row(DOLLARS), SHELL: receipt_row(SHELL)}
    table.upsert(list(rows.values()))
    found = aggregate(table, "count", shop=typed)
    assert sorted(found.ids) == sorted(rows[stem]["id"] for stem in stems)
    assert not stems or "words of no shop's name" in found.left_out[-1]


def test_a_word_printed_on_a_receipt_is_no_branch_when_it_is_an_ordinary_word(tmp_path: Path) -> None:
    """"teo heng stationery books file": one receipt prints "FILE" among its items; the word is the question's
    ("on file"), so every receipt of the shop counts, not that one."""
    table = ImageTable.open_or_create(tmp_path / "index", INFO)
    with_file = receipt_row("026", [_line("TEO HENG STATIONERY & BOOKS", 0.1), _line("FILE A4 3.50", 0.4)])
    plain = receipt_row("027", [_line("TEO HENG STATIONERY & BOOKS", 0.1), _line("PEN 1.20", 0.4)], "/r/027.jpg")
    table.upsert([with_file, plain])
    assert aggregate(table, "count", shop="teo heng stationery books file").value == 2
