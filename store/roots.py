"""The folders (and single files) an index was built from: the collection's boundary.

Every entry point that reads a file by path checks it against these roots
(see :mod:`tools.boundary`), so the roots are kept with the index itself, in
``<index>/loupe-roots.json`` (store/location.py), written by the indexer before it reads any file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from loupe.store.location import IndexLocation, as_location

ROOTS_FILE = "loupe-roots.json"


def load_roots(index: IndexLocation | Path) -> list[Path]:
    """The indexed roots, resolved; [] for an index that has none recorded yet."""
    text = as_location(index).read_text(ROOTS_FILE)
    return [Path(root) for root in json.loads(text).get("roots", [])] if text is not None else []


def add_roots(index: IndexLocation | Path, roots: list[Path]) -> None:
    """Record ``roots`` (resolved) beside the ones already there (atomically: the old list or the new one)."""
    known = load_roots(index)
    for root in roots:
        resolved = Path(os.path.realpath(root))
        if resolved not in known:
            known.append(resolved)
    as_location(index).write_text(ROOTS_FILE, json.dumps({"roots": [str(r) for r in known]}, indent=2))
