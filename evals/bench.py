"""Speed and size: indexing throughput per stage, and store query latency at scale.

    python -m loupe.evals.bench [--rows 1000,10000,100000,1000000] [--images 100] [--growth 100,1000,10000]
    python -m loupe.evals.bench --ray     (the Ray engines against the single process: loupe/evals/ray_bench.py)

* indexing: the same real images from ../shared/datasets (Flickr8k and
  Holidays photos, SROIE receipts) through the pipeline as it was before the
  throughput work (PyTorch encoder, OCR on every picture) and as it is now
  (ONNX encoder, OCR only where a quick detection finds text): images/s of
  each, their ratio, the seconds per stage, the index size per image and
  the peak RSS.
  "now, 1 thread" is the new pipeline with its files read on the indexing
  thread: what the worker threads add (loupe/file_reader.py).
  "before" runs the encoder on PyTorch, so the benchmark needs the [train]
  extra (the test install has it).
* growth (--growth 100,1000,10000): that many distinct photos (copies of the
  Flickr8k and Holidays photos, each cropped a little at random and
  re-encoded) indexed into one table, step by step; the seconds and images/s
  of each step, then an image query and a text query end to end (the tools,
  models warm) at the final size.
* store: synthetic rows (random unit vectors, random words) at each size;
  p50/p95 of the store calls one query makes: image-vector k-NN, text-vector
  k-NN, full-text (BM25) search, and the perceptual-hash scan.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from loupe.evals.metrics import percentile
from loupe.evals.paths import DATASETS
from loupe.base.config import Settings, load_settings
from loupe.indexer import Indexer, IndexReport, record_id
from loupe.store.image_table import ImageTable
from loupe.store.schema import IndexInfo
from loupe.tools.boundary import ChosenFile
from loupe.tools.models import Models
from loupe.tools.process import configure_process
from loupe.tools.toolbox import Toolbox

WORDS = ("total receipt cash change coffee book hardware tax invoice sale price apple bus street lake "
         "mountain beach dog cat sign platform train station road cafe bread milk rice").split()


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# The pipelines compared: what indexing ran before the throughput work, and the default now (model settings,
# file-reading threads; None is one per core).
PIPELINES: dict[str, tuple[dict[str, str], int | None]] = {
    "before": ({"image_runtime": "torch", "ocr": "rapidocr-every-image"}, 1),
    "now, 1 thread": ({"image_runtime": "auto", "ocr": "rapidocr"}, 1),
    "now": ({"image_runtime": "auto", "ocr": "rapidocr"}, None),
}
PHOTO_FOLDERS = ("flickr8k/images", "holidays/images")
DATASET_FOLDERS = {"flickr8k": "flickr8k/images", "sroie": "sroie/images", "holidays": "holidays/images"}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm_models(pipeline: str, index_dir: Path) -> tuple[Settings, Models]:
    """One pipeline's settings and its models, loaded before anything is timed."""
    base = load_settings()
    settings = dataclasses.replace(base, index_dir=index_dir,
                                   models=dataclasses.replace(base.models, **PIPELINES[pipeline][0]))
    models = Models(settings)
    models.image_encoder, models.text_embedder, models.ocr, models.captioner  # load before timing
    return settings, models


def index_once(pipeline: str, sources: list[Path], work: Path) -> tuple[float, IndexReport]:
    """Seconds to index ``sources`` (copied into a fresh folder) with one pipeline, models loaded beforehand."""
    settings, models = warm_models(pipeline, work / f"index-{pipeline}")
    photos = work / f"images-{pipeline}"
    photos.mkdir(parents=True)
    for path in sources:
        shutil.copyfile(path, photos / path.name)
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    start = time.perf_counter()
    report = Indexer(settings, models, table, workers=PIPELINES[pipeline][1]).run([photos])
    return time.perf_counter() - start, report


