"""A hostile corpus: good photos beside every kind of bad, odd or dangerous file, indexed in one run.

``build_hostile_corpus`` writes it (the tests use it too); run as a benchmark it indexes the corpus in a
fresh process and prints what happened to each file and the run's peak resident memory:

    python -m loupe.evals.hostile_corpus [--keep FOLDER]

Every good or merely unusual image must be indexed exactly once, every bad file must cost one line, and
the run must stay under 1.5 GB of RSS, including a 2 GB non-image, an over-limit PNG and a 20000 x 20000
JPEG.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from loupe.evals.decode_memory import png_chunk
from loupe.evals.paths import DATASETS
from loupe.tools.process import configure_process

PEAK_RSS_LIMIT_MB = 1536


@dataclass(frozen=True)
class HostileCorpus:
    root: Path
    good: list[str]  # file names that must be indexed exactly once
    bad: dict[str, str]  # file name -> a word its one problem line must contain
    outside: Path  # a private folder beside the collection that must never be read

    def lines_about(self, name: str, problems: list[str]) -> list[str]:
        """The problem lines that name this file (each starts with its path)."""
        return [line for line in problems if line.startswith(f"{self.root}/{name}:")]


def build_hostile_corpus(base: Path, photos: list[Path], huge: bool = False) -> HostileCorpus:
    """Write the corpus under ``base``; ``huge`` adds the files that cost time to make (a 20000 x 20000 JPEG)."""
    root, outside = base / "collection", base / "private"
    root.mkdir(parents=True)
    outside.mkdir()
    good: list[str] = []
    bad: dict[str, str] = {}
    for photo in photos:
        shutil.copyfile(photo, root / photo.name)
        good.append(photo.name)
    sample = Image.open(photos[0]).convert("RGB")
    jpeg = _encoded(sample, "JPEG")

    def write(name: str, data: bytes, word: str | None) -> None:
        (root / name).write_bytes(data)
        if word is None:
            good.append(name)
        else:
            bad[name] = word

    # Unusual but valid: each must be indexed.
    write("upper_case.JPG", jpeg, None)
    write("jpeg_named.png", jpeg, None)
    write("cmyk.jpg", _encoded(sample.convert("CMYK"), "JPEG"), None)
    write("sixteen_bit.png", _encoded(Image.linear_gradient("L").resize((300, 200)).convert("I;16"), "PNG"), None)
    write("palette_transparent.png", _encoded(_palette(sample, transparent=True), "PNG"), None)
    write("grey_alpha.png", _encoded(sample.convert("LA"), "PNG"), None)
    write("one_bit.png", _encoded(sample.convert("1"), "PNG"), None)
    write("int32.tif", _encoded(sample.convert("I"), "TIFF"), None)
    write("float.tif", _encoded(sample.convert("F"), "TIFF"), None)
    write("multipage.tif", _encoded(sample, "TIFF", save_all=True, append_images=[sample.rotate(90)]), None)
    write("animated.gif", _encoded(sample.convert("P"), "GIF", save_all=True,
                                   append_images=[sample.rotate(a).convert("P") for a in range(10, 300, 10)]), None)
    write("photo.webp", _encoded(sample, "WEBP"), None)
    write("one_pixel_wide.png", _encoded(Image.new("RGB", (1, 500), "red"), "PNG"), None)
    write("one_pixel.png", _encoded(Image.new("RGB", (1, 1), "blue"), "PNG"), None)
    write("exif_text_orientation.jpg", _encoded(sample, "JPEG", exif=exif_block((274, 2, b"six\x00"))), None)
    write("exif_garbage.jpg", _encoded(sample, "JPEG", exif=exif_block(
        (306, 2, b"not a date\xff\x00"), (271, 7, b"\xff\xfe\x00\x01"), (36867, 3, b"\x01\x02"))), None)
    write("grey_large.jpg", _encoded(Image.new("L", (12000, 9000), 128), "JPEG"), None)  # 108 MP: read reduced

    # Bad: each must be skipped with one line.
    write("empty.jpg", b"", "0 bytes")
    write("text.png", b"hello, I am not a picture\n" * 10, "not an image")
    write("html.gif", b"<html><body>hi</body></html>", "not an image")
    write("random.webp", os.urandom(4096), "not an image")
    write("zip.tiff", b"PK\x03\x04" + os.urandom(200), "not an image")
    write("truncated.jpg", jpeg[: len(jpeg) // 3], "truncated")
    png = _encoded(sample, "PNG")
    write("header_only.png", png[:60], "image")
    write("bad_crc.png", png[:40] + bytes([png[40] ^ 0xFF]) + png[41:], "image")
    write("bomb.png", _png_header(30000, 30000), "megapixels")  # refused from the header, never decoded
    write("over_limit.png", _png_header(15000, 15000), "megapixels")
    write("broken_frames.gif", _encoded(sample.convert("P"), "GIF")[:200], "image")
    with open(root / "two_gigabytes.jpg", "wb") as handle:  # sparse: costs no disk
        handle.truncate(2 * 2**30)
    bad["two_gigabytes.jpg"] = "image"
    os.mkfifo(root / "pipe.jpg")
    bad["pipe.jpg"] = "not a regular file"
    (root / "folder.jpg").mkdir()  # a folder with an image's name holds nothing: no line expected
    (root / "loop_a.jpg").symlink_to(root / "loop_b.jpg")
    (root / "loop_b.jpg").symlink_to(root / "loop_a.jpg")
    bad["loop_a.jpg"] = "loop"
    bad["loop_b.jpg"] = "loop"
    (root / "dangling.jpg").symlink_to(root / "gone.jpg")
    bad["dangling.jpg"] = "broken symlink"
    secret = outside / "secret.jpg"
    secret.write_bytes(jpeg)
    (outside / "passwords.txt").write_text("hunter2\n", encoding="utf-8")
    (root / "link_to_private.jpg").symlink_to(secret)
    bad["link_to_private.jpg"] = "outside"
    (root / "link_to_text.png").symlink_to(outside / "passwords.txt")
    bad["link_to_text.png"] = "outside"
    (root / "linked_folder").symlink_to(outside, target_is_directory=True)
    bad["linked_folder"] = "outside"
    bad_name = os.fsencode(root) + b"/caf\xe9.jpg"
    with open(bad_name, "wb") as handle:
        handle.write(jpeg)
    bad["caf\\xe9.jpg"] = "UTF-8"  # as the problem line writes the undecodable byte
    if huge:
        write("huge_20000.jpg", _encoded(Image.new("L", (20000, 20000), 90), "JPEG"), None)
    return HostileCorpus(root, good, bad, outside)


def _encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` grey pixels: signature, IHDR and a tiny compressed IDAT.

    Making a real 900-megapixel picture would cost the builder 900 MB; the decoder must refuse from the
    header alone anyway.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 1024))
            + png_chunk(b"IEND", b""))


def _palette(image: Image.Image, transparent: bool) -> Image.Image:
    paletted = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    if transparent:
        paletted.info["transparency"] = 0
    return paletted


def exif_block(*entries: tuple[int, int, bytes]) -> bytes:
    """A little-endian EXIF block whose IFD0 holds ``(tag, TIFF type, raw value)``: any type for any tag."""
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1}
    data_offset = 8 + 2 + 12 * len(entries) + 4
    fields, extra = [], b""
    for tag, kind, value in entries:
        if len(value) <= 4:
            field = value.ljust(4, b"\x00")
        else:
            field, extra = struct.pack("<I", data_offset + len(extra)), extra + value
        fields.append(struct.pack("<HHI", tag, kind, len(value) // sizes[kind]) + field)
    ifd = struct.pack("<H", len(entries)) + b"".join(fields) + b"\x00" * 4
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd + extra


def _index_in_this_process(root: Path, index_dir: Path) -> dict:
    """Run by the benchmark in a fresh interpreter, so ru_maxrss is this run's peak alone."""
    from loupe.base.config import load_settings
    from loupe.indexer import Indexer
    from loupe.store.image_table import ImageTable
    from loupe.tools.models import Models

    settings = load_settings().with_index_dir(index_dir)
    models = Models(settings)
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # torch's import alone is ~650 MB
    start = time.perf_counter()
    report = Indexer(settings, models, table).run([root])
    names = [row["file_name"] for row in table.find("true", limit=10_000, columns=["file_name"])]
    return {"seconds": round(time.perf_counter() - start, 1), "problems": report.problems, "names": names,
            "models_loaded_rss_mb": round(loaded_rss),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="Build the corpus here and keep it (default: a temporary folder).")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_index_in_this_process(*args.child)))
        return
    base = args.keep or Path(tempfile.mkdtemp(prefix="loupe-hostile-"))
    photos = sorted((DATASETS / "holidays" / "images").iterdir())[:3]
    corpus = build_hostile_corpus(base, photos, huge=True)
    result = subprocess.run([sys.executable, "-m", "loupe.evals.hostile_corpus", "--child", str(corpus.root),
                             str(base / "index")], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"the indexing run failed:\n{result.stderr[-3000:]}")
    run = json.loads(result.stdout.strip().splitlines()[-1])
    missing = [name for name in corpus.good if run["names"].count(name) != 1]
    lines = {name: corpus.lines_about(name, run["problems"]) for name in corpus.bad}
    print(f"{len(corpus.good)} good or unusual images, {len(corpus.bad)} bad files, indexed in {run['seconds']} s")
    print(f"indexed exactly once: {len(corpus.good) - len(missing)} of {len(corpus.good)}"
          + (f" (not: {', '.join(missing)})" if missing else ""))
    print(f"bad files with exactly one line: {sum(len(v) == 1 for v in lines.values())} of {len(corpus.bad)}")
    for name, found in lines.items():
        if len(found) != 1:
            print(f"  {name}: {len(found)} lines {found}")
    print(f"peak RSS of the whole run: {run['peak_rss_mb']} MB (limit {PEAK_RSS_LIMIT_MB} MB); "
          f"{run['models_loaded_rss_mb']} MB with the models loaded, before the first file")
    if not args.keep:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
