"""The eval tasks: one runner per kind of query set, chosen by the set's header.

A query set's first line names its task (``{"task": "retrieval", ...}``). Each task's runner is a
module with the two functions of :class:`TaskRunner`, registered in :data:`RUNNERS`: a new kind of
eval is one module and one line here, and ``loupe eval`` needs no change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from loupe.evals import agent_eval, harness, ocr_eval
from loupe.evals.paths import QUERY_SETS
from loupe.evals.query_files import EvalTask, read_query_file
from loupe.base.config import Settings
from loupe.base.errors import LoupeError


class TaskRunner(Protocol):
    def check_specs(self, specs: list[str], settings: Settings) -> None: ...  # fail before any indexing

    def run_query_file(self, path: Path, header: dict, entries: list[dict], specs: list[str] | None,
                       settings: Settings, datasets: Path, index_root: Path) -> dict: ...

    def markdown(self, results: dict) -> str: ...


RUNNERS: dict[EvalTask, TaskRunner] = {EvalTask.RETRIEVAL: harness, EvalTask.OCR: ocr_eval,
                                       EvalTask.AGENT: agent_eval}


def query_set_files(argument: str) -> list[Path]:
    """``all`` means every query set shipped in evals/querysets/; anything else is one file."""
    return sorted(QUERY_SETS.glob("*.jsonl")) if argument == "all" else [Path(argument)]


def run_query_file(path: Path, specs: list[str] | None, settings: Settings, datasets: Path,
                   index_root: Path) -> dict:
    """Run one query set with the runner its task needs; ``specs`` None means that task's default pipelines."""
    header, entries = read_query_file(path)
    task = EvalTask(header["task"])  # read_query_file has checked it
    RUNNERS[task].check_specs(specs or [], settings)
    missing = [c for c in header.get("collection", []) if not (datasets / c).is_dir()]
    if missing:
        raise LoupeError(f"collection folder(s) {missing} not found under {datasets} (use --datasets)")
    results = RUNNERS[task].run_query_file(path, header, entries, specs, settings, datasets, index_root)
    return {**results, "query_set": path.stem}


def report(results: dict) -> str:
    """The Markdown table of any task's results."""
    return RUNNERS[EvalTask(results["task"])].markdown(results)


def write_outputs(results: dict, folder: Path) -> list[Path]:
    """JSON and Markdown for every task; the precision-recall and AP plots for retrieval."""
    folder.mkdir(parents=True, exist_ok=True)
    name = results["query_set"]
    written = [folder / f"{name}.json", folder / f"{name}.md"]
    written[0].write_text(json.dumps(results, indent=2), encoding="utf-8")
    written[1].write_text(report(results), encoding="utf-8")
    if results["task"] == EvalTask.RETRIEVAL:
        written += harness.write_plots(results, folder)
    return written
