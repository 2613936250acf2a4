"""Retrieval quality on the public benchmarks in ../shared/datasets.

    python -m evals.retrieval [--datasets ../shared/datasets] [--only holidays,smvs,sroie]

* holidays: image -> image, standard protocol (the query is left out of its
  own ranking): mAP and top-1.
* smvs: phone photo -> catalogue cover (50 references): top-1 and mAP, per camera.
* sroie: text -> receipt: share of receipts in the top 5 by printed company
  name, and by "total <amount>".

Each dataset is indexed once into ``evals/results/index/<name>`` (incremental,
so a re-run only searches). Results go to ``evals/results/retrieval.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from collections import defaultdict
from pathlib import Path

from evals.metrics import mean_average_precision, percentile, top1
from loupe.config import Settings, load_settings
from loupe.indexer import Indexer
from store.image_table import ImageTable
from tools.models import Models
from tools.toolbox import Toolbox

DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RESULTS = Path(__file__).resolve().parent / "results"


def indexed_toolbox(settings: Settings, models: Models, name: str, folders: list[Path],
                    index_dir: Path | None = None) -> Toolbox:
    """A toolbox over ``folders`` indexed into its own cached index (incremental, so cheap to reuse)."""
    index_settings = dataclasses.replace(settings, index_dir=index_dir or RESULTS / "index" / name)
    table = ImageTable.open_or_create(index_settings.index_dir, models.index_info())
    start = time.perf_counter()
    report = Indexer(index_settings, models, table).run(folders)
    if report.indexed:
        print(f"  indexed {report.indexed} {name} images in {time.perf_counter() - start:.0f}s")
    return Toolbox(index_settings, models)


def eval_holidays(settings: Settings, models: Models, root: Path) -> dict:
    truth = json.loads((root / "groundtruth.json").read_text())
    toolbox = indexed_toolbox(settings, models, "holidays", [root / "images"])
    total = toolbox.table.count()
    runs, firsts, seconds = [], [], []
    for query, relevant in truth.items():
        result = toolbox.image_search(image=root / "images" / query, k=total)
        ranked = [r.file_name for r in result.records if r.file_name != query]
        runs.append((ranked, set(relevant)))
        firsts.append(top1(ranked, set(relevant)))
        seconds.append(result.seconds)
    return {"queries": len(runs), "images": total, "mAP": mean_average_precision(runs),
            "top1": sum(firsts) / len(firsts), "p50_ms": percentile(seconds, 50) * 1000,
            "p95_ms": percentile(seconds, 95) * 1000}


def eval_smvs(settings: Settings, models: Models, root: Path) -> dict:
    truth = json.loads((root / "groundtruth.json").read_text())
    toolbox = indexed_toolbox(settings, models, "smvs", [root / "reference"])
    total = toolbox.table.count()
    per_camera: dict[str, list] = defaultdict(list)
    seconds = []
    for case in truth:
        result = toolbox.image_search(image=root / case["query"], k=total)
        ranked = [r.file_name for r in result.records]
        relevant = {Path(r).name for r in case["relevant"]}
        per_camera[Path(case["query"]).parent.name].append((ranked, relevant))
        seconds.append(result.seconds)
    every = [run for runs in per_camera.values() for run in runs]
    summary = {"queries": len(every), "references": total, "top1": _top1(every),
               "mAP": mean_average_precision(every), "p50_ms": percentile(seconds, 50) * 1000,
               "p95_ms": percentile(seconds, 95) * 1000}
    for camera, runs in sorted(per_camera.items()):
        summary[f"top1_{camera}"] = _top1(runs)
    return summary


def eval_sroie(settings: Settings, models: Models, root: Path) -> dict:
    toolbox = indexed_toolbox(settings, models, "sroie", [root / "images"])
    found = defaultdict(int)
    keys = sorted((root / "key").glob("*.json"))
    for key_file in keys:
        key = json.loads(key_file.read_text(encoding="utf-8"))
        target = f"{key_file.stem}.jpg"
        for field, query in (("company", key["company"]), ("total", f"total {key['total']}")):
            names = [r.file_name for r in toolbox.text_search(query, k=5).records]
            found[field] += target in names
    return {"receipts": len(keys), "company_top5": found["company"] / len(keys),
            "total_top5": found["total"] / len(keys)}


def _top1(runs: list) -> float:
    return sum(top1(ranked, relevant) for ranked, relevant in runs) / len(runs)


EVALS = {"holidays": ("holidays", eval_holidays), "smvs": ("smvs_dvd", eval_smvs), "sroie": ("sroie", eval_sroie)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
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
        folder, run = EVALS[name]
        print(f"{name}:")
        results[name] = run(settings, models, args.datasets / folder)
        print("  " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in results[name].items()))
    RESULTS.mkdir(exist_ok=True)
    output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
