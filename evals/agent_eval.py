"""The agent's tool choice and answers on a query set of requests and follow-ups.

    python -m evals.agent_eval [--queries evals/querysets/agent.jsonl] [--compare rule-based,local,hybrid]
                               [--sample 40]
    loupe eval evals/querysets/agent_paraphrase.jsonl --compare rule-based,local

The collection is SROIE's 100 receipts, SMVS's 50 DVD covers and 100 Holidays
photos, indexed once into ``evals/results/index/agent``. Receipts carry only
their date as user metadata (for "only 2019"); names and totals must be found
in the printed text. Each query set line is a conversation; its last turn is
judged:

* tool choice: the tools that ran (refused calls aside), in order, equal
  ``expected_tools``;
* first record: the first record is one of ``expected_records`` (when
  given); for ``expect_nothing`` no record is shown;
* answer facts: every ``expected_answer_contains`` string is in the answer;
* grounded: the model's words name no record that no tool returned;
* all right: tool choice, first record and facts together.

Each backend of ``--compare`` runs the same conversations in its own threads.
A local LLM takes seconds per turn on two cores, so ``--sample N`` asks N
conversations spread evenly over the file (every kind keeps its share) for
every backend alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from agent.assistant import Assistant
from agent.llm import backend_names
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


def sample(entries: list[dict], size: int | None) -> list[dict]:
    """``size`` conversations spread evenly over the file, which groups them by kind; all where size is None."""
    if size is None or size >= len(entries):
        return entries
    if size < 1:
        raise LoupeError(f"--sample must be at least 1 (got {size})")
    return [entries[i * len(entries) // size] for i in range(size)]


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


@dataclass(frozen=True)
class Verdict:
    """How one conversation's last turn was answered."""

    tools: bool  # the tools that ran (refused calls aside) are the expected ones, in order
    records: bool  # the first record is an expected one, or none is shown where nothing exists
    facts: bool  # every expected_answer_contains string is in the answer (True where none is asked)
    grounded: bool  # the model's words name no record that no tool returned

    @property
    def right(self) -> bool:
        return self.tools and self.records and self.facts


def judge(query: dict, answer) -> Verdict:
    records = True
    if query.get("expect_nothing"):
        records = not answer.records
    elif query.get("expected_records"):
        records = bool(answer.records) and any(
            answer.records[0].path.endswith("/" + expected) for expected in query["expected_records"])
    return Verdict(tools=[step["tool"] for step in answer.trace if not step.get("refused")] == query["expected_tools"],
                   records=records, facts=all(w in answer.text for w in query.get("expected_answer_contains", [])),
                   grounded=not answer.ungrounded)


def check_specs(specs: list[str], settings: Settings) -> None:
    """``--compare`` names LLM backends (rule-based, local, hybrid, ...): fail on an unknown one before indexing."""
    unknown = [spec for spec in specs if spec not in backend_names()]
    if unknown:
        raise LoupeError(f"unknown LLM backend(s) {unknown} for --compare: use {', '.join(backend_names())}")


def run_query_file(path: Path, header: dict, entries: list[dict], specs: list[str] | None, settings: Settings,
                   datasets: Path, index_root: Path) -> dict:
    """The agent task's runner (see evals/tasks.py): each backend of ``specs`` (default: the configured one)."""
    entries = check_queries(entries, path)
    index_dir = index_root / "agent"  # one collection for every agent query set
    backends = {}
    for backend in specs or [settings.llm.backend]:
        chosen = dataclasses.replace(settings, llm=dataclasses.replace(settings.llm, backend=backend))
        backends[backend] = run_query_set(entries, chosen, datasets, index_dir)
    return {"task": "agent", "queries": len(entries), "backends": backends}


