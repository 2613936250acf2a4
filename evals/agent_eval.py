"""The agent's tool choice and answers on a query set of requests and follow-ups.

    python -m loupe.evals.agent_eval [--queries evals/querysets/agent.jsonl] [--compare rule-based,local,hybrid]
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

A set whose header names another collection (collection_questions.jsonl: SROIE's receipts alone) gets its
own index of those folders, with no metadata: every shop, date and total is read from the receipt. Its
questions carry an ``expected_value`` (and for groups an ``expected_group``) computed from SROIE's keys
(evals/querysets/build.py), or ``expect_cannot_answer``; they are also scored as

* exact answers: the aggregate's figure is the expected one (a number within 0.005, the date; for "which
  shop / month ...?" the group that comes first) and the answer states it;
* "cannot answer" precision and recall: the answer says it cannot (and ran no aggregate) exactly where
  the fields cannot answer.

Each backend of ``--compare`` runs the same conversations in its own threads.
A local LLM takes seconds per turn on two cores, so ``--sample N`` asks N
conversations spread evenly over the file (every kind keeps its share) for
every backend alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loupe.agent.assistant import Answer, Assistant, Found
from loupe.agent.conversation import read_turn
from loupe.agent.llm import backend_names
from loupe.evals.metrics import percentile
from loupe.evals.paths import DATASETS, QUERY_SETS, RESULTS
from loupe.evals.query_files import read_query_file
from loupe.base.config import Settings, load_settings
from loupe.base.errors import LoupeError
from loupe.indexer import Indexer
from loupe.metadata import load_metadata
from loupe.store.image_table import ImageTable
from loupe.tools.models import Models
from loupe.tools.process import configure_process
from loupe.tools.toolbox import Toolbox

QUERIES = QUERY_SETS / "agent.jsonl"
HOLIDAYS_IMAGES = 100
AGENT_COLLECTION = ["sroie/images", "smvs_dvd/reference", "holidays/images"]  # agent.jsonl's, with metadata
EXACT_TOLERANCE = 0.005
_CANNOT = re.compile(r"\bcannot\b|\bcan't\b|\bcan not\b", re.I)


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


def build_index(settings: Settings, datasets: Path, index_dir: Path, collection: list[str] | None = None) -> Toolbox:
    """The agent collection with the receipts' dates as metadata, or (``collection``) those folders alone, bare."""
    settings = dataclasses.replace(settings, index_dir=index_dir)
    models = Models(settings)
    if collection is not None:
        table = ImageTable.open_or_create(settings.index_dir, models.index_info())
        report = Indexer(settings, models, table).run([datasets / folder for folder in collection])
        if report.indexed:
            print(f"indexed {report.indexed} images for the agent eval", file=sys.stderr)
        return Toolbox(settings, models)
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


@dataclass(frozen=True)
class Exact:
    """How a collection question was answered: the figure, or that it cannot be answered."""

    right: bool  # the expected figure (or group) was computed and stated; for a "cannot", it said so
    said_cannot: bool  # the answer says it cannot answer, and no aggregate ran
    got: str  # what the aggregate computed, for the list of wrong answers


def judge_exact(query: dict, answer) -> Exact:
    """An answer to a collection question against its expected value, group or "cannot answer"."""
    runs = [run for run in read_turn(answer.messages).runs if run.name == "aggregate" and run.result]
    figure = (runs[-1].result.get("figure") or {}) if runs else {}
    said_cannot = not runs and bool(_CANNOT.search(answer.words))
    if query.get("expect_cannot_answer"):
        return Exact(right=said_cannot, said_cannot=said_cannot, got="(said it cannot)" if said_cannot else
                     f"tools {[step['tool'] for step in answer.trace]}")
    top = figure.get("top") if query.get("expected_group") else figure
    if not top:
        missing = figure.get("left_out") or "no aggregate"
        return Exact(right=False, said_cannot=said_cannot, got=f"no figure ({missing})")
    value, expected = top.get("value"), query["expected_value"]
    got = f"{top.get('key', '')} {value}".strip() + (f" per currency {top['per_currency']}" if top.get("per_currency")
                                                     else "")
    if isinstance(expected, str):
        same, stated = value == expected, expected
    else:
        same = isinstance(value, int | float) and abs(value - expected) <= EXACT_TOLERANCE
        stated = f"{value:.2f}" if same and figure.get("measure") != "count" else str(value)
    if query.get("expected_group"):  # "which shop / month ...?" asks for the group; its figure may differ
        fold = lambda name: re.sub(r"[^A-Z0-9]", "", str(name).upper())  # noqa: E731
        key, wanted = fold(top.get("key")), fold(query["expected_group"])
        same, stated = bool(key) and (key in wanted or wanted in key), str(top.get("key"))
    states = re.search(rf"(?<![\d.]){re.escape(stated)}(?!\d|\.\d)", answer.text) is not None
    return Exact(right=same and states, said_cannot=said_cannot, got=got)


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
    collection = header.get("collection") or AGENT_COLLECTION
    own = None if collection == AGENT_COLLECTION else collection
    # one index for every agent query set over the agent collection, one per other collection
    index_dir = index_root / ("agent" if own is None else "agent-" + "-".join(c.replace("/", "_") for c in own))
    backends = {}
    for backend in specs or [settings.llm.backend]:
        chosen = dataclasses.replace(settings, llm=dataclasses.replace(settings.llm, backend=backend))
        backends[backend] = run_query_set(entries, chosen, datasets, index_dir, own)
    return {"task": "agent", "queries": len(entries), "backends": backends}


