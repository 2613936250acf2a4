"""Choosing the level below which a text-search candidate is not a match ("nothing here"), by cross-validation.

    python -m loupe.evals.text_match_calibration [--datasets ../shared/datasets]

A text search always ranks something; the agent must say when nothing in the
collection is what was asked for. :func:`tools.text_search.is_match` keeps a
candidate when its fused score reaches ``MATCH_SCORE`` or a name found in its
text covers ``MATCH_NAME_COVERAGE`` of the request. This script takes the
one-turn text requests of the agent query sets (requests with known records,
and requests for things the collection does not hold), splits them in two
halves by a hash of their id, picks the two levels on one half and reports on
the other, then swaps; and reports the levels the code uses on every request.

A request is judged right when the first record kept is one it expects, or,
for a "nothing" request, when no record is kept. The levels maximise that
share plus half the F1 of the kept set against the expected set (comparisons
over "my AEON receipts" need the whole set, not only the first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from loupe.agent.intents import search_words
from loupe.evals.agent_eval import build_index
from loupe.evals.paths import DATASETS, QUERY_SETS, RESULTS
from loupe.evals.query_files import read_query_file
from loupe.base.config import load_settings
from loupe.tools import text_search as search
from loupe.tools.process import configure_process

# every agent set over the agent collection: the later ones were written by people who had not read the code
QUERY_FILES = [QUERY_SETS / f"{name}.jsonl" for name in
               ("agent", "agent_paraphrase", "agent_heldout", "agent_unseen", "agent_unseen2", "agent_unseen3",
                "agent_unseen4", "agent_unseen5", "agent_unseen6")]
SCORE_LEVELS = [round(0.40 + 0.01 * i, 2) for i in range(46)]
COVERAGE_LEVELS = [round(0.30 + 0.05 * i, 2) for i in range(15)]


def candidates(toolbox, entries: list[dict]) -> list[dict]:
    """Each one-turn text request with its candidates' (score, name coverage, expected?)."""
    found = []
    for entry in entries:
        if len(entry["turns"]) != 1 or entry["turns"][0].get("image") or entry["expected_tools"] != ["text_search"]:
            continue
        query = search_words(entry["turns"][0]["text"])
        rankings, coverage = search._rankings(toolbox.table, toolbox.models, query, None)
        scores, _, rows = search.fuse(rankings)
        judged = search.match_scores(rankings)  # what text_search judges a match by (no bridge)
        expected = set(entry.get("expected_records") or [])
        ranked = sorted(scores, key=lambda i: -scores[i])[:search.PER_RETRIEVER]
        rows = search.full_rows(toolbox.table, rows, ranked)
        found.append({"id": entry["id"], "nothing": bool(entry.get("expect_nothing")),
                      "candidates": [(judged.get(i, 0.0), coverage.get(i, 0.0),
                                      any(rows[i]["path"].endswith("/" + e) for e in expected)) for i in ranked]})
    return found


def judge(requests: list[dict], level: float, coverage: float) -> dict[str, float]:
    right = {"text": [], "nothing": []}
    f1s = []
    for request in requests:
        kept = [c for c in request["candidates"] if c[0] >= level or c[1] >= coverage][:10]
        if request["nothing"]:
            right["nothing"].append(not kept)
            continue
        right["text"].append(bool(kept) and kept[0][2])
        hits, relevant = sum(c[2] for c in kept), sum(c[2] for c in request["candidates"])
        f1s.append(2 * hits / (len(kept) + relevant) if kept and relevant else 0.0)
    share = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    every = right["text"] + right["nothing"]
    return {"right": share(every), "text_right": share(right["text"]), "nothing_right": share(right["nothing"]),
            "set_f1": share(f1s), "objective": share(every) + 0.5 * share(f1s)}


def cross_validate(requests: list[dict]) -> list[dict]:
    halves = [[r for r in requests if int(hashlib.sha256(r["id"].encode()).hexdigest(), 16) % 2 == h] for h in (0, 1)]
    folds = []
    for tune, test in ((halves[0], halves[1]), (halves[1], halves[0])):
        level, coverage = max(((s, c) for s in SCORE_LEVELS for c in COVERAGE_LEVELS),
                              key=lambda sc: judge(tune, *sc)["objective"])
        folds.append({"level": level, "coverage": coverage, "tuned_on": len(tune), "tested_on": len(test),
                      **judge(test, level, coverage)})
    return folds


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    args = parser.parse_args()
    toolbox = build_index(load_settings(), args.datasets, RESULTS / "index" / "agent")
    requests = [r for path in QUERY_FILES for r in candidates(toolbox, read_query_file(path)[1])]
    folds = cross_validate(requests)
    for fold in folds:
        print(f"tuned on {fold['tuned_on']}: score >= {fold['level']}, name coverage >= {fold['coverage']}; "
              f"on the other {fold['tested_on']}: right {fold['right']:.3f} (text {fold['text_right']:.3f}, "
              f"nothing {fold['nothing_right']:.3f}), set F1 {fold['set_f1']:.3f}")
    used = judge(requests, search.MATCH_SCORE, search.MATCH_NAME_COVERAGE)
    print(f"levels in the code ({search.MATCH_SCORE}, {search.MATCH_NAME_COVERAGE}) on all {len(requests)}: "
          f"right {used['right']:.3f} (text {used['text_right']:.3f}, nothing {used['nothing_right']:.3f}), "
          f"set F1 {used['set_f1']:.3f}")
    (RESULTS / "text_match_calibration.json").write_text(json.dumps({"folds": folds, "in_code": used}, indent=2))


if __name__ == "__main__":
    main()
