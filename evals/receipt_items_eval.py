"""Item lines read from receipts (tools/receipt_items.py) against item lines written down by hand.

    python -m loupe.evals.receipt_items_eval [--datasets ../shared/datasets]

SROIE's keys have no items, so evals/annotations/sroie_items.jsonl holds them: for each receipt, every
thing bought with its printed name, quantity and line amount, written from the receipt image and the
dataset's own transcription (box/ID.csv) by someone who had not read the rules. A read item is right when
its amount equals a written item's to the cent and its name is that item's printed name give or take OCR
noise (folded names at least NAME_SIMILARITY alike, or one inside the other); each written item is matched
once. Reported per half (even and odd receipts; the rules were written from the even half's misses only, so
the odd half is held out), from Loupe's own OCR lines as indexed and from SROIE's true lines: precision,
recall and F1 of items, the same for amounts alone, and how often a matched item's quantity is right.
"""

from __future__ import annotations

import argparse
import json
from difflib import SequenceMatcher
from pathlib import Path

from loupe.base.config import load_settings
from loupe.evals.agent_eval import build_index
from loupe.evals.document_fields_eval import truth_lines
from loupe.evals.paths import ANNOTATIONS, DATASETS, RESULTS
from loupe.tools.document_fields import fold
from loupe.tools.process import configure_process
from loupe.tools.receipt_items import Item, printed_items

ITEMS_FILE = ANNOTATIONS / "sroie_items.jsonl"
NAME_SIMILARITY = 0.5  # OCR misreads a few letters of a name; a different item's name shares far fewer


def written_items(path: Path = ITEMS_FILE) -> dict[str, list[Item]]:
    """The hand-written items per receipt number; a receipt written with no items counts (it has none)."""
    written = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            written[entry["receipt"]] = [Item(str(item["name"]), float(item["quantity"]), float(item["amount"]))
                                         for item in entry["items"]]
        except (ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"{path}:{number}: not an item entry ({error})") from None
    return written


def same_name(read: str, written: str) -> bool:
    read, written = fold(read), fold(written)
    return bool(read) and (read in written or written in read
                           or SequenceMatcher(None, read, written).ratio() >= NAME_SIMILARITY)


def match(read: list[Item], written: list[Item]) -> tuple[int, int, int]:
    """(items right, amounts right, quantities right among the items right), each written item used once."""
    unused_items, unused_amounts = list(written), [item.amount for item in written]
    right = amounts = quantities = 0
    for item in read:
        if item.amount in unused_amounts:
            unused_amounts.remove(item.amount)
            amounts += 1
        found = next((other for other in unused_items
                      if round(other.amount, 2) == round(item.amount, 2) and same_name(item.name, other.name)), None)
        if found:
            unused_items.remove(found)
            right += 1
            quantities += found.quantity == item.quantity
    return right, amounts, quantities


def scores(receipts: list[tuple[list[Item], list[Item]]]) -> dict[str, float]:
    read = sum(len(found) for found, _ in receipts)
    written = sum(len(truth) for _, truth in receipts)
    right, amounts, quantities = (sum(values) for values in zip(*(match(found, truth) for found, truth in receipts),
                                                                 strict=True)) if receipts else (0, 0, 0)

    def f1(hits: int) -> tuple[float, float, float]:
        precision, recall = hits / max(read, 1), hits / max(written, 1)
        return precision, recall, 2 * precision * recall / max(precision + recall, 1e-9)

    (p, r, f), (_, _, amount_f1) = f1(right), f1(amounts)
    return {"receipts": len(receipts), "written": written, "read": read, "precision": p, "recall": r, "f1": f,
            "amount_f1": amount_f1, "quantity_right": quantities / max(right, 1)}


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--items", type=Path, default=ITEMS_FILE)
    args = parser.parse_args()
    written = written_items(args.items)
    toolbox = build_index(load_settings(), args.datasets, RESULTS / "index" / "agent")
    rows = toolbox.table.find("path LIKE '%/sroie/images/%'", limit=1000, columns=["path", "ocr_lines"])
    ocr = {Path(row["path"]).stem: json.loads(row["ocr_lines"] or "[]") for row in rows}
    sroie = args.datasets / "sroie"
    for source in ("Loupe OCR", "truth lines"):
        for half, keep in (("even", 0), ("odd", 1), ("all", None)):
            receipts = []
            for stem, items in sorted(written.items()):
                if keep is not None and int(stem) % 2 != keep:
                    continue
                lines = ocr.get(stem, []) if source == "Loupe OCR" else truth_lines(
                    sroie / "images" / f"{stem}.jpg", sroie / "box" / f"{stem}.csv")
                receipts.append((printed_items(lines), items))
            result = scores(receipts)
            print(f"{source:11} {half:4} ({result['receipts']} receipts, {result['written']} items): item P "
                  f"{result['precision']:.2f} R {result['recall']:.2f} F1 {result['f1']:.2f}; amounts F1 "
                  f"{result['amount_f1']:.2f}; quantity right {result['quantity_right']:.2f}")


if __name__ == "__main__":
    main()
