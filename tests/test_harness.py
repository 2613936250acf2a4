"""`loupe eval`: query-set parsing, the PR curve by hand, and a real run of both pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from loupe.evals.harness import Pipeline, evaluate, load_query_set, pr_curve
from loupe.evals.tasks import write_outputs
from loupe.cli import app
from loupe.base.errors import LoupeError
from tests.conftest import sroie_key
from loupe.tools.toolbox import Toolbox


def _write(path: Path, lines: list) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_pr_curve_by_hand() -> None:
    # relevant at ranks 1 and 3: (recall 0.5, precision 1), (recall 1, precision 2/3)
    curve = pr_curve([(["a", "x", "b"], {"a", "b"})])
    assert curve[:6] == pytest.approx([1.0] * 6) and curve[6:] == pytest.approx([2 / 3] * 5)
    assert pr_curve([([], {"a"})]) == [0.0] * 11


@pytest.mark.parametrize("lines, message", [
    (['{"oops": 1}'], "first line must be"),
    ([{"collection": ["x"]}, "{not json"], ":2: not valid JSON"),
    ([{"task": "magic", "collection": []}], "unknown task"),
    ([{"collection": ["x"]}, {"id": "q", "relevant": [], "image": "a.jpg", "text": "both"}], "exactly one"),
    ([{"collection": ["x"]}, {"id": "q", "image": "a.jpg"}], ":2: a query needs"),
])
def test_malformed_query_sets_name_the_line(tmp_path: Path, lines: list, message: str) -> None:
    with pytest.raises(LoupeError, match=message):
        load_query_set(_write(tmp_path / "set.jsonl", lines))
    with pytest.raises(LoupeError, match="does not exist"):
        load_query_set(tmp_path / "missing.jsonl")


def test_both_pipelines_on_a_real_index(indexed: Toolbox, collection: Path, tmp_path: Path) -> None:
    queries = _write(tmp_path / "mini.jsonl", [
        {"collection": ["holidays", "sroie"]},
        {"id": "scene", "image": "holidays/100000.jpg", "relevant": ["holidays/100001.jpg", "holidays/100002.jpg"],
         "exclude_self": True},
        {"id": "copy", "image": "sroie/receipt_004.jpg", "relevant": ["sroie/receipt_004.jpg"]},
        {"id": "name", "text": sroie_key("003")["company"], "relevant": ["sroie/receipt_003.jpg"]},
    ])
    pipelines = [Pipeline("loupe", indexed), Pipeline("phash", indexed, hash_baseline=True)]
    results = evaluate(load_query_set(queries), pipelines, collection)
    loupe, phash = results["pipelines"]["loupe"], results["pipelines"]["phash"]
    per_query = {q["id"]: q for q in loupe["per_query"]}
    assert per_query["copy"]["top1"] == 1.0 and per_query["name"]["top1"] == 1.0
    assert per_query["scene"]["ap"] > 0
    assert {q["id"]: q["top1"] for q in phash["per_query"]}["name"] == 0.0  # no text pipeline for a hash
    assert 0 < phash["mAP"] < loupe["mAP"] <= 1
    files = write_outputs(results, tmp_path / "out")
    assert "| loupe |" in files[1].read_text() and Image.open(files[2]).size[0] > 100 and files[3].exists()


def test_cli_rejects_unknown_pipelines_and_missing_collections(tmp_path: Path) -> None:
    queries = _write(tmp_path / "set.jsonl", [{"collection": ["nowhere"]}, {"id": "q", "text": "x", "relevant": []}])
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(queries), "--compare", "loupe,magic"])
    assert result.exit_code == 1 and "unknown pipeline 'magic'" in result.output
    result = runner.invoke(app, ["eval", str(queries), "--datasets", str(tmp_path)])
    assert result.exit_code == 1 and "collection folder(s) ['nowhere'] not found" in result.output


@pytest.mark.fast
def test_every_shipped_query_set_reads_so_eval_all_can_run_them() -> None:
    """`loupe eval all` runs every file in evals/querysets/: hand-written ground truth lives in evals/annotations/."""
    from loupe.evals.query_files import read_query_file
    from loupe.evals.tasks import query_set_files

    files = query_set_files("all")
    assert len(files) >= 14 and all(read_query_file(path)[0]["task"] for path in files)
