"""SROIE's key-information task for the fields Loupe reads from OCR (tools/document_fields.py): company, date, total.

    python -m loupe.evals.document_fields_eval [--datasets ../shared/datasets]

Reads the OCR lines stored in the agent eval's index (built by evals/agent_eval.py; this builds it if
needed, and back-fills any derived column it lacks) and, side by side, the ground-truth lines of
sroie/box/*.csv, so a miss shows as the OCR's or the rule's. Scored as SROIE scores key information: a
field is right when it equals key/ID.json after whitespace is collapsed and letters upper-cased;
precision is right over read, recall right over keyed, and the overall F1 pools the three fields (SROIE's
fourth, the address, is not read). The date is compared as an ISO date on both sides, because Loupe
stores ``YYYY-MM-DD`` and the key writes what the receipt printed ("25/12/2018", or "20180304" where the
receipt printed 04/03/2018); the total as an amount to the cent (the key writes "9.00", "RM 9.00", "$8.20").
Each half (receipts with an even and an odd number) is reported apart, so a rule that fits only the
receipts read while writing it shows as a gap between halves. Beside the scores, the receipts that print "$"
and how many of them are read as ringgit: every SROIE receipt is Malaysian, so all of them should be
(tools/document_fields.py: dollar_for_ringgit).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from loupe.evals.agent_eval import build_index
from loupe.evals.paths import DATASETS, RESULTS
from loupe.base.config import load_settings
from loupe.metadata import parse_price
from loupe.tools.document_fields import iso_date, printed_currency, printed_date, printed_shop, printed_total
from loupe.tools.process import configure_process
from loupe.tools.training.text_boxes import read_text_boxes

FIELDS = ("company", "date", "total")
SOURCES = ("ocr", "truth")  # Loupe's own OCR as indexed; the dataset's ground-truth lines


def read_fields(lines: list[dict]) -> dict[str, str | None]:
    """The three fields as Loupe reads them from OCR lines (text and 0..1 box) in reading order, and the
    currency of the total (not scored as a field: SROIE's key has none)."""
    total = printed_total(lines)
    text = "\n".join(line["text"] for line in lines)
    return {"company": printed_shop([line["text"] for line in lines]), "date": printed_date(text),
            "total": f"{total:.2f}" if total is not None else None,
            "currency": printed_currency(text), "prints_dollar": "$" in text}


def keyed_fields(key: dict) -> dict[str, str | None]:
    total = parse_price(key["total"])
    return {"company": key["company"] or None, "date": iso_date(key["date"]),
            "total": f"{total:.2f}" if total is not None else None}


def truth_lines(image: Path, boxes: Path) -> list[dict]:
    """A box file's lines in its own order, with boxes normalised to 0..1 as Loupe stores them."""
    with Image.open(image) as picture:
        width, height = picture.size
    lines = []
    for box in read_text_boxes(boxes):
        left, top, right, bottom = box.box[0] / width, box.box[1] / height, box.box[2] / width, box.box[3] / height
        lines.append({"text": box.text, "box": [[left, top], [right, top], [right, bottom], [left, bottom]]})
    return lines


def compare(toolbox, datasets: Path) -> list[dict]:
    rows = toolbox.table.find("path LIKE '%/sroie/images/%'", limit=1000, columns=["id", "path", "ocr_lines"])
    found = []
    for row in sorted(rows, key=lambda row: row["path"]):
        stem = Path(row["path"]).stem
        sroie = datasets / "sroie"
        key = json.loads((sroie / "key" / f"{stem}.json").read_text(encoding="utf-8"))
        truth = truth_lines(sroie / "images" / f"{stem}.jpg", sroie / "box" / f"{stem}.csv")
        found.append({"receipt": stem, "key": keyed_fields(key), "truth": read_fields(truth),
                      "ocr": read_fields(json.loads(row["ocr_lines"] or "[]"))})
    return found


def scores(found: list[dict], source: str) -> dict[str, tuple[float, float, float]]:
    """Per field and ``overall``: (precision, recall, F1) of ``source``'s fields against the key."""
    counts = {field: [0, 0, 0] for field in (*FIELDS, "overall")}  # right, read, keyed
    for receipt in found:
        for field in FIELDS:
            read, keyed = _normalised(receipt[source][field]), _normalised(receipt["key"][field])
            for name in (field, "overall"):
                counts[name][0] += bool(read) and read == keyed
                counts[name][1] += bool(read)
                counts[name][2] += bool(keyed)
    result = {}
    for name, (right, read, keyed) in counts.items():
        precision, recall = right / max(read, 1), right / max(keyed, 1)
        result[name] = (precision, recall, 2 * precision * recall / max(precision + recall, 1e-9))
    return result


def _normalised(value: str | None) -> str:
    return " ".join((value or "").split()).upper()


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    args = parser.parse_args()
    found = compare(build_index(load_settings(), args.datasets, RESULTS / "index" / "agent"), args.datasets)
    for source in SOURCES:
        for name, part in (("even", [f for f in found if int(f["receipt"]) % 2 == 0]),
                           ("odd", [f for f in found if int(f["receipt"]) % 2 == 1]), ("all", found)):
            result = scores(part, source)
            fields = "  ".join(f"{field} {result[field][2]:.2f}" for field in FIELDS)
            precision, recall, f1 = result["overall"]
            dollars = [f[source] for f in part if f[source]["prints_dollar"]]
            ringgit = sum(read["currency"] == "MYR" for read in dollars)
            print(f"{'Loupe OCR' if source == 'ocr' else 'truth lines':11} {name:4} ({len(part)} receipts) F1: "
                  f"{fields}  overall {f1:.2f} (P {precision:.2f} R {recall:.2f}); "
                  f"printing \"$\": {len(dollars)}, read as ringgit: {ringgit}")


if __name__ == "__main__":
    main()
