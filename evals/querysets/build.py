"""Writes the query sets of this folder from ../shared/datasets (run again if the data changes).

    python -m loupe.evals.querysets.build [--datasets ../shared/datasets]

Each file is JSONL; paths are relative to the datasets folder. The first line is a header, with "task":

* retrieval (the default): {"collection": [folders to index]}, then one query per line:
  {"id", "image" or "text", "relevant": [paths] or {path: grade}, "exclude_self": bool};
* ocr: {"task": "ocr", "scoring": "words" or "lines"}, then {"id", "image", "truth": label file,
  "held_out": bool}; held-out images (never trained on by `loupe train-detector`) also score detection;
* agent: {"task": "agent", "collection": [...]}, then conversations: {"id", "kind", "turns": [{"text",
  "image"?}, ...], "expected_tools", "expected_records"?, "expect_nothing"?, "expected_answer_contains"?};
  the last turn is judged. agent.jsonl is written by hand, not by this script.
  collection_questions.jsonl is too (its questions, each with a "truth" spec); this script computes its
  expected answers from SROIE's keys alone (:func:`collection_answers`), never from Loupe's output.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import defaultdict
from pathlib import Path

from loupe.evals.paths import ANNOTATIONS, DATASETS, QUERY_SETS
from loupe.tools.training.text_boxes import HELD_OUT_SHARE, held_out, natural_key


def write(name: str, header: list[str] | dict, queries: list[dict]) -> None:
    with (QUERY_SETS / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(header if isinstance(header, dict) else {"collection": header}) + "\n")
        for query in queries:
            handle.write(json.dumps(query, ensure_ascii=False) + "\n")


def first_captions(root: Path, name: str) -> list[dict]:
    """A caption->photo query per photo of a captioned set: the first of its five captions."""
    queries, seen = [], set()
    with (root / name / "captions.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["image"] not in seen:
                seen.add(row["image"])
                queries.append({"id": row["image"], "text": row["caption"].strip(),
                                "relevant": [f"{name}/images/{row['image']}"]})
    return queries


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
    for captioned in ("flickr8k", "coco_mini"):
        write(captioned, [f"{captioned}/images"], first_captions(root, captioned))
    icdar = sorted((root / "icdar2015" / "images").glob("*.jpg"), key=natural_key)
    unseen = held_out(icdar, HELD_OUT_SHARE)
    write("icdar2015", {"task": "ocr", "scoring": "words"}, [
        {"id": p.stem, "image": f"icdar2015/images/{p.name}", "truth": f"icdar2015/gt/gt_{p.stem}.txt",
         "held_out": p in unseen} for p in icdar])
    receipts = sorted((root / "sroie" / "images").glob("*.jpg"), key=natural_key)
    write("sroie_ocr", {"task": "ocr", "scoring": "lines"}, [
        {"id": p.stem, "image": f"sroie/images/{p.name}", "truth": f"sroie/box/{p.stem}.csv",
         "held_out": p in held_out(receipts, HELD_OUT_SHARE)} for p in receipts])
    collection_answers(root)


# Where a SROIE key contradicts the same dataset's transcription of the printed lines (box/ID.csv), the printed
# line is taken: 026 prints TEO HENG (its key spells TED HENG), 033 prints its total "$8.20" (its key has none).
# Found by checking every key's company and total against its box file, not from what Loupe answers.
KEY_ERRATA = {"026": {"company": "TEO HENG STATIONERY & BOOKS"}, "033": {"total": "8.20"}}


def collection_answers(root: Path) -> None:
    """Each collection question's expected answer from SROIE's keys (company, date, total), by these rules:

    the keys are read with KEY_ERRATA's corrections; a receipt is of a shop when its company, letters and digits
    only, contains the truth's ``shop``; its date is the key's (D/M/Y unless the first or second number is over
    12; 2-digit years are 20YY; "05 MAR 2018", "2018-03-23" and "20180304" as written), kept when within
    ``since``..``until``; its total is the key's number (a "$" or "RM" dropped; an empty total is left out of
    sums, minima and maxima, not of counts); with ``of: items``, the receipts' item lines as
    evals/annotations/sroie_items.jsonl writes them (counted, or their amounts added, or the least and
    largest). count, sum (to the cent), min and max of the totals, latest and earliest of the dates; with
    ``group_by`` (the company as letters and digits, the month, the year) the group with the largest figure,
    which must be one alone.
    """
    months = {name: number for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}

    def day(text: str) -> str:
        text = text.strip().lower()
        if match := re.fullmatch(r"(\d{4})-?(\d\d)-?(\d\d)", text):
            return "-".join(match.groups())
        if match := re.fullmatch(r"(\d\d?) ([a-z]{3}) (\d{2,4})", text):
            return f"{int('20' + match[3][-2:]):04d}-{months[match[2]]:02d}-{int(match[1]):02d}"
        first, second, year = (int(part) for part in re.split(r"[/-]", text))
        first, second = (second, first) if second > 12 else (first, second)  # M/D where the second is a day
        return f"{2000 + year if year < 100 else year:04d}-{second:02d}-{first:02d}"

    items = {entry["receipt"]: [item["amount"] for item in entry["items"]]
             for entry in map(json.loads, (ANNOTATIONS / "sroie_items.jsonl").read_text(encoding="utf-8").splitlines())}
    receipts = []
    for key_file in sorted((root / "sroie" / "key").glob("*.json")):
        key = {**json.loads(key_file.read_text(encoding="utf-8")), **KEY_ERRATA.get(key_file.stem, {})}
        amount = re.sub(r"[^\d.]", "", key["total"])
        receipts.append({"shop": re.sub(r"[^A-Z0-9]", "", key["company"].upper()), "date": day(key["date"]),
                         "total": float(amount) if amount else None, "items": items[key_file.stem]})

    def figure(measure: str, chosen: list[dict], of: str = "receipts") -> float | int | str | None:
        if of == "items":  # the item lines written down by hand (sroie_items.jsonl): count them, or their amounts
            amounts = [amount for r in chosen for amount in r["items"]]
            return {"count": lambda: len(amounts), "sum": lambda: round(sum(amounts), 2),
                    "min": lambda: min(amounts, default=None), "max": lambda: max(amounts, default=None)}[measure]()
        totals = [r["total"] for r in chosen if r["total"] is not None]
        dates = [r["date"] for r in chosen]
        return {"count": lambda: len(chosen), "sum": lambda: round(sum(totals), 2) if totals else None,
                "min": lambda: min(totals, default=None), "max": lambda: max(totals, default=None),
                "latest": lambda: max(dates, default=None), "earliest": lambda: min(dates, default=None)}[measure]()

    # the second and third written apart, later, by people who had not read the planner; the items set and the
    # unseen set so too (the unseen one's first run is its held-out figure)
    for name in ("collection_questions", "collection_questions_heldout", "collection_questions_fresh",
                 "collection_items", "collection_questions_unseen", "collection_questions_unseen2",
                 "collection_questions_unseen3", "collection_questions_unseen4", "collection_questions_unseen5",
                 "collection_questions_unseen6"):
        path = QUERY_SETS / f"{name}.jsonl"
        header, *entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                            if line.strip()]
        for entry in entries:
            truth = entry.get("truth")
            if not truth:
                continue
            chosen = [r for r in receipts if truth.get("shop", "") in r["shop"]
                      and truth.get("since", "") <= r["date"] <= truth.get("until", "9999")]
            if not truth.get("group_by"):
                entry["expected_value"] = figure(truth["measure"], chosen, truth.get("of", "receipts"))
                continue
            width = {"shop": None, "month": 7, "year": 4}[truth["group_by"]]
            groups = defaultdict(list)
            for receipt in chosen:
                groups[receipt["shop"] if width is None else receipt["date"][:width]].append(receipt)
            ranked = sorted(((figure(truth["measure"], rows), key) for key, rows in groups.items()), reverse=True)
            if len(ranked) > 1 and ranked[0][0] == ranked[1][0]:
                raise SystemExit(f"{entry['id']}: a tie between {ranked[0][1]} and {ranked[1][1]}: "
                                 "ask another question")
            entry["expected_value"], entry["expected_group"] = ranked[0]
        write(name, header, entries)


if __name__ == "__main__":
    main()
