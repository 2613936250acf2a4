"""The four tools over one index, as the agent, the UI and the CLI call them.

It owns the models (loaded on first use) and the open table, so a
conversation does not reload a model per question. Every image given by path
passes the collection boundary here (see :mod:`tools.boundary`), whoever asks.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from loupe.base.config import Settings
from loupe.store.image_table import ImageTable
from loupe.store.location import index_location
from loupe.tools.boundary import ChosenFile, CollectionBoundary, ImageInput
from loupe.tools.caption import CaptionToolResult, describe_image
from loupe.tools.image_search import image_search
from loupe.tools.models import Models
from loupe.tools.ocr import OcrToolResult, read_text
from loupe.tools.records import SearchResult
from loupe.tools.text_search import text_search


class Toolbox:
    def __init__(self, settings: Settings, models: Models | None = None) -> None:
        self.settings = settings
        self.models = models or Models(settings)

    @cached_property
    def table(self) -> ImageTable:
        return ImageTable.open(index_location(self.settings))

    @property
    def boundary(self) -> CollectionBoundary:
        """Read anew on each use: another process may have indexed a new folder."""
        return CollectionBoundary.of_index(index_location(self.settings))

    def readable(self, image: ImageInput) -> bytes | Path | None:
        """Uploaded bytes as they are, a chosen file as it is, any other path only inside the collection."""
        if image is None or isinstance(image, bytes):
            return image
        if isinstance(image, ChosenFile):
            return image.path
        return self.boundary.resolve(image)

    def image_search(self, image: ImageInput = None, record_id: str | None = None, k: int = 10,
                     where: str | None = None, second_look: bool = True) -> SearchResult:
        return image_search(self.table, self.models, image=self.readable(image), record_id=record_id, k=k,
                            where=where, second_look=second_look)

    def text_search(self, query: str, k: int = 10, where: str | None = None,
                    matches_only: bool = False) -> SearchResult:
        return text_search(self.table, self.models, query, k=k, where=where, matches_only=matches_only)

    def ocr(self, image: ImageInput = None, record_id: str | None = None) -> OcrToolResult:
        return read_text(self.models, self.table if record_id else None, image=self.readable(image),
                         record_id=record_id)

    def caption(self, image: ImageInput = None, record_id: str | None = None) -> CaptionToolResult:
        return describe_image(self.models, self.table if record_id else None, image=self.readable(image),
                              record_id=record_id)
