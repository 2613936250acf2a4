"""Retrieval quality on the public benchmarks in ../shared/datasets, for README's table.

    python -m loupe.evals.retrieval [--datasets ../shared/datasets] [--only holidays,smvs_dvd,sroie]

Runs the shipped query sets (evals/querysets/) through the same code as
``loupe eval`` (evals/harness.py), Loupe's pipeline only, and adds:

* smvs_dvd: top-1 per camera (Canon, Droid, E63, Palm);
* sroie: share of receipts in the top 5 by printed company name, and by
  "total <amount>".

Each query set's collection is indexed once into ``evals/results/index/<name>``
(incremental, so a re-run only searches). Results go to
``evals/results/retrieval.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from loupe.evals.harness import Pipeline, evaluate, indexed_toolbox, load_query_set
from loupe.evals.paths import DATASETS, QUERY_SETS, RESULTS
from loupe.base.config import Settings, load_settings
from loupe.tools.models import Models
from loupe.tools.process import configure_process

EVALS = ("holidays", "smvs_dvd", "sroie")


def run_query_set(settings: Settings, models: Models, name: str, datasets: Path) -> dict:
    """The query set's summary for the loupe pipeline, plus the breakdowns this report adds."""
    query_set = load_query_set(QUERY_SETS / f"{name}.jsonl")
    toolbox = indexed_toolbox(settings, models, name, [datasets / c for c in query_set.collection],
                              RESULTS / "index" / name)
    scores = evaluate(query_set, [Pipeline("loupe", toolbox)], datasets)["pipelines"]["loupe"]
    per_query = scores.pop("per_query")
    scores.pop("pr_curve")
    if name == "smvs_dvd":  # ids are "queries/<camera>/<cover>.jpg"
        for camera in sorted({q["id"].split("/")[1] for q in per_query}):
            runs = [q for q in per_query if q["id"].split("/")[1] == camera]
            scores[f"top1_{camera}"] = sum(q["top1"] for q in runs) / len(runs)
    if name == "sroie":  # ids are "<receipt>-company" and "<receipt>-total"
        for field in ("company", "total"):
            runs = [q for q in per_query if q["id"].endswith(f"-{field}")]
            scores[f"{field}_top5"] = sum(q["r5"] for q in runs) / len(runs)
    return scores


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--only", default=",".join(EVALS), help="comma-separated: " + ", ".join(EVALS))
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached indexes")
    args = parser.parse_args()
    settings = load_settings()
    models = Models(settings)
    if args.fresh:
        shutil.rmtree(RESULTS / "index", ignore_errors=True)
    output = RESULTS / "retrieval.json"
    results = json.loads(output.read_text()) if output.is_file() else {}  # keep datasets not re-run
    results.update(image_encoder=settings.models.image_encoder, text_embedder=settings.models.text_embedder)
    for name in args.only.split(","):
        print(f"{name}:")
        results[name] = run_query_set(settings, models, name, args.datasets)
        print("  " + "  ".join(f"{k} {v:.3f}" for k, v in results[name].items()))
    RESULTS.mkdir(exist_ok=True)
    output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