def run_query_set(entries: list[dict], settings: Settings, datasets: Path, index_dir: Path) -> dict:
    """Ask every conversation with one backend, judge its last turn, and sum up per kind of request."""
    toolbox = build_index(settings, datasets, index_dir)
    assistant = Assistant(toolbox.settings, toolbox=toolbox)
    by_kind: dict[str, list[Verdict]] = defaultdict(list)
    asked_facts: list[Verdict] = []  # verdicts of the conversations whose answer must state a fact
    seconds, failures, fallbacks = [], [], 0
    run = time.strftime("%Y%m%d%H%M%S")
    try:
        for query in entries:
            thread = f"eval-{run}-{settings.llm.backend}-{query['id']}"
            for turn in query["turns"]:
                image = datasets / turn["image"] if turn.get("image") else None
                answer = assistant.ask(turn["text"], image=image, thread_id=thread)
            seconds.append(answer.seconds)
            fallbacks += bool(answer.fallback)
            verdict = judge(query, answer)
            by_kind[query.get("kind", "other")].append(verdict)
            if query.get("expected_answer_contains"):
                asked_facts.append(verdict)
            print(f"{settings.llm.backend} {query['id']}: {'right' if verdict.right else 'wrong'} "
                  f"in {answer.seconds:.1f} s", file=sys.stderr, flush=True)
            if not verdict.right or not verdict.grounded:
                failures.append(f"{query['id']}: tools {[s['tool'] for s in answer.trace]} "
                                f"first {answer.records[0].file_name if answer.records else None}"
                                + (f" named records no tool returned {answer.ungrounded}" if answer.ungrounded else ""))
    finally:
        assistant.close()
    every = [v for verdicts in by_kind.values() for v in verdicts]
    share = lambda verdicts, test: sum(map(test, verdicts)) / len(verdicts)  # noqa: E731
    return {"llm": settings.llm.backend, "queries": len(every),
            "tool_choice": share(every, lambda v: v.tools), "first_record": share(every, lambda v: v.records),
            "answer_facts": share(asked_facts, lambda v: v.facts) if asked_facts else None,
            "grounded": share(every, lambda v: v.grounded), "both_right": share(every, lambda v: v.right),
            "fallbacks": fallbacks, "answer_p50_s": percentile(seconds, 50), "answer_p95_s": percentile(seconds, 95),
            "per_kind": {kind: share(verdicts, lambda v: v.right) for kind, verdicts in sorted(by_kind.items())},
            "wrong": failures}


def markdown(results: dict) -> str:
    backends = results["backends"]
    kinds = sorted({kind for summary in backends.values() for kind in summary["per_kind"]})
    lines = [f"## {results['query_set']}: {results['queries']} agent conversations", "",
             "| backend | tool choice | first record | answer facts | grounded | all right | "
             + " | ".join(kinds) + " | p50 s | p95 s |",
             "|---|---|---|---|---|---|" + "---|" * len(kinds) + "---|---|"]
    for name, s in backends.items():
        facts = f"{s['answer_facts']:.3f}" if s["answer_facts"] is not None else "-"
        lines.append(f"| {name} | {s['tool_choice']:.3f} | {s['first_record']:.3f} | {facts} | {s['grounded']:.3f} "
                     f"| {s['both_right']:.3f} | " + " | ".join(f"{s['per_kind'].get(k, 0):.2f}" for k in kinds)
                     + f" | {s['answer_p50_s']:.2f} | {s['answer_p95_s']:.2f} |")
    for name, s in backends.items():
        lines += ["", f"{name}: {s['fallbacks']} turns handed to the rule-based planner after invalid calls",
                  *[f"- wrong: {line}" for line in s["wrong"]]]
    return "\n".join(lines) + "\n"


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, default=QUERIES)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--compare", default="", help="LLM backends side by side, e.g. rule-based,local,hybrid")
    parser.add_argument("--sample", type=int, default=None, help="ask only this many conversations, spread evenly")
    args = parser.parse_args()
    settings = load_settings()
    specs = [spec.strip() for spec in args.compare.split(",") if spec.strip()] or None
    check_specs(specs or [], settings)
    header, entries = read_query_file(args.queries)
    entries = sample(entries, args.sample)
    sampled = f" (sample of {args.sample})" if args.sample else ""
    results = {"query_set": args.queries.stem + sampled,
               **run_query_file(args.queries, header, entries, specs, settings, args.datasets, RESULTS / "index")}
    print(markdown(results))
    stem = args.queries.stem + (f"-sample{args.sample}" if args.sample else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
