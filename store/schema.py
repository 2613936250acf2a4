"""The one LanceDB table Loupe keeps: one row per image file.

Vector widths depend on the configured models, so the schema is built from
them; :class:`IndexInfo` records which models filled the vectors, because
vectors from two different encoders must never be compared.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from loupe.store.location import IndexLocation, as_location

TABLE_NAME = "images"
INFO_FILE = "loupe-index.json"

# Columns an answer shows; vectors and the thumbnail stay out of results unless
# asked for, so a search reads a few hundred bytes per row, not kilobytes.
RECORD_COLUMNS = [
    "id", "path", "file_name", "sha256", "pixel_sha256", "phash", "file_size", "width", "height", "format",
    "taken_at", "year", "camera", "orientation", "ocr_text", "ocr_lines", "caption",
    "caption_kind", "title", "description", "price", "metadata_json", "indexed_at", "date", "total", "shop", "items",
    "printed_title",
]


@dataclass(frozen=True)
class IndexInfo:
    """Which models produced an index's vectors, and their widths.

    The two vector models are recorded by the model's own name, which changes with its weights (a tuned
    encoder is ``efficientnet-lite0-tuned-<fingerprint>``), because that is what decides whether two vectors
    can be compared. OCR and captions leave text, not vectors, so they are recorded as the registry spells
    their setting (``family[:name][@weights]``, tools/models/registry.py), for the reader's information.
    """

    image_encoder: str
    image_dim: int
    text_embedder: str
    text_dim: int
    ocr: str
    captioner: str
    # The rules the fields read from printed text (shop, date, total, items) were computed by
    # (tools/document_fields.py's FIELDS_VERSION); 0 for an index from before they were versioned. `loupe index`
    # reads them again when older.
    fields_version: int = 0

    def vector_models(self) -> tuple[str, int, str, int]:
        """What must stay the same for old and new vectors to be comparable."""
        return (self.image_encoder, self.image_dim, self.text_embedder, self.text_dim)

    def save(self, index: IndexLocation | Path) -> None:
        as_location(index).write_text(INFO_FILE, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, index: IndexLocation | Path) -> IndexInfo | None:
        text = as_location(index).read_text(INFO_FILE)
        return cls(**json.loads(text)) if text is not None else None


# Added after indexes were first built; `loupe index` fills them from the stored text and thumbnail.
DERIVED_COLUMNS = ("date", "total", "folded_text", "rotated_phashes", "shop", "items", "printed_title")


def image_table_schema(info: IndexInfo) -> pa.Schema:
    """Arrow schema of the images table for the given vector widths."""
    image_vector = pa.list_(pa.float32(), info.image_dim)
    text_vector = pa.list_(pa.float32(), info.text_dim)
    return pa.schema([
        pa.field("id", pa.string(), nullable=False),  # stable id derived from the path
        pa.field("path", pa.string(), nullable=False),
        pa.field("file_name", pa.string()),
        pa.field("sha256", pa.string()),
        pa.field("pixel_sha256", pa.string()),
        pa.field("phash", pa.int64()),
        # of the picture turned 90, 180, 270 degrees; [] for a row from before them that had no thumbnail
        pa.field("rotated_phashes", pa.list_(pa.int64())),
        pa.field("file_size", pa.int64()),
        pa.field("mtime", pa.float64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("format", pa.string()),
        pa.field("taken_at", pa.string()),
        pa.field("year", pa.int32()),
        pa.field("camera", pa.string()),
        pa.field("orientation", pa.int32()),
        pa.field("image_vector", image_vector),
        pa.field("orb_keypoints", pa.binary()),  # for geometric verification (tools/local_features)
        pa.field("orb_descriptors", pa.binary()),
        pa.field("ocr_text", pa.string()),
        pa.field("ocr_lines", pa.string()),  # JSON: [{text, box, confidence}]
        pa.field("has_text", pa.bool_()),
        pa.field("ocr_vector", text_vector),
        pa.field("caption", pa.string()),
        pa.field("caption_kind", pa.string()),  # "caption" (a model wrote it) or "tags"
        pa.field("caption_vector", text_vector),
        pa.field("title", pa.string()),
        pa.field("description", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("metadata_json", pa.string()),
        pa.field("search_text", pa.string()),  # what full-text (BM25) search reads
        pa.field("thumbnail", pa.binary()),
        pa.field("indexed_at", pa.string()),
        # Derived from the columns above (tools/document_fields.py); an older index gets them on open,
        # empty, and `loupe index` fills them from the stored text without running a model.
        pa.field("date", pa.string()),  # YYYY-MM-DD: the EXIF or metadata date, else the printed one
        pa.field("total", pa.float64()),  # the printed total of a receipt or invoice
        pa.field("folded_text", pa.string()),  # search_text folded per line (no case, accents, punctuation)
        # the shop or company a receipt prints; "" once read and none is printed, NULL on a row not read yet
        pa.field("shop", pa.string()),
        # JSON: the item lines a receipt prints, [{name, quantity, amount}]; "[]" once read and none is printed
        pa.field("items", pa.string()),
        # the largest text a picture prints (a cover's title); "" where none is read, or on a receipt (its shop)
        pa.field("printed_title", pa.string()),
    ])
