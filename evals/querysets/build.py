"""Writes the query sets of this folder from ../shared/datasets (run again if the data changes).

    python -m evals.querysets.build [--datasets ../shared/datasets]

Each file is JSONL; paths are relative to the datasets folder. The first line is a header, with "task":

* retrieval (the default): {"collection": [folders to index]}, then one query per line:
  {"id", "image" or "text", "relevant": [paths] or {path: grade}, "exclude_self": bool};
* ocr: {"task": "ocr", "scoring": "words" or "lines"}, then {"id", "image", "truth": label file,
  "held_out": bool}; held-out images (never trained on by `loupe train-detector`) also score detection;
* agent: {"task": "agent", "collection": [...]}, then conversations: {"id", "kind", "turns": [{"text",
  "image"?}, ...], "expected_tools", "expected_records"?, "expect_nothing"?, "expected_answer_contains"?};
  the last turn is judged. agent.jsonl is written by hand, not by this script.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from evals.paths import DATASETS, QUERY_SETS
from tools.training.text_boxes import HELD_OUT_SHARE, held_out, natural_key


def write(name: str, header: list[str] | dict, queries: list[dict]) -> None:
    with (QUERY_SETS / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(header if isinstance(header, dict) else {"collection": header}) + "\n")
        for query in queries:
            handle.write(json.dumps(query, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
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
    flickr, seen = [], set()
    with (root / "flickr8k" / "captions.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):  # the first of each image's five captions
            if row["image"] not in seen:
                seen.add(row["image"])
                flickr.append({"id": row["image"], "text": row["caption"].strip(),
                               "relevant": [f"flickr8k/images/{row['image']}"]})
    write("flickr8k", ["flickr8k/images"], flickr)
    icdar = sorted((root / "icdar2015" / "images").glob("*.jpg"), key=natural_key)
    unseen = held_out(icdar, HELD_OUT_SHARE)
    write("icdar2015", {"task": "ocr", "scoring": "words"}, [
        {"id": p.stem, "image": f"icdar2015/images/{p.name}", "truth": f"icdar2015/gt/gt_{p.stem}.txt",
         "held_out": p in unseen} for p in icdar])
    receipts = sorted((root / "sroie" / "images").glob("*.jpg"), key=natural_key)
    write("sroie_ocr", {"task": "ocr", "scoring": "lines"}, [
        {"id": p.stem, "image": f"sroie/images/{p.name}", "truth": f"sroie/box/{p.stem}.csv",
         "held_out": p in held_out(receipts, HELD_OUT_SHARE)} for p in receipts])


if __name__ == "__main__":
    main()
