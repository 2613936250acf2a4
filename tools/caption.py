"""The caption tool: a short description of an image (or its tags, offline).

For a stored record the caption written at indexing time is returned; for a
new image the configured captioner runs. ``kind`` says whether a model wrote
a sentence ("caption") or the text is a list of labels ("tags").
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loupe.base.errors import LoupeError
from loupe.store.image_table import ImageTable
from loupe.tools.image_file import open_image
from loupe.tools.models import Models
from loupe.tools.records import ToolName


@dataclass
class CaptionToolResult:
    source: str
    text: str
    kind: str  # "caption" or "tags"
    seconds: float
    from_index: bool

    def to_dict(self) -> dict:
        return {"tool": ToolName.CAPTION.value, **asdict(self), "seconds": round(self.seconds, 4)}


def describe_image(models: Models, table: ImageTable | None = None, image: str | Path | bytes | None = None,
                   record_id: str | None = None) -> CaptionToolResult:
    """Caption of an image file, uploaded bytes, or a stored record (exactly one)."""
    start = time.perf_counter()
    if record_id:
        if table is None:
            raise LoupeError("reading a stored record's caption needs the index")
        row = table.record(record_id, ["file_name", "caption", "caption_kind"])
        return CaptionToolResult(f"{row['file_name']} (record {record_id})", row["caption"] or "",
                                 row["caption_kind"] or "tags", time.perf_counter() - start, from_index=True)
    loaded = open_image(image, models.settings.max_pixels)
    embeddings = models.image_encoder.embed_images([loaded.image])
    labels = embeddings.labels[0] if embeddings.labels else None
    ocr_lines = len(models.ocr.read(loaded.image).lines) if models.settings.models.captioner == "tags" else 0
    caption = models.captioner.describe(loaded.image, labels, ocr_lines)
    return CaptionToolResult(loaded.path.name, caption.text, caption.kind, time.perf_counter() - start,
                             from_index=False)
