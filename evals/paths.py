"""Where the evals read their data and write their results: one place for every script.

The public datasets live beside the repository in ``../shared/datasets``; ``LOUPE_DATASETS`` points
elsewhere (a held-out copy, another machine's layout).
"""

from __future__ import annotations

import os
from pathlib import Path

EVALS = Path(__file__).resolve().parent
DATASETS = Path(os.environ.get("LOUPE_DATASETS") or EVALS.parents[1] / "shared" / "datasets")
QUERY_SETS = EVALS / "querysets"
ANNOTATIONS = EVALS / "annotations"  # ground truth written by hand where a dataset has none (not query sets)
RESULTS = EVALS / "results"
