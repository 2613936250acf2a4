"""Loupe as a library: open an index, then search, ask, index and find duplicates.

    import loupe
    with loupe.open("~/.loupe/index") as photos:
        photos.index(["~/Pictures"])
        for record in photos.search(text="corner bookshop", k=3):
            print(record.file_name, record.match, record.why)

The Streamlit app, the MCP server and the ``loupe`` commands that search, ask,
index, count and find duplicates are thin layers over this class, so a feature
reaches them at once. Models and the table open on first use and stay open, so
a second search does not reload anything. ``stream`` is ``ask`` with the
records handed out as soon as the searches return, before the words.

Paths: a Python caller, like the person at a terminal, chooses its own files,
so ``search(image="~/photo.jpg")`` may name a file outside the collection. A
server that passes on what a remote client or a model wrote opens the
collection with ``outside_paths=False``: then a path is read only inside the
indexed folders (tools/boundary.py), and uploads come as bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from loupe.base.config import Settings, load_settings
from loupe.base.errors import LoupeError
from loupe.tools.boundary import ChosenFile, ImageInput
from loupe.tools.caption import CaptionToolResult
from loupe.tools.ocr import OcrToolResult
from loupe.tools.records import MatchedRecord, SearchResult
from loupe.tools.toolbox import Toolbox

if TYPE_CHECKING:
    from loupe.agent.assistant import Answer, Assistant, Found
    from loupe.indexer import IndexReport, ProgressCallback
    from loupe.metadata import MetadataIndex
    from loupe.store.filters import Condition
    from loupe.tools.aggregate import Aggregate
    from loupe.tools.duplicates import DuplicateReport, KeeperRule


def __getattr__(name: str) -> Any:
    """``Answer`` and ``Found``, what :meth:`Collection.ask` and :meth:`Collection.stream` hand out, on first use:
    the agent's module loads LangGraph, which a search alone never needs."""
    if name in ("Answer", "Found"):
        from loupe.agent import assistant

        return getattr(assistant, name)
    raise AttributeError(f"module 'loupe.api' has no attribute {name!r}")


def open(index: str | Path | None = None, config: str | Path | None = None,  # noqa: A001 - loupe.open reads well
         outside_paths: bool = True) -> Collection:
    """The collection whose index is ``index`` (default: the configured one, ``$LOUPE_INDEX`` or ~/.loupe/index).

    Nothing is read yet: the first search opens the table and loads the models.
    """
    settings = load_settings(config)
    if index is not None:
        settings = settings.with_index_dir(index)
    return Collection(settings, outside_paths=outside_paths)


