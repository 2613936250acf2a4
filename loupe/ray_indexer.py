"""Indexing on a Ray cluster: the models run in an actor pool, the table is written where it lives.

The run is the single-process indexer's (loupe/indexer.py) with its middle handed to Ray Data: the driver
lists the files and plans the run (which changed, by size and modification time), a pool of actors reads and
decodes each batch of files (``prepare_for_index``, as loupe/file_reader.py does) and runs the models on it
(``analyse_batch``: every actor loads the models once), and the driver commits each analysed batch as one
atomic commit keyed on the path (``Indexer.commit``). So a re-run skips unchanged files, a kill -9 of the
driver loses at most the batches not committed yet, and a batch that Ray runs again after a worker died
replaces its rows instead of adding them twice. Every node reads the files by the path the driver listed:
on a real cluster the collection is a folder mounted at the same place on every node.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from loupe.base.config import Settings
from loupe.base.errors import MissingExtraError
from loupe.file_reader import prepare_for_index
from loupe.indexer import AnalysedBatch, Indexer, IndexReport, ProgressCallback, RunPlan, analyse_batch
from loupe.metadata import MetadataIndex
from loupe.store.image_table import ImageTable
from loupe.store.location import index_location
from loupe.tools.analysis import StageTimer
from loupe.tools.models import Models
from loupe.tools.process import configure_process

DEFAULT_WORKERS = 2


def index_with_ray(settings: Settings, roots: list[Path], address: str | None = None,
                   workers: int = DEFAULT_WORKERS, batch_size: int = 16, metadata: MetadataIndex | None = None,
                   prune: bool = False, follow_symlinks: bool = False,
                   progress: ProgressCallback | None = None) -> IndexReport:
    """Index ``roots`` into the configured index (a folder or s3://) with ``workers`` model actors on the Ray
    cluster at ``address``.

    ``address`` None uses the Ray connection this process has, or starts a local Ray for the run
    (``ray.init``'s own rule, so ``RAY_ADDRESS`` also works). The report is the single-process indexer's;
    its stage seconds add up every actor's. Ray Data prints its own progress unless ``progress`` is given.
    """
    ray = _import_ray()
    with _connected(ray, address):  # first: a local Ray forks its processes while no LanceDB call is in flight
        models = Models(settings)  # the driver loads only what names the vectors (index_info), never OCR
        table = ImageTable.open_or_create(index_location(settings), models.index_info())
        indexer = Indexer(settings, models, table, batch_size, follow_symlinks=follow_symlinks, workers=1)
        with table.writing_lock():
            return _run(ray, indexer, roots, workers, metadata, prune, progress)


def _run(ray: Any, indexer: Indexer, roots: list[Path], workers: int, metadata: MetadataIndex | None, prune: bool,
         progress: ProgressCallback | None) -> IndexReport:
    """Indexer.run with the batches analysed on the cluster: planned, committed and finished here."""
    def analysed_on_cluster(plan: RunPlan, timer: StageTimer,
                            on_stage: Callable[[str], None]) -> Iterator[tuple[AnalysedBatch, int]]:
        for analysed, seconds, size in _analysed_batches(ray, _actor_settings(indexer), plan, indexer.batch_size,
                                                         workers, progress is None):
            _add_seconds(timer, seconds)  # the actors' stages, in this run's report
            yield analysed, size

    return indexer.run_planned(roots, metadata, prune, progress, analysed_on_cluster)


def _actor_settings(indexer: Indexer) -> Settings:
    """The settings with the image encoder this run chose ("auto" resolved here, from the index and this machine),
    so that every actor loads the same one and none has to reach the index (an actor may have no credentials
    for the bucket an s3:// index lives in)."""
    choice = indexer.models.encoder_choice
    models = dataclasses.replace(indexer.settings.models, image_encoder=choice.setting,
                                 image_encoder_weights=choice.weights)
    return dataclasses.replace(indexer.settings, models=models)


def _import_ray() -> Any:
    """The ``ray`` module, or the one-line error that names the extra it comes with."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError("--engine ray needs the [ray] extra (ray not installed): pip install 'loupe[ray]' "
                                "(from a checkout: pip install -e '.[ray]')") from None
    return ray


@contextmanager
def _connected(ray: Any, address: str | None) -> Iterator[None]:
    """The caller's Ray connection when there is one (a test's, a notebook's); otherwise one for this run."""
    if ray.is_initialized():
        yield
        return
    ray.init(address=address, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


def _analysed_batches(ray: Any, settings: Settings, plan: RunPlan, batch_size: int, workers: int,
                      ray_progress: bool) -> Iterator[tuple[AnalysedBatch, dict[str, float], int]]:
    """(analysed batch, its stage seconds, files in it) for every batch of ``plan.to_index``, as actors finish.

    ``ray_progress`` False keeps Ray Data's own progress lines out of a caller's progress bar.
    """
    if not plan.to_index:
        return
    items = [{"path": str(path), "stored_sha256": plan.stored_sha256(path) or ""} for path in plan.to_index]
    # Ray Data restarts a dead actor and runs its batches again, as often as it takes (its default).
    dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items) // batch_size)).map_batches(
        ModelActor, fn_constructor_kwargs={"settings": settings}, batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    dataset.context.enable_progress_bars = ray_progress  # this dataset's own copy of the context
    for row in dataset.iter_rows():
        yield pickle.loads(row["result"])


class ModelActor:
    """One Ray actor: Loupe's models, loaded once, run over every batch of files the pool hands it.

    The actor reads its batch's files itself. A read stage of its own would send every decoded picture
    through Ray's object store to the actor, and its tasks would wait for a CPU that the actors hold.
    """

    def __init__(self, settings: Settings) -> None:
        configure_process()
        self.settings = settings
        self.models = Models(settings)
        # Loaded now rather than in the first batch: a model that cannot load fails the run before any batch.
        _ = (self.models.image_encoder, self.models.text_embedder, self.models.ocr, self.models.captioner)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        """One batch read and through the models: one output row, the pickled (analysis, seconds, size).

        An analysed batch holds rows, file facts and problem lines, which no one Arrow type fits: hence pickle.
        """
        timer = StageTimer()
        stored = {path: sha or None for path, sha in zip(batch["path"], batch["stored_sha256"])}
        items = [prepare_for_index(Path(path), self.settings.max_pixels, timer, sha) for path, sha in stored.items()]
        analysed = analyse_batch(self.models, items, lambda path: stored.get(str(path)), timer)
        return {"result": [pickle.dumps((analysed, dict(timer.seconds), len(items)))]}


def _add_seconds(timer: StageTimer, seconds: dict[str, float]) -> None:
    """Stage seconds measured in another process, added to this run's."""
    for stage, value in seconds.items():
        timer.seconds[stage] += value
