"""How often the printed date and total read from OCR (tools/document_fields.py) equal SROIE's key.

    python -m evals.document_fields_eval [--datasets ../shared/datasets]

Reads the OCR text stored in the agent eval's index (built by evals/agent_eval.py; this builds it if
needed) and compares, per receipt, the printed date read from it and the derived ``total`` column with
key/ID.json. (The index's ``date`` column would be the key's own date there: the eval gives receipts their
date as metadata, which wins over the printed one.) Prints the
share right over all receipts and over each half (receipts with an even and an odd number), so a rule
that fits only the receipts read while writing it shows as a gap between halves.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from evals.agent_eval import build_index
from evals.paths import DATASETS, RESULTS
from loupe.config import load_settings
from tools.document_fields import iso_date, printed_date
from tools.process import configure_process


def compare(toolbox, datasets: Path) -> list[dict]:
    rows = toolbox.table.find("path LIKE '%/sroie/images/%'", limit=1000, columns=["id", "path", "ocr_text", "total"])
    found = []
    for row in rows:
        stem = Path(row["path"]).stem
        key = json.loads((datasets / "sroie" / "key" / f"{stem}.json").read_text(encoding="utf-8"))
        amount = re.sub(r"[^0-9.]", "", key["total"])
        expected_total = float(amount) if amount else None
        found.append({"receipt": stem, "date_right": printed_date(row["ocr_text"] or "") == iso_date(key["date"]),
                      "total_right": expected_total is not None and row["total"] is not None
                      and abs(row["total"] - expected_total) < 0.005})
    return found


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    args = parser.parse_args()
    found = compare(build_index(load_settings(), args.datasets, RESULTS / "index" / "agent"), args.datasets)
    for name, part in (("all", found), ("even", [f for f in found if int(f["receipt"]) % 2 == 0]),
                       ("odd", [f for f in found if int(f["receipt"]) % 2 == 1])):
        print(f"{name} ({len(part)} receipts): date right {sum(f['date_right'] for f in part) / len(part):.2f}, "
              f"total right {sum(f['total_right'] for f in part) / len(part):.2f}")


if __name__ == "__main__":
    main()
