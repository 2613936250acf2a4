"""The folders (and single files) an index was built from: the collection's boundary.

Every entry point that reads a file by path checks it against these roots
(see :mod:`tools.boundary`), so the roots are kept with the index itself, in
``<index>/loupe-roots.json``, written by the indexer before it reads any file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOTS_FILE = "loupe-roots.json"


def load_roots(index_dir: Path) -> list[Path]:
    """The indexed roots, resolved; [] for an index that has none recorded yet."""
    path = Path(index_dir) / ROOTS_FILE
    if not path.is_file():
        return []
    return [Path(root) for root in json.loads(path.read_text(encoding="utf-8")).get("roots", [])]


def add_roots(index_dir: Path, roots: list[Path]) -> None:
    """Record ``roots`` (resolved) beside the ones already there."""
    known = load_roots(index_dir)
    for root in roots:
        resolved = Path(os.path.realpath(root))
        if resolved not in known:
            known.append(resolved)
    target = Path(index_dir) / ROOTS_FILE
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps({"roots": [str(r) for r in known]}, indent=2), encoding="utf-8")
    temporary.replace(target)  # atomic: a crash leaves the old list or the new one
