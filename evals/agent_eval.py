"""The agent's tool choice and answers on a query set of requests and follow-ups.

    python -m evals.agent_eval [--queries evals/querysets/agent.jsonl] [--datasets ../shared/datasets]

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
from evals.retrieval import DEFAULT_DATASETS, RESULTS
from loupe.config import load_settings
from loupe.indexer import Indexer
from loupe.metadata import load_metadata
from store.image_table import ImageTable
from tools.models import Models
from tools.toolbox import Toolbox

QUERIES = Path(__file__).resolve().parent / "querysets" / "agent.jsonl"
HOLIDAYS_IMAGES = 100


def load_queries(path: Path) -> list[dict]:
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            query = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        missing = {"id", "turns", "expected_tools"} - set(query)
        if missing or not query.get("turns"):
            raise SystemExit(f"{path}:{number}: a query needs id, turns and expected_tools (missing {sorted(missing)})")
        queries.append(query)
    return queries


def build_index(datasets: Path) -> Toolbox:
    settings = load_settings()
    settings = dataclasses.replace(settings, index_dir=RESULTS / "index" / "agent")
    models = Models(settings)
    metadata_file = RESULTS / "agent-metadata.jsonl"
    RESULTS.mkdir(exist_ok=True)
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
    tools_right = [step["tool"] for step in answer.trace] == query["expected_tools"]
    records_right = True
    if query.get("expect_nothing"):
        records_right = not answer.records
    elif query.get("expected_records"):
        records_right = bool(answer.records) and any(
            answer.records[0]["path"].endswith("/" + expected) for expected in query["expected_records"])
    if query.get("expected_answer_contains"):
        records_right = records_right and all(w in answer.text for w in query["expected_answer_contains"])
    return tools_right, records_right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, default=QUERIES)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    args = parser.parse_args()
    queries = load_queries(args.queries)
    toolbox = build_index(args.datasets)
    assistant = Assistant(toolbox.settings, toolbox=toolbox)
    by_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    seconds, failures = [], []
    run = time.strftime("%Y%m%d%H%M%S")
    for query in queries:
        thread = f"eval-{run}-{query['id']}"
        for turn in query["turns"]:
            image = args.datasets / turn["image"] if turn.get("image") else None
            answer = assistant.ask(turn["text"], image=image, thread_id=thread)
        seconds.append(answer.seconds)
        verdict = judge(query, answer)
        by_kind[query.get("kind", "other")].append(verdict)
        if not all(verdict):
            failures.append(f"  {query['id']}: tools {[s['tool'] for s in answer.trace]} "
                            f"first {answer.records[0]['file_name'] if answer.records else None}")
    assistant.close()
    every = [v for verdicts in by_kind.values() for v in verdicts]
    summary = {"requests": len(every), "tool_choice": sum(t for t, _ in every) / len(every),
               "records_right": sum(r for _, r in every) / len(every),
               "both_right": sum(t and r for t, r in every) / len(every),
               "answer_p50_s": percentile(seconds, 50), "answer_p95_s": percentile(seconds, 95)}
    for kind, verdicts in sorted(by_kind.items()):
        summary[f"{kind}_both_right"] = sum(t and r for t, r in verdicts) / len(verdicts)
    print("  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()))
    if failures:
        print("wrong:\n" + "\n".join(failures))
    (RESULTS / "agent.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
