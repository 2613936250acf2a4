"""The ocr tool: the printed text in an image, line by line, with boxes and confidences.

For a stored record the text read at indexing time is returned (no model
runs); for a new image the configured OCR backend reads it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loupe.base.errors import LoupeError
from loupe.store.image_table import ImageTable
from loupe.tools.image_file import open_image
from loupe.tools.models import Models
from loupe.tools.models.ocr_backends import OcrLine
from loupe.tools.records import ToolName


@dataclass
class OcrToolResult:
    source: str  # the image's file name or "record <id>"
    lines: list[OcrLine]
    seconds: float
    from_index: bool  # True when the text was read at indexing time

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def to_dict(self) -> dict:
        return {"tool": ToolName.OCR.value, "source": self.source, "text": self.text, "from_index": self.from_index,
                "lines": [asdict(line) for line in self.lines], "seconds": round(self.seconds, 4)}


def read_text(models: Models, table: ImageTable | None = None, image: str | Path | bytes | None = None,
              record_id: str | None = None) -> OcrToolResult:
    """OCR of an image file, uploaded bytes, or a stored record (exactly one)."""
    start = time.perf_counter()
    if record_id:
        if table is None:
            raise LoupeError("reading a stored record's text needs the index")
        row = table.record(record_id, ["file_name", "ocr_lines"])
        lines = [OcrLine(**line) for line in json.loads(row["ocr_lines"] or "[]")]
        return OcrToolResult(f"{row['file_name']} (record {record_id})", lines,
                             time.perf_counter() - start, from_index=True)
    loaded = open_image(image, models.settings.max_pixels)
    result = models.ocr.read(loaded.image)
    return OcrToolResult(loaded.path.name, result.lines, time.perf_counter() - start, from_index=False)