class Collection:
    """One index and the models that read it."""

    def __init__(self, settings: Settings, outside_paths: bool = True, toolbox: Toolbox | None = None) -> None:
        self.settings = settings
        self.outside_paths = outside_paths
        self.toolbox = toolbox or Toolbox(settings)

    @cached_property
    def assistant(self) -> Assistant:
        from loupe.agent.assistant import Assistant

        return Assistant(self.settings, toolbox=self.toolbox)

    def search(self, image: ImageInput = None, text: str | None = None, record_id: str | None = None,
               where: str | None = None, k: int = 10) -> list[MatchedRecord]:
        """Records that show ``image`` (or record ``record_id``), copies of it and similar ones; or records whose
        printed text, caption or metadata match ``text``. With a picture and words, the records both searches
        found come first, in the picture's order, then the picture's other matches, then the words' others.

        ``where`` is an SQL filter on stored columns (``"year = 2019 AND price < 20"``), for the caller's own
        use: never pass text that a remote user or a model wrote (the agent builds typed filters instead).
        """
        results = self.search_results(image=image, text=text, record_id=record_id, where=where, k=k)
        return _both(*results, k) if len(results) == 2 else results[0].records

    def search_results(self, image: ImageInput = None, text: str | None = None, record_id: str | None = None,
                       where: str | None = None, k: int = 10) -> list[SearchResult]:
        """The image search's and the text search's results as they are (timing and notes included)."""
        if image is None and not record_id and not text:
            raise LoupeError("give an image, a record id or words to search for")
        results = []
        if image is not None or record_id:
            results.append(self.toolbox.image_search(image=self._image(image), record_id=record_id, k=k,
                                                     where=where))
        if text:
            results.append(self.toolbox.text_search(text, k=k, where=where))
        return results

    def ocr(self, image: ImageInput = None, record_id: str | None = None) -> OcrToolResult:
        """The text printed in a picture (read now) or in a record (as stored when it was indexed)."""
        return self.toolbox.ocr(image=self._image(image), record_id=record_id)

    def caption(self, image: ImageInput = None, record_id: str | None = None) -> CaptionToolResult:
        """What a picture or a record shows, in words (a model's caption, or tags)."""
        return self.toolbox.caption(image=self._image(image), record_id=record_id)

    def ask(self, question: str, image: Path | bytes | None = None, thread: str = "default") -> Answer:
        """The agent's explained answer; the same ``thread`` continues a conversation ("only 2019")."""
        *_, answer = self.stream(question, image=image, thread=thread)
        return answer

    def stream(self, question: str, image: Path | bytes | None = None,
               thread: str = "default") -> Iterator[Found | Answer]:
        """:meth:`ask`, results before words: a ``Found`` (records, trace, seconds) as soon as a tool step
        returns new records, then the ``Answer``. What the UI, ``loupe ask`` and the MCP ``ask`` show first.
        Read it to the end (the turn runs only as far as it is read); a rejected image raises here, at once."""
        if image is not None and not isinstance(image, bytes) and not self.outside_paths:
            image = self.toolbox.boundary.resolve(image)
        return self.assistant.stream(question, image=image, thread_id=thread)

    def record(self, record_id: str) -> MatchedRecord:
        """One record by id, with its metadata and OCR text (``LoupeError`` when there is none)."""
        from loupe.tools.records import record_by_id

        return record_by_id(self.toolbox.table, record_id)

    def thumbnail(self, record_id: str) -> bytes:
        """The record's stored JPEG thumbnail."""
        data = self.toolbox.table.thumbnail(record_id)
        if not data:
            raise LoupeError(f"no record with id {record_id} in the index")
        return data

    def index(self, paths: list[str | Path], metadata: str | Path | MetadataIndex | None = None,
              prune: bool = False, batch_size: int = 16, workers: int | None = None, follow_symlinks: bool = False,
              progress: ProgressCallback | None = None, engine: Literal["local", "ray"] = "local",
              ray_address: str | None = None) -> IndexReport:
        """Index folders, files or s3:// prefixes (loupe/object_inputs.py); a re-run only reads new and changed
        files. Files that could not be indexed are in ``report.problems``, one line each; they never stop the
        run. ``metadata`` is a CSV or JSONL file, or one already read with ``loupe.metadata.load_metadata``
        (``loupe index`` reads it first, to index without it when the file is broken). ``engine="ray"`` runs
        the models in ``workers`` Ray actors (default 2) on the cluster at ``ray_address`` (loupe/ray_indexer.py,
        the ``[ray]`` extra)."""
        from loupe.metadata import MetadataIndex, load_metadata
        from loupe.object_inputs import local_roots

        entries = metadata if isinstance(metadata, MetadataIndex) or metadata is None \
            else load_metadata(Path(metadata).expanduser())
        roots = local_roots(paths, self.settings.storage_endpoint_url, progress)  # an s3:// prefix: its mirror
        try:
            if engine == "ray":
                from loupe.ray_indexer import DEFAULT_WORKERS, index_with_ray

                report = index_with_ray(self.settings, roots, ray_address, workers or DEFAULT_WORKERS, batch_size,
                                        entries, prune, follow_symlinks, progress)
            else:
                from loupe.indexer import Indexer
                from loupe.store.image_table import ImageTable
                from loupe.store.location import index_location

                table = ImageTable.open_or_create(index_location(self.settings), self.toolbox.models.index_info())
                indexer = Indexer(self.settings, self.toolbox.models, table, batch_size,
                                  follow_symlinks=follow_symlinks, workers=workers)
                report = indexer.run(roots, entries, prune, progress)
        finally:
            self.toolbox.__dict__.pop("table", None)  # the next search opens the table as it is now
        if entries is not None:
            report.problems[:0] = entries.problems
        return report

    def aggregate(self, measure: str, column: str | None = None, conditions: list[Condition] | list[dict] = (),
                  shop: str | None = None, group_by: str | None = None) -> Aggregate:
        """An exact figure over every record that typed ``conditions`` and ``shop`` select: count, sum, min, max,
        latest or earliest of ``column``, optionally per shop, month or year (tools/aggregate.py), with the ids
        it came from and what was left out. ``aggregate("sum", shop="aeon", conditions=[Condition("year", "=",
        2018)])`` is what was spent at AEON in 2018; amounts in two currencies are never added together."""
        from loupe.tools.aggregate import aggregate

        return aggregate(self.toolbox.table, measure, column, conditions, shop, group_by)

    def duplicates(self, keep: KeeperRule | None = None, where: str | None = None) -> DuplicateReport:
        """Every group of identical and near-identical images, each with a suggested keeper and, per copy,
        why it is one. Nothing is moved or deleted: see :meth:`move_duplicates`."""
        from loupe.tools.duplicates import find_duplicates

        encoder = self.toolbox.models.image_encoder
        return find_duplicates(self.toolbox.table, encoder.similar_cosine, encoder.near_duplicate_cosine, keep=keep,
                               where=where)

    def move_duplicates(self, report: DuplicateReport, folder: str | Path,
                        dry_run: bool = True) -> tuple[list[tuple[str, str]], Path | None]:
        """Move every group's copies into ``folder`` (their rows leave the index) and write an undo file there;
        with ``dry_run`` only list the moves. Returns the (from, to) moves and the undo file."""
        from loupe.tools.duplicates import move_copies

        return move_copies(self.toolbox.table, self.toolbox.boundary, report, Path(folder).expanduser(), dry_run)

    def close(self) -> None:
        if "assistant" in self.__dict__:
            self.assistant.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _image(self, image: ImageInput) -> ImageInput:
        """A caller's path as its own choice when outside paths are allowed; else as it is (checked by the tools)."""
        if self.outside_paths and isinstance(image, str | Path):
            return ChosenFile(Path(image).expanduser())
        return image


def _both(by_image: SearchResult, by_text: SearchResult, k: int) -> list[MatchedRecord]:
    in_text = {record.id for record in by_text.records}
    in_image = {record.id for record in by_image.records}
    first = [r for r in by_image.records if r.id in in_text]
    rest = [r for r in by_image.records if r.id not in in_text] + [r for r in by_text.records if r.id not in in_image]
    return (first + rest)[:k]
