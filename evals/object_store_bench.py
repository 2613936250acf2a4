"""What an index on object storage costs against a folder: indexing and query latency, side by side.

    python -m loupe.evals.object_store_bench [--photos 24] [--receipts 8] [--repeats 3]

The same files are indexed into a local folder and into s3:// on moto's S3 server on 127.0.0.1 (the test
extra; no other S3-compatible store can be installed here), the models loaded once for both. Then every photo
is searched by its bytes and every receipt by its shop's name, ``--repeats`` times. An emulator on the same
machine has no network latency, so the s3:// figures are Lance's object-store path and the request count, not
a cloud's round trips: a real bucket adds 10-50 ms of first-byte latency to every request a query makes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from loupe.api import Collection
from loupe.base.config import Settings
from loupe.evals import ray_bench
from loupe.evals.paths import DATASETS
from loupe.tools.models import Models
from loupe.tools.process import configure_process
from loupe.tools.toolbox import Toolbox

BUCKET = "bench"


def sample(photos: int, receipts: int, folder: Path) -> tuple[list[Path], list[str]]:
    """The Ray benchmark's files copied into ``folder``; the photos (to search by their bytes) and the receipts'
    shop names (to search by words)."""
    ray_bench.sample(photos, receipts, folder)
    pictures = sorted((DATASETS / "holidays" / "images").iterdir())[:photos]
    keys = [DATASETS / "sroie" / "key" / f"{path.stem}.json"
            for path in sorted((DATASETS / "sroie" / "images").iterdir())[:receipts]]
    return pictures, [json.loads(key.read_text(encoding="utf-8"))["company"] for key in keys]


def measure(settings: Settings, models: Models, folder: Path, pictures: list[Path], shops: list[str],
            repeats: int) -> dict[str, float]:
    collection = Collection(settings, toolbox=Toolbox(settings, models))
    start = time.perf_counter()
    report = collection.index([folder])
    seconds = time.perf_counter() - start
    if report.problems:
        raise SystemExit(f"the benchmark's files did not index cleanly: {report.problems}")
    image, text = [], []
    for _ in range(repeats):
        for picture in pictures:
            data = picture.read_bytes()
            start = time.perf_counter()
            collection.search(image=data)
            image.append(1000 * (time.perf_counter() - start))
        for shop in shops:
            start = time.perf_counter()
            collection.search(text=shop)
            text.append(1000 * (time.perf_counter() - start))
    return {"images/s": report.added / seconds, "image p50": statistics.median(image),
            "image p95": statistics.quantiles(image, n=20)[-1], "text p50": statistics.median(text),
            "text p95": statistics.quantiles(text, n=20)[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24, help="Holidays photos")
    parser.add_argument("--receipts", type=int, default=8, help="SROIE receipts")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_process()
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise SystemExit(f"this benchmark needs moto's S3 server: pip install -e '.[test]' ({exc})") from None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="loupe-s3-bench-"))
    try:
        host, port = server.get_host_and_port()
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                           "LOUPE_HOME": str(work / "home")})
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        pictures, shops = sample(args.photos, args.receipts, work / "files")
        base = Settings(offline=True)
        models = Models(base)
        warm = work / "warm"  # the models' first runs (ONNX graphs, OCR) paid before either row is timed
        warm.mkdir()
        shutil.copyfile(pictures[0], warm / pictures[0].name)
        measure(base.with_index_dir(work / "warm-index"), models, warm, pictures[:1], shops[:1], 2)
        rows = {}
        for name, index in (("folder", str(work / "index")), ("s3:// (moto, 127.0.0.1)", f"s3://{BUCKET}/index")):
            rows[name] = measure(base.with_index_dir(index), models, work / "files", pictures, shops, args.repeats)
    finally:
        server.stop()
        shutil.rmtree(work)
    print(f"{args.photos} Holidays photos + {args.receipts} SROIE receipts, {args.repeats} repeats, models warm:")
    print("| index | indexing | image query p50 / p95 | text query p50 / p95 |")
    print("| --- | --- | --- | --- |")
    for name, row in rows.items():
        print(f"| {name} | {row['images/s']:.2f} images/s | {row['image p50']:.0f} / {row['image p95']:.0f} ms | "
              f"{row['text p50']:.0f} / {row['text p95']:.0f} ms |")


if __name__ == "__main__":
    main()