def run_query_set(entries: list[dict], settings: Settings, datasets: Path, index_dir: Path,
                  collection: list[str] | None = None) -> dict:
    """Ask every conversation with one backend, judge its last turn, and sum up per kind of request."""
    toolbox = build_index(settings, datasets, index_dir, collection)
    assistant = Assistant(toolbox.settings, toolbox=toolbox)
    by_kind: dict[str, list[Verdict]] = defaultdict(list)
    asked_facts: list[Verdict] = []  # verdicts of the conversations whose answer must state a fact
    seconds, failures, fallbacks = [], [], 0
    first_seconds: list[float] = []  # time to the first records shown, over the last turns that showed any
    exact: list[tuple[dict, Exact]] = []  # collection questions: (query, how it was answered)
    run = time.strftime("%Y%m%d%H%M%S")
    try:
        for query in entries:
            thread = f"eval-{run}-{settings.llm.backend}-{query['id']}"
            for turn in query["turns"]:
                image = datasets / turn["image"] if turn.get("image") else None
                first, answer = first_record_and_answer(assistant.stream(turn["text"], image=image,
                                                                         thread_id=thread))
            seconds.append(answer.seconds)
            if first is not None:
                first_seconds.append(first)
            fallbacks += bool(answer.fallback)
            verdict = judge(query, answer)
            if "expected_value" in query or query.get("expect_cannot_answer"):
                exact.append((query, judge_exact(query, answer)))
                verdict = dataclasses.replace(verdict, facts=verdict.facts and exact[-1][1].right)
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
            **first_record_summary(first_seconds),
            "per_kind": {kind: share(verdicts, lambda v: v.right) for kind, verdicts in sorted(by_kind.items())},
            "wrong": failures, **(exact_summary(exact) if exact else {})}


def first_record_and_answer(events: Iterator[Found | Answer]) -> tuple[float | None, Answer]:
    """Seconds to the first records the turn showed (None if it showed none), and the answer."""
    first = None
    for event in events:
        if isinstance(event, Found) and first is None:
            first = event.seconds
    return first, event


def first_record_summary(first_seconds: list[float]) -> dict:
    """Time to first record, p50 and p95, over the judged turns that showed records (the UI draws them then)."""
    p50, p95 = (percentile(first_seconds, q) for q in (50, 95)) if first_seconds else (None, None)
    return {"time_to_first_record_p50_s": p50, "time_to_first_record_p95_s": p95,
            "turns_with_records": len(first_seconds)}


def exact_summary(exact: list[tuple[dict, Exact]]) -> dict:
    """Exact-answer accuracy over the answerable questions, and how well "cannot answer" is said."""
    answerable = [e for q, e in exact if not q.get("expect_cannot_answer")]
    cannot = [e for q, e in exact if q.get("expect_cannot_answer")]
    said = [(q, e) for q, e in exact if e.said_cannot]
    return {"exact_answers": sum(e.right for e in answerable) / len(answerable) if answerable else None,
            "exact_counts": f"{sum(e.right for e in answerable)}/{len(answerable)}",
            "cannot_precision": sum(bool(q.get("expect_cannot_answer")) for q, _ in said) / len(said) if said else None,
            "cannot_recall": sum(e.said_cannot for e in cannot) / len(cannot) if cannot else None,
            "exact_wrong": [f"{q['id']} {q['turns'][-1]['text']!r}: expected "
                            f"{q.get('expected_group', '')} {q.get('expected_value', 'cannot answer')}, got {e.got}"
                            for q, e in exact if not e.right]}


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
        if "exact_answers" in s:
            share = lambda value: "-" if value is None else f"{value:.3f}"  # noqa: E731
            lines += ["", f"{name}: exact answers {share(s['exact_answers'])} ({s['exact_counts']}), \"cannot answer\" "
                      f"precision {share(s['cannot_precision'])} recall {share(s['cannot_recall'])}, time to answer "
                      f"p50 {s['answer_p50_s']:.2f} s p95 {s['answer_p95_s']:.2f} s",
                      *[f"- not exact: {line}" for line in s["exact_wrong"]]]
        lines += ["", f"{name}: {first_record_text(s)}; {s['fallbacks']} turns handed to the rule-based planner "
                  "after invalid calls",
                  *[f"- wrong: {line}" for line in s["wrong"]]]
    return "\n".join(lines) + "\n"


def first_record_text(summary: dict) -> str:
    """The time to first record in words ("no records shown" for a set whose answers list none)."""
    if not summary.get("turns_with_records"):
        return "no records shown"
    return (f"time to first record p50 {summary['time_to_first_record_p50_s']:.2f} s "
            f"p95 {summary['time_to_first_record_p95_s']:.2f} s ({summary['turns_with_records']} answers with records)")


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