def bench_indexing(per_dataset: int) -> None:
    """Images/s of each pipeline on the same files of each dataset, the ratio, and per-stage seconds."""
    work = Path(tempfile.mkdtemp(prefix="loupe-bench-"))
    print(f"indexing, {per_dataset or 'all'} images per dataset, models loaded first:")
    print("| dataset | images | before img/s | now, 1 thread img/s | now img/s | ratio | now: seconds per stage |")
    print("|---|---|---|---|---|---|---|")
    try:
        for name, folder in DATASET_FOLDERS.items():
            sources = sorted((DATASETS / folder).iterdir())
            sources = sources[:per_dataset] if per_dataset else sources
            rates, stages = {}, ""
            for pipeline in PIPELINES:
                seconds, report = index_once(pipeline, sources, work / name)
                rates[pipeline] = report.indexed / seconds
                stages = ", ".join(f"{stage} {value:.1f}" for stage, value in report.stage_seconds.items())
            size = folder_size(work / name / "index-now") / max(report.indexed, 1) / 1024
            print(f"| {name} | {len(sources)} | {rates['before']:.2f} | {rates['now, 1 thread']:.2f} | "
                  f"{rates['now']:.2f} | {rates['now'] / rates['before']:.1f}x | {stages}; "
                  f"index {size:.0f} KiB/image |", flush=True)
        print(f"peak RSS of the run: {peak_rss_mb():.0f} MB")
    finally:
        shutil.rmtree(work)


def distinct_copies(sources: list[Path], start: int, count: int, folder: Path, rng: np.random.Generator) -> None:
    """Photos ``start`` to ``start + count`` of a growing collection: each a copy of a source (taken in turn)
    with up to 4% cut from each side at random and re-encoded at a random JPEG quality, so no two files are
    the same bytes or pixels and none is skipped as a duplicate."""
    for number in range(start, start + count):
        source = sources[number % len(sources)]
        with Image.open(source) as image:
            width, height = image.size
            cut = rng.uniform(0, 0.04, 4) * [width, height, width, height]
            box = (int(cut[0]), int(cut[1]), width - int(cut[2]), height - int(cut[3]))
            image.convert("RGB").crop(box).save(folder / f"{number:05d}-{source.stem}.jpg",
                                                quality=int(rng.integers(70, 96)))


