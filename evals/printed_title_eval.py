"""The printed title read from a picture (tools/printed_title.py) against titles written down by hand.

    python -m loupe.evals.printed_title_eval [--datasets ../shared/datasets]

Two sets: the 50 SMVS DVD covers, whose titles evals/annotations/smvs_titles.jsonl holds (written from the
cover images by someone who had not read the rule; a title drawn as a logo that text OCR cannot read is
marked not legible and reported apart), and the 100 SROIE receipts, whose largest print is the shop's name
(SROIE's company key). A read title is right when, folded and without spaces, it is at least SIMILAR alike
the written one (OCR drops and misreads letters; "CROWEE ABEAUTIFUL MIND" for A BEAUTIFUL MIND counts, a
different title does not). MIN_CONFIDENCE is chosen on one half of the covers and reported on the other,
and the other way round, so the chosen value's held-out figure shows beside its tuning one.
"""

from __future__ import annotations

import argparse
import json
from difflib import SequenceMatcher
from pathlib import Path

from loupe.base.config import load_settings
from loupe.evals.agent_eval import build_index
from loupe.evals.paths import ANNOTATIONS, DATASETS, RESULTS
from loupe.tools.document_fields import fold
from loupe.tools.printed_title import MIN_CONFIDENCE, printed_title
from loupe.tools.process import configure_process

TITLES_FILE = ANNOTATIONS / "smvs_titles.jsonl"
SIMILAR = 0.6
CONFIDENCES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


def same_title(read: str | None, written: str) -> bool:
    read, written = "".join(fold(read or "").split()), "".join(fold(written).split())
    return bool(read) and SequenceMatcher(None, read, written).ratio() >= SIMILAR


def written_titles(path: Path = TITLES_FILE) -> dict[str, tuple[str, bool]]:
    """Cover file name -> (title, legible)."""
    titles = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                entry = json.loads(line)
                titles[Path(entry["image"]).name] = (str(entry["title"]), bool(entry.get("legible", True)))
            except (ValueError, KeyError, TypeError) as error:
                raise SystemExit(f"{path}:{number}: not a title entry ({error})") from None
    return titles


def right_share(pairs: list[tuple[list[dict], str]], confidence: float) -> float:
    """The share of pictures whose title is read right with lines of at least this OCR confidence."""
    return sum(same_title(printed_title(lines, confidence), title) for lines, title in pairs) / max(len(pairs), 1)


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    args = parser.parse_args()
    titles = written_titles()
    table = build_index(load_settings(), args.datasets, RESULTS / "index" / "agent").table  # covers and receipts
    covers = table.find("path LIKE '%/smvs_dvd/reference/%'", limit=1000, columns=["path", "ocr_lines"])
    lines = {Path(row["path"]).name: json.loads(row["ocr_lines"] or "[]") for row in covers}
    legible = sorted(name for name, (_, readable) in titles.items() if readable)
    halves = {"even": [n for n in legible if int(Path(n).stem) % 2 == 0],
              "odd": [n for n in legible if int(Path(n).stem) % 2 == 1]}
    pairs = {half: [(lines.get(name, []), titles[name][0]) for name in names] for half, names in halves.items()}
    for tune, report in (("even", "odd"), ("odd", "even")):
        chosen = max(CONFIDENCES, key=lambda confidence: (right_share(pairs[tune], confidence), confidence))
        print(f"covers: chosen on the {tune} half ({len(pairs[tune])}): confidence >= {chosen}, right "
              f"{right_share(pairs[tune], chosen):.2f}; on the {report} half ({len(pairs[report])}) "
              f"{right_share(pairs[report], chosen):.2f}")
    every = pairs["even"] + pairs["odd"]
    unreadable = [(lines.get(name, []), title) for name, (title, readable) in titles.items() if not readable]
    code = MIN_CONFIDENCE
    logos = f"; drawn as logos {right_share(unreadable, code):.2f} of {len(unreadable)}" if unreadable else ""
    print(f"covers at the code's {code}: legible {right_share(every, code):.2f} of {len(every)}{logos}")
    receipts = table.find("path LIKE '%/sroie/images/%'", limit=1000, columns=["path", "ocr_lines"])
    shops = [(json.loads(row["ocr_lines"] or "[]"), json.loads(
        (args.datasets / "sroie" / "key" / f"{Path(row['path']).stem}.json").read_text(encoding="utf-8"))["company"])
        for row in receipts]
    titled = sum(printed_title(lines) is not None for lines, _ in shops)
    print(f"receipts at {code}: a title on {titled} of {len(shops)}, the shop's name on "
          f"{right_share(shops, code):.2f}")


if __name__ == "__main__":
    main()
