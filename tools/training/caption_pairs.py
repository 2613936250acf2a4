"""Image-caption pairs as Flickr8k and COCO-mini lay them out: a CSV with ``image`` and ``caption`` columns.

Read by ``loupe train-clip`` and ``loupe train-bridge``; torch-free, so the bridge (which needs
no torch) can use it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from loupe.base.errors import LoupeError


def read_pairs(captions: Path, images: Path) -> list[tuple[Path, str]]:
    """(image path, caption) for every row with both; a one-line LoupeError for a missing or wrong file."""
    if not captions.is_file():
        raise LoupeError(f"caption file {captions} does not exist (a CSV with image and caption columns)")
    with captions.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"image", "caption"} <= set(reader.fieldnames):
            raise LoupeError(f"{captions} needs a header with 'image' and 'caption' columns")
        pairs = [(images / row["image"], row["caption"].strip()) for row in reader
                 if row.get("image") and (row.get("caption") or "").strip()]
    if not pairs:
        raise LoupeError(f"{captions} has no image-caption pairs")
    return pairs
