"""The ``loupe`` command as a user runs it: real processes, real index, JSON output, errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SROIE, holidays_files

REPO = Path(__file__).resolve().parents[1]


def loupe(*args: str, index: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOUPE_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "loupe.cli", "--index", str(index), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    photos = root / "photos"
    photos.mkdir()
    for path in holidays_files(2):
        shutil.copyfile(path, photos / path.name)
    shutil.copyfile(SROIE / "images" / "000.jpg", photos / "receipt.jpg")
    (root / "meta.jsonl").write_text(json.dumps({"file": "receipt.jpg", "title": "Bookshop receipt",
                                                 "date": "2018-12-25", "price": "9.00"}) + "\n")
    index = root / "index"
    result = loupe("index", str(photos), "--metadata", str(root / "meta.jsonl"), index=index)
    assert result.returncode == 0, result.stderr
    assert "3 added" in result.stdout
    assert re.match(r"image encoder: \S+ \(.+\)\n", result.stdout)  # which one, and why, before anything else
    return index, photos


def test_search_by_image_prints_json_records(cli_index: tuple[Path, Path]) -> None:
    index, photos = cli_index
    result = loupe("search", "--image", str(photos / holidays_files(1)[0].name), "--json", "-k", "3", index=index)
    assert result.returncode == 0, result.stderr
    [image_result] = json.loads(result.stdout)
    top = image_result["records"][0]
    assert top["file_name"] == holidays_files(1)[0].name and top["match"] == "identical"


def test_search_by_text_with_filter(cli_index: tuple[Path, Path]) -> None:
    index, _ = cli_index
    result = loupe("search", "taman daya", "--where", "year = 2018", "--json", index=index)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)[0]["records"]
    assert [r["file_name"] for r in records] == ["receipt.jpg"]
    assert records[0]["metadata"]["title"] == "Bookshop receipt" and records[0]["metadata"]["price"] == 9.0
    empty = loupe("search", "taman daya", "--where", "year = 2020", "--json", index=index)
    assert json.loads(empty.stdout)[0]["records"] == []


def test_broken_query_image_is_one_line_error(cli_index: tuple[Path, Path], tmp_path: Path) -> None:
    index, _ = cli_index
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = loupe("search", "--image", str(broken), index=index)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    missing = loupe("search", "--image", str(tmp_path / "nope.jpg"), index=index)
    assert missing.returncode == 1 and "file not found" in missing.stderr


def test_search_without_an_index_says_how_to_make_one(tmp_path: Path) -> None:
    result = loupe("search", "anything", index=tmp_path / "none")
    assert result.returncode == 1
    assert "no Loupe index" in result.stderr and "loupe index" in result.stderr


def test_bad_where_filter_is_an_error_not_a_traceback(cli_index: tuple[Path, Path]) -> None:
    index, _ = cli_index
    result = loupe("search", "receipt", "--where", "no_such_column = 3", index=index)
    assert result.returncode == 1
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_demo_builds_indexes_and_finds_what_it_promises(tmp_path: Path) -> None:
    env = {**os.environ, "LOUPE_OFFLINE": "1", "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "loupe.cli", "demo", "--folder", str(tmp_path / "demo")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "12 added" in out and "0 problems" in out
    titles = ["phone photo of the temple", "the daisy photo", "photo of the bookshop receipt", '"corner bookshop"',
              '"total 21.00"', '"daisy"']
    starts = [out.index(title) for title in titles]
    temple, daisy, receipt, bookshop, total = (out[a:b] for a, b in zip(starts, starts[1:]))
    assert "│ 1 │" in temple and "near-duplicate │ temple.jpg" in temple.split("│ 2 │")[0]
    assert "identical" in daisy and "near-duplicate │ daisy_cropped.jpg" in daisy
    assert "receipt_bookshop.png" in receipt.split("│ 2 │")[0]
    assert "receipt_bookshop.png" in bookshop.split("│ 2 │")[0]
    assert "receipt_hardware.png" in total.split("│ 2 │")[0]
    tags = out[starts[-1]:out.index('"receipt" only from 2019')]
    assert "daisy" in tags.split("│ 2 │")[0]  # found through its ImageNet tag


def test_ask_prints_the_records_it_found_before_its_words(cli_index: tuple[Path, Path]) -> None:
    index, _ = cli_index
    result = loupe("ask", "find the receipt from taman daya", "--thread", "order", index=index)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = next(i for i, line in enumerate(lines) if line.strip().startswith("found by text_search in"))
    row = next(i for i, line in enumerate(lines) if line.startswith("│ 1 ") and "receipt.jpg" in line)
    words = next(i for i, line in enumerate(lines) if "I ran text_search" in line)
    assert table < row < words  # the table as the search returned, then the explanation
    assert not any(line.startswith("Matches:") for line in lines)  # the records are not listed twice
    assert re.fullmatch(r"\(\d+\.\d s; thread order\)", lines[-1])
