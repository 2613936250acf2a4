"""Writes the retrieval query sets of this folder from ../shared/datasets (run again if the data changes).

    python -m evals.querysets.build [--datasets ../shared/datasets]

Each file is JSONL: a first line {"collection": [folders]} naming what to index (relative to the datasets
folder), then one query per line: {"id", "image" or "text", "relevant": [paths], "exclude_self": bool}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATASETS = HERE.parents[2] / "shared" / "datasets"


def write(name: str, collection: list[str], queries: list[dict]) -> None:
    with (HERE / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"collection": collection}) + "\n")
        for query in queries:
            handle.write(json.dumps(query, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    root = parser.parse_args().datasets
    holidays = json.loads((root / "holidays" / "groundtruth.json").read_text())
    write("holidays", ["holidays/images"], [
        {"id": q, "image": f"holidays/images/{q}", "relevant": [f"holidays/images/{r}" for r in rel],
         "exclude_self": True} for q, rel in holidays.items()])
    smvs = json.loads((root / "smvs_dvd" / "groundtruth.json").read_text())
    write("smvs_dvd", ["smvs_dvd/reference"], [
        {"id": case["query"], "image": f"smvs_dvd/{case['query']}",
         "relevant": [f"smvs_dvd/{r}" for r in case["relevant"]]} for case in smvs])
    sroie = []
    for key_file in sorted((root / "sroie" / "key").glob("*.json")):
        key = json.loads(key_file.read_text(encoding="utf-8"))
        target = [f"sroie/images/{key_file.stem}.jpg"]
        sroie.append({"id": f"{key_file.stem}-company", "text": key["company"], "relevant": target})
        sroie.append({"id": f"{key_file.stem}-total", "text": f"total {key['total']}", "relevant": target})
    write("sroie", ["sroie/images"], sroie)


if __name__ == "__main__":
    main()
