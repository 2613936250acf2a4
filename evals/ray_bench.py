"""Indexing on Ray against the single-process indexer: images/s on the same files, in one run.

    python -m loupe.evals.ray_bench [--photos 12] [--receipts 4] [--batch-size 4] [--address ADDRESS]

The same Holidays photos and SROIE receipts from ../shared/datasets are indexed into a fresh table three
times: by loupe/indexer.py in this process (models loaded before the clock starts, as evals/bench.py does),
then by loupe/ray_indexer.py with a pool of 1 and of 2 model actors on one Ray cluster (a local one unless
``--address``; started before the clock too). A Ray run's time includes what Ray adds: scheduling, starting
the actors and loading the models in each, and moving every batch between processes. So two figures per run:
images/s over the whole run, and images/s after its first commit, which leaves out the start-up (and depends
on which files came first: receipts cost many times a photo). On a 2-core machine the point is the overhead,
not a speed-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from loupe.base.config import Settings, load_settings
from loupe.evals.paths import DATASETS
from loupe.indexer import Indexer, IndexReport
from loupe.ray_indexer import index_with_ray
from loupe.store.image_table import ImageTable
from loupe.tools.models import Models
from loupe.tools.process import configure_process


@dataclasses.dataclass(frozen=True)
class Timing:
    """One run: images indexed, seconds in all, and seconds from its first commit to its last."""

    images: int
    seconds: float
    to_first: float  # from the start to the first commit: Ray's start-up, the first batch, warm-up
    after_first: float
    first_batch: int
    stage_seconds: dict[str, float]  # summed over every process, so above ``seconds`` with 2 workers

    @property
    def rate(self) -> float:
        return self.images / self.seconds

    @property
    def steady_rate(self) -> float:
        """Images/s once the first batch is written (models loaded, actors running)."""
        later = self.images - self.first_batch
        return later / self.after_first if later and self.after_first > 0 else float("nan")


class Clock:
    """A progress callback that notes when the first and the last batch were committed."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.commits: list[tuple[float, int]] = []  # (time, files done)

    def __call__(self, done: int, total: int, stage: str) -> None:
        if stage == "write":
            self.commits.append((time.perf_counter(), done))

    def timing(self, report: IndexReport) -> Timing:
        end = time.perf_counter()
        (first, first_done), (last, _) = self.commits[0], self.commits[-1]
        return Timing(report.indexed, end - self.start, first - self.start, last - first, first_done,
                      report.stage_seconds)


def sample(photos: int, receipts: int, folder: Path) -> Path:
    """The benchmark's files, copied once into ``folder``."""
    folder.mkdir(parents=True)
    sources = sorted((DATASETS / "holidays" / "images").iterdir())[:photos]
    sources += sorted((DATASETS / "sroie" / "images").iterdir())[:receipts]
    for path in sources:
        shutil.copyfile(path, folder / path.name)
    return folder


def single_process(settings: Settings, files: Path, batch_size: int) -> Timing:
    models = Models(settings)
    _ = (models.image_encoder, models.text_embedder, models.ocr, models.captioner)  # loaded before the clock
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    clock = Clock()
    report = Indexer(settings, models, table, batch_size).run([files], progress=clock)
    return clock.timing(_checked(report))


def on_ray(settings: Settings, files: Path, batch_size: int, workers: int) -> Timing:
    clock = Clock()
    report = index_with_ray(settings, [files], workers=workers, batch_size=batch_size, progress=clock)
    return clock.timing(_checked(report))


def _checked(report: IndexReport) -> IndexReport:
    if report.problems or not report.indexed:
        raise SystemExit(f"the benchmark's files did not index cleanly: {report.summary()} {report.problems}")
    return report


def print_table(timings: dict[str, Timing]) -> None:
    base = timings["single process"]
    print("| engine | images | seconds | img/s | ratio | s to 1st commit | img/s after it | ratio | "
          "seconds per stage, all processes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, timing in timings.items():
        stages = ", ".join(f"{stage} {value:.1f}" for stage, value in timing.stage_seconds.items())
        print(f"| {name} | {timing.images} | {timing.seconds:.1f} | {timing.rate:.2f} | "
              f"{timing.rate / base.rate:.2f}x | {timing.to_first:.1f} | {timing.steady_rate:.2f} | "
              f"{timing.steady_rate / base.steady_rate:.2f}x | {stages} |")


def run(photos: int, receipts: int, batch_size: int, address: str | None) -> dict[str, Timing]:
    """Every engine on the same files, each into its own fresh index."""
    import ray

    work = Path(tempfile.mkdtemp(prefix="loupe-ray-bench-"))
    ray.init(address=address, logging_level="WARNING")  # first: a local Ray forks while no LanceDB call runs
    try:
        files = sample(photos, receipts, work / "images")
        settings = load_settings()
        timings = {"single process": single_process(settings.with_index_dir(work / "single"), files, batch_size)}
        for workers in (1, 2):
            timings[f"ray, {workers} worker{'s' if workers > 1 else ''}"] = on_ray(
                settings.with_index_dir(work / f"ray-{workers}"), files, batch_size, workers)
        return timings
    finally:
        ray.shutdown()
        shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12, help="Holidays photos")
    parser.add_argument("--receipts", type=int, default=4, help="SROIE receipts (the OCR-heavy part)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per batch and commit, in every engine")
    parser.add_argument("--address", default=None, help="a running Ray cluster (default: a local one)")
    args = parser.parse_args()
    configure_process()
    timings = run(args.photos, args.receipts, args.batch_size, args.address)
    print(f"{args.photos} Holidays photos + {args.receipts} SROIE receipts, batches of {args.batch_size}:")
    print_table(timings)


if __name__ == "__main__":
    main()
