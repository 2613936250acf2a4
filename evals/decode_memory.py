"""Peak memory of reading hostile and huge image files: is the decode memory budget kept?

    python -m loupe.evals.decode_memory [--max-pixels N] [--quick]

Each file is written to a temporary folder (deleted at the end; the 2 GB and
500 MB files of zeros are sparse and take no disk), then read by
:func:`tools.image_file.read_image` in a fresh Python process, whose peak RSS
(``ru_maxrss``) is printed next to the process's RSS after its imports and
the outcome (decoded, or the rejection). A last process reads every file in a
row: the whole run's peak. The PNGs are one solid colour written a row at a
time through zlib, so making a 220 MP one costs this process no memory either;
only the large JPEGs are encoded by Pillow (about 2 GB, in a child process).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from loupe.tools.process import configure_process

# (name, width, height, PNG colour type, bit depth, one pixel's bytes, PLTE, tRNS)
_PngSpec = tuple[str, int, int, int, int, bytes, bytes | None, bytes | None]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_solid_png(path: Path, width: int, height: int, colour_type: int, bit_depth: int, pixel: bytes,
                    palette: bytes | None = None, transparency: bytes | None = None) -> None:
    """A one-colour PNG of any size, streamed: memory stays at one row however large the image."""
    row = b"\x00" + pixel * width  # filter type 0, then the row's pixels
    compressor = zlib.compressobj(6)
    with path.open("wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)))
        for kind, data in ((b"PLTE", palette), (b"tRNS", transparency)):
            if data:
                handle.write(png_chunk(kind, data))
        for _ in range(height):
            if compressed := compressor.compress(row):
                handle.write(png_chunk(b"IDAT", compressed))
        handle.write(png_chunk(b"IDAT", compressor.flush()))
        handle.write(png_chunk(b"IEND", b""))


def _write_jpeg(path: Path, width: int, height: int, progressive: bool) -> None:
    """Encoded by Pillow in a child process, so that this process keeps its memory for the measurements."""
    code = (f"from PIL import Image; Image.new('RGB', ({width}, {height}), (40, 120, 200))"
            f".save({str(path)!r}, 'JPEG', quality=90, progressive={progressive})")
    subprocess.run([sys.executable, "-c", code], check=True)


def _measure(paths: list[Path], max_pixels: int) -> dict:
    """Read ``paths`` in a fresh process; its outcomes and peak RSS."""
    command = [sys.executable, "-m", "loupe.evals.decode_memory", "--child", str(max_pixels), *map(str, paths)]
    result = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _child(max_pixels: int, paths: list[str]) -> None:
    from loupe.base.errors import ImageRejected
    from loupe.tools.image_file import read_image

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    outcomes = []
    start = time.perf_counter()
    for path in paths:
        try:
            image = read_image(path, max_pixels)
            outcomes.append(f"decoded {image.width}x{image.height} as {image.image.size[0]}x{image.image.size[1]}")
        except ImageRejected as exc:
            outcomes.append("rejected: " + str(exc).split(": ", 1)[1][:90])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "seconds": time.perf_counter() - start,
                      "outcomes": outcomes}))


def main() -> None:
    configure_process()
    from loupe.base.config import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-pixels", type=int, default=Settings().max_pixels)
    parser.add_argument("--quick", action="store_true", help="skip the images at the limit and the 400 MP JPEGs")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(int(args.child[0]), args.child[1:])
        return

    side = math.isqrt(args.max_pixels) - 1  # a square just under the limit
    pngs: list[_PngSpec] = [("solid_220mp.png", 15000, 14700, 2, 8, b"\x28\x78\xc8", None, None)]
    if not args.quick:
        pngs += [
            ("limit_rgb.png", side, side, 2, 8, b"\x28\x78\xc8", None, None),
            ("limit_rgba.png", side, side, 6, 8, b"\x28\x78\xc8\x80", None, None),
            ("limit_palette_transparent.png", side, side, 3, 8, b"\x01", b"\x00\x00\x00\x28\x78\xc8", b"\xff\x80"),
            ("limit_grey16.png", side, side, 0, 16, b"\x80\x00", None, None),
        ]
    jpegs = [] if args.quick else [("jpeg_20000x20000.jpg", 20000, 20000, False),
                                   ("jpeg_progressive_20000x20000.jpg", 20000, 20000, True),
                                   (f"jpeg_progressive_{side}x{side}.jpg", side, side, True)]
    print(f"max_pixels = {args.max_pixels:,} ({args.max_pixels / 1e6:.0f} MP)")
    with tempfile.TemporaryDirectory(prefix="loupe-decode-memory-") as folder:
        files = []
        for name, size in (("zeros_2gb.jpg", 2 * 2**30), ("zeros_500mb.jpg", 500 * 2**20)):
            files.append(Path(folder) / name)
            with files[-1].open("wb") as handle:
                handle.truncate(size)  # sparse: no disk, no memory
        for name, width, height, colour_type, depth, pixel, palette, transparency in pngs:
            files.append(Path(folder) / name)
            write_solid_png(files[-1], width, height, colour_type, depth, pixel, palette, transparency)
        for name, width, height, progressive in jpegs:
            files.append(Path(folder) / name)
            _write_jpeg(files[-1], width, height, progressive)
        for path in files:
            result = _measure([path], args.max_pixels)
            print(f"{path.name:40} {path.stat().st_size / 2**20:8.1f} MB  peak {result['peak_mb']:6.0f} MB "
                  f"(after imports {result['baseline_mb']:.0f})  {result['seconds']:5.1f} s  {result['outcomes'][0]}")
        whole = _measure(files, args.max_pixels)
        print(f"{'all of them, one process':40} {'':11}  peak {whole['peak_mb']:6.0f} MB "
              f"(after imports {whole['baseline_mb']:.0f})  {whole['seconds']:5.1f} s")


if __name__ == "__main__":
    main()
