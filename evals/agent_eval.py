"""The agent's tool choice and answers on a query set of requests and follow-ups.

    python -m evals.agent_eval [--queries evals/querysets/agent.jsonl] [--datasets ../shared/datasets]
    loupe eval evals/querysets/agent.jsonl

The collection is SROIE's 100 receipts, SMVS's 50 DVD covers and 100 Holidays
photos, indexed once into ``evals/results/index/agent``. Receipts carry only
their date as user metadata (for "only 2019"); names and totals must be found
in the printed text. Each query set line is a conversation; its last turn is
judged:

* tools right: the tools run, in order, equal ``expected_tools``;
* records right: the first record is one of ``expected_records`` (when given);
  for ``expect_nothing`` no record is shown; ``expected_answer_contains`` words
  appear in the answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import defaultdict
from pathlib import Path

from agent.assistant import Assistant
from evals.metrics import percentile
from evals.paths import DATASETS, QUERY_SETS, RESULTS
from evals.query_files import read_query_file
from loupe.config import Settings, load_settings
from loupe.errors import LoupeError
from loupe.indexer import Indexer
from loupe.metadata import load_metadata
from store.image_table import ImageTable
from tools.models import Models
from tools.process import configure_process
from tools.toolbox import Toolbox

QUERIES = QUERY_SETS / "agent.jsonl"
HOLIDAYS_IMAGES = 100


def check_queries(entries: list[dict], path: Path) -> list[dict]:
    for entry in entries:
        missing = {"id", "turns", "expected_tools"} - set(entry)
        if missing or not entry.get("turns"):
            raise LoupeError(f"{path}:{entry['_line']}: a query needs id, turns and expected_tools "
                             f"(missing {sorted(missing)})")
    return entries


def build_index(settings: Settings, datasets: Path, index_dir: Path) -> Toolbox:
    settings = dataclasses.replace(settings, index_dir=index_dir)
    models = Models(settings)
    metadata_file = index_dir.with_name(f"{index_dir.name}-metadata.jsonl")
    metadata_file.parent.mkdir(parents=True, exist_ok=True)
    with metadata_file.open("w", encoding="utf-8") as handle:
        for key in sorted((datasets / "sroie" / "key").glob("*.json")):
            date = json.loads(key.read_text(encoding="utf-8"))["date"]
            handle.write(json.dumps({"path": str((datasets / "sroie" / "images" / f"{key.stem}.jpg").resolve()),
                                     "date": date}) + "\n")
    roots = [datasets / "sroie" / "images", datasets / "smvs_dvd" / "reference",
             *sorted((datasets / "holidays" / "images").iterdir())[:HOLIDAYS_IMAGES]]
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    report = Indexer(settings, models, table).run(roots, metadata=load_metadata(metadata_file))
    if report.indexed:
        print(f"indexed {report.indexed} images for the agent eval")
    return Toolbox(settings, models)


def judge(query: dict, answer) -> tuple[bool, bool]:
    tools_right = [step["tool"] for step in answer.trace if not step.get("refused")] == query["expected_tools"]
    records_right = True
    if query.get("expect_nothing"):
        records_right = not answer.records
    elif query.get("expected_records"):
        records_right = bool(answer.records) and any(
            answer.records[0].path.endswith("/" + expected) for expected in query["expected_records"])
    if query.get("expected_answer_contains"):
        records_right = records_right and all(w in answer.text for w in query["expected_answer_contains"])
    return tools_right, records_right


def check_specs(specs: list[str], settings: Settings) -> None:
    """The agent eval runs the configured LLM backend; ``--compare`` names nothing for it yet."""


def run_query_file(path: Path, header: dict, entries: list[dict], specs: list[str] | None, settings: Settings,
                   datasets: Path, index_root: Path) -> dict:
    """The agent task's runner (see evals/tasks.py), with the configured LLM backend."""
    return run_query_set(check_queries(entries, path), settings, datasets, index_root / "agent")  # one collection for every agent query set


def run_query_set(entries: list[dict], settings: Settings, datasets: Path, index_dir: Path) -> dict:
    """Ask every conversation, judge its last turn, and sum up per kind of request."""
    toolbox = build_index(settings, datasets, index_dir)
    assistant = Assistant(toolbox.settings, toolbox=toolbox)
    by_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    seconds, failures = [], []
    run = time.strftime("%Y%m%d%H%M%S")
    try:
        for query in entries:
            thread = f"eval-{run}-{query['id']}"
            for turn in query["turns"]:
                image = datasets / turn["image"] if turn.get("image") else None
                answer = assistant.ask(turn["text"], image=image, thread_id=thread)
            seconds.append(answer.seconds)
            verdict = judge(query, answer)
            by_kind[query.get("kind", "other")].append(verdict)
            if not all(verdict):
                failures.append(f"{query['id']}: tools {[s['tool'] for s in answer.trace]} "
                                f"first {answer.records[0].file_name if answer.records else None}")
    finally:
        assistant.close()
    every = [v for verdicts in by_kind.values() for v in verdicts]
    summary = {"task": "agent", "queries": len(every), "llm": settings.llm.backend,
               "tool_choice": sum(t for t, _ in every) / len(every),
               "records_right": sum(r for _, r in every) / len(every),
               "both_right": sum(t and r for t, r in every) / len(every),
               "answer_p50_s": percentile(seconds, 50), "answer_p95_s": percentile(seconds, 95),
               "per_kind": {kind: sum(t and r for t, r in verdicts) / len(verdicts)
                            for kind, verdicts in sorted(by_kind.items())},
               "wrong": failures}
    return summary


def markdown(results: dict) -> str:
    lines = [f"## {results['query_set']}: {results['queries']} agent conversations ({results['llm']} planner)", "",
             "| tool choice | records right | both right | answer p50 s | answer p95 s |", "|---|---|---|---|---|",
             f"| {results['tool_choice']:.3f} | {results['records_right']:.3f} | {results['both_right']:.3f} "
             f"| {results['answer_p50_s']:.2f} | {results['answer_p95_s']:.2f} |", "",
             "| kind of request | both right |", "|---|---|"]
    lines += [f"| {kind} | {share:.3f} |" for kind, share in results["per_kind"].items()]
    lines += ["", *[f"- wrong: {line}" for line in results["wrong"]]]
    return "\n".join(lines) + "\n"


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, default=QUERIES)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    args = parser.parse_args()
    header, entries = read_query_file(args.queries)
    results = {"query_set": args.queries.stem, **run_query_set(check_queries(entries, args.queries), load_settings(),
                                                               args.datasets, RESULTS / "index" / "agent")}
    print(markdown(results))
    (RESULTS / "agent.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
