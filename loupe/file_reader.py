"""Reading the next batch of image files while the models work on this one.

Indexing is a pipeline of two stages. Reading a file (checks, decoding, the
file and pixel hashes, the perceptual hash, ORB keypoints and the thumbnail)
is plain CPU work that Pillow, hashlib and OpenCV do without holding the GIL,
so it runs in worker threads. The models (ONNX Runtime sessions that already
use every core) and the one writer stay on the indexing thread. While that
thread analyses and commits batch k, the workers read batch k+1: at most two
batches of decoded pictures are in memory, and nothing is written out of turn,
so a kill -9 still loses at most the batch in flight.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loupe.base.errors import ImageRejected
from loupe.tools.analysis import StageTimer
from loupe.tools.image_file import ImageFile, read_image
from loupe.tools.local_features import LocalFeatures, extract_features


@dataclass(frozen=True)
class PreparedImage:
    """One file, decoded, with everything computed from its pixels before the models run."""

    file: ImageFile
    local_features: LocalFeatures
    thumbnail: bytes


# A file that could not be read: the one line for the report.
Unreadable = str


def default_workers() -> int:
    """One reading thread per core: the default of ``loupe index --workers``."""
    return os.cpu_count() or 1


NO_FEATURES = LocalFeatures.from_bytes(b"", b"")


def prepare_for_index(path: Path, max_pixels: int, timer: StageTimer,
                      stored_sha256: str | None = None) -> PreparedImage | Unreadable:
    """``path`` read, or the reason it cannot be; never raises, so one file never ends the run.

    A file whose content is the ``stored_sha256`` (touched, not changed) keeps its stored row, features and
    thumbnail: they are not computed again.
    """
    try:
        with timer.stage("decode"):
            image = read_image(path, max_pixels)
        if image.sha256 == stored_sha256:
            return PreparedImage(image, NO_FEATURES, b"")
        with timer.stage("local-features"):
            features = extract_features(image.image)
        with timer.stage("thumbnail"):
            thumbnail = image.thumbnail_jpeg()
    except ImageRejected as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a decoder may fail in ways no check foresees
        return f"{path}: could not be decoded ({type(exc).__name__}: {exc})"
    return PreparedImage(image, features, thumbnail)


def read_batches(paths: list[Path], batch_size: int, workers: int,
                 read: Callable[[Path], PreparedImage | Unreadable]) -> Iterator[list[PreparedImage | Unreadable]]:
    """``paths`` read in batches, in order; with ``workers`` > 1 the next batch is read while this one is used.

    ``workers`` = 1 reads each batch on the calling thread, when it is asked for: the serial indexer.
    """
    batches = [paths[start:start + batch_size] for start in range(0, len(paths), batch_size)]
    if workers <= 1:
        for batch in batches:
            yield [read(path) for path in batch]
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loupe-read") as pool:
        pending: list[Future] = [pool.submit(read, path) for path in batches[0]] if batches else []
        for following in [*batches[1:], []]:
            ahead = [pool.submit(read, path) for path in following]
            yield [future.result() for future in pending]
            pending = ahead