def bench_growth(sizes: list[int], repeats: int) -> None:
    """Indexing time as a collection grows to each size, then end-to-end query latency at the last size."""
    work = Path(tempfile.mkdtemp(prefix="loupe-growth-"))
    sources = sorted(p for folder in PHOTO_FOLDERS for p in (DATASETS / folder).iterdir())
    rng = np.random.default_rng(0)
    photos = work / "photos"
    photos.mkdir()
    settings, models = warm_models("now", work / "index")
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    print(f"growth: distinct photos from {len(sources)} Flickr8k and Holidays photos, indexed into one table:")
    print("| photos | step | step seconds | step img/s | total seconds |")
    print("|---|---|---|---|---|")
    total, indexed = 0.0, 0
    try:
        for size in sizes:
            distinct_copies(sources, indexed, size - indexed, photos, rng)
            start = time.perf_counter()
            report = Indexer(settings, models, table).run([photos])
            seconds = time.perf_counter() - start
            total += seconds
            print(f"| {size} | +{report.added} | {seconds:.0f} | {report.added / seconds:.2f} | {total:.0f} |",
                  flush=True)
            indexed = size
        toolbox = Toolbox(settings, models)
        queries = sources[:: max(len(sources) // repeats, 1)][:repeats]
        texts = [" ".join(random.choices(WORDS, k=3)) for _ in range(repeats)]
        for name, calls in [("image query", [lambda q=q: toolbox.image_search(ChosenFile(q)) for q in queries]),
                            ("text query", [lambda t=t: toolbox.text_search(t) for t in texts])]:
            p50, p95 = _timed(calls)
            print(f"  {name} end to end at {table.count()} rows: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
        print(f"peak RSS of the run: {peak_rss_mb():.0f} MB")
    finally:
        shutil.rmtree(work)


def synthetic_rows(start: int, count: int, info: IndexInfo, rng: np.random.Generator) -> list[dict]:
    def unit(n: int, dim: int) -> np.ndarray:
        v = rng.standard_normal((n, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    images, ocr, captions = unit(count, info.image_dim), unit(count, info.text_dim), unit(count, info.text_dim)
    rows = []
    for i in range(count):
        path = f"/synthetic/{start + i:07d}.jpg"
        text = " ".join(random.choices(WORDS, k=30))
        rows.append({
            "id": record_id(path), "path": path, "file_name": path.rsplit("/", 1)[1], "sha256": f"{start + i:064x}",
            "pixel_sha256": f"{start + i:064x}", "phash": int(rng.integers(-2**63, 2**63 - 1)), "file_size": 1,
            "mtime": 0.0, "width": 640, "height": 480, "format": "JPEG", "year": 2000 + (start + i) % 25,
            "image_vector": images[i], "ocr_text": text, "ocr_lines": "[]", "has_text": True, "ocr_vector": ocr[i],
            "caption": "dog, beach", "caption_kind": "tags", "caption_vector": captions[i], "title": "",
            "description": "", "metadata_json": "", "search_text": text, "indexed_at": "",
        })
    return rows


def _timed(calls: list[Callable[[], object]]) -> tuple[float, float]:
    """p50 and p95 in ms over ``calls`` (different queries, or one query repeated), each run once after one
    untimed warm-up call of the first."""
    calls[0]()
    times = []
    for call in calls:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return percentile(times, 50) * 1000, percentile(times, 95) * 1000


def bench_store(sizes: list[int], repeats: int) -> None:
    info = IndexInfo("efficientnet-lite0", 1280, "all-MiniLM-L6-v2", 384, "rapidocr", "tags")
    rng = np.random.default_rng(0)
    random.seed(0)
    work = Path(tempfile.mkdtemp(prefix="loupe-store-"))
    table = ImageTable.open_or_create(work, info)
    rows = 0
    p50s: dict[str, dict[int, float]] = {}
    for size in sizes:
        start, before = time.perf_counter(), rows
        while rows < size:
            batch = min(5000, size - rows)
            table.append(synthetic_rows(rows, batch, info, rng))
            rows += batch
        write = time.perf_counter() - start
        start = time.perf_counter()
        table.finish_writes()
        optimize = time.perf_counter() - start
        query_image = rng.standard_normal(info.image_dim).astype(np.float32)
        query_text = rng.standard_normal(info.text_dim).astype(np.float32)
        written = rows - before
        print(f"store at {table.count()} rows (wrote {written} rows at {written / max(write, 1e-9):.0f}/s, "
              f"optimize {optimize:.1f}s, {folder_size(work) / table.count() / 1024:.1f} KiB/row):")
        merge, append = _batch_write_ms(table, info, rng)
        print(f"  commit one indexing batch (16 new photos): merge on the path {merge:.0f} ms, append {append:.0f} ms")
        for name, call in [
            ("image k-NN (50)", lambda: table.vector_search("image_vector", query_image, 50)),
            ("image k-NN + where", lambda: table.vector_search("image_vector", query_image, 50, "year = 2019")),
            ("text k-NN (50)", lambda: table.vector_search("ocr_vector", query_text, 50)),
            ("full-text BM25 (50)", lambda: table.full_text_search("coffee receipt", 50)),
            ("perceptual-hash scan", table.perceptual_hashes),
        ]:
            p50, p95 = _timed([call] * repeats)
            p50s.setdefault(name, {})[table.count()] = p50
            print(f"  {name:22s} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms")
    shutil.rmtree(work)
    print_growth_plot(p50s)


def _batch_write_ms(table: ImageTable, info: IndexInfo, rng: np.random.Generator) -> tuple[float, float]:
    """Milliseconds to commit 16 new rows by a merge on the path (the indexer before) and by an append (now),
    at the table's present size; the rows are removed again."""
    seconds = []
    for number, write in enumerate((table.upsert, table.append)):
        rows = synthetic_rows(10**8 + 100 * number, 16, info, rng)
        start = time.perf_counter()
        write(rows)
        seconds.append(time.perf_counter() - start)
        table.delete_paths([row["path"] for row in rows])
    return seconds[0] * 1000, seconds[1] * 1000


def print_growth_plot(p50s: dict[str, dict[int, float]], width: int = 50) -> None:
    """p50 against table size, one bar per size, scaled to each call's slowest size (a text plot)."""
    print("p50 by table size:")
    for name, by_size in p50s.items():
        slowest = max(by_size.values()) or 1.0
        print(f"  {name}")
        for size, p50 in by_size.items():
            print(f"    {size:>9,} rows {'#' * max(1, round(width * p50 / slowest)):<{width}} {p50:.1f} ms")


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000,100000", help="store sizes, comma-separated")
    parser.add_argument("--images", type=int, default=100,
                        help="images per dataset for the indexing benchmark (-1: all, 0: skip)")
    parser.add_argument("--growth", default="", help="collection sizes for the growth table, e.g. 100,1000,10000")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--ray", action="store_true",
                        help="only the Ray engines against the single process (python -m loupe.evals.ray_bench)")
    args = parser.parse_args()
    if args.ray:
        from loupe.evals import ray_bench

        ray_bench.print_table(ray_bench.run(photos=12, receipts=4, batch_size=4, address=None))
        return
    if args.images:
        bench_indexing(max(args.images, 0))
    if args.growth:
        bench_growth([int(n) for n in args.growth.split(",")], max(args.repeats, 2))
    bench_store([int(n) for n in args.rows.split(",") if n], args.repeats)


if __name__ == "__main__":
    main()
