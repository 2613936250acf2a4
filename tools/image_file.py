"""Reading one image file safely: the checks, the hashes, EXIF and a thumbnail.

Indexing and every query image go through :func:`read_image`, so a corrupt
file, a 0-byte file or a decompression bomb fails the same way everywhere:
with an :class:`~loupe.errors.ImageRejected` whose message names the file and
the reason.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from loupe.errors import ImageRejected

SUPPORTED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# Decoded images are kept at most this large: enough for OCR of a receipt
# photo, and JPEG can decode straight to it (draft mode), which is several
# times faster than decoding a 12 MP phone photo in full.
WORKING_MAX_SIDE = 2048
THUMBNAIL_MAX_SIDE = 256

_EXIF_IFD = 0x8769
_TAG_DATETIME_ORIGINAL = 36867
_TAG_DATETIME = 306
_TAG_MAKE = 271
_TAG_MODEL = 272
_TAG_ORIENTATION = 274


@dataclass(frozen=True)
class ImageFile:
    """A decoded image and the facts about its file that get stored."""

    path: Path
    sha256: str
    pixel_sha256: str  # hash of the decoded pixels: equal for a copy with only its metadata changed
    phash: int  # 64-bit DCT perceptual hash, as a signed int64 for storage
    file_size: int
    mtime: float  # modification time when read; 0 for bytes that came from no file
    width: int  # size of the original, after EXIF orientation
    height: int
    format: str
    taken_at: str | None  # ISO 8601 from EXIF DateTimeOriginal, else DateTime
    camera: str | None
    orientation: int | None
    image: Image.Image  # RGB, oriented, at most WORKING_MAX_SIDE on its long side

    def thumbnail_jpeg(self) -> bytes:
        """A small JPEG for galleries and answers, stored in the table."""
        thumb = self.image.copy()
        thumb.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=80, optimize=True)
        return buffer.getvalue()


def read_image(path: str | Path, max_pixels: int) -> ImageFile:
    """Decode ``path`` (first frame of a GIF or TIFF) or raise ImageRejected.

    The pixel count is checked from the header, before any decoding, so a
    decompression bomb costs no memory.
    """
    path = Path(path)
    try:
        mtime = path.stat().st_mtime
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageRejected(f"{path}: file not found (moved or deleted?)") from exc
    except IsADirectoryError as exc:
        raise ImageRejected(f"{path}: is a folder, not an image") from exc
    except PermissionError as exc:
        raise ImageRejected(f"{path}: permission denied") from exc
    except OSError as exc:
        raise ImageRejected(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not data:
        raise ImageRejected(f"{path}: empty file (0 bytes)")
    return decode_image_bytes(data, path, max_pixels, mtime)


def decode_image_bytes(data: bytes, path: Path, max_pixels: int, mtime: float = 0.0) -> ImageFile:
    """Like :func:`read_image` for bytes already in memory (an upload)."""
    if not data:
        raise ImageRejected(f"{path}: empty file (0 bytes)")
    # PIL refuses images over twice this at open time; our own check below
    # refuses those between the limit and twice it, with the same message.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
        exif = opened.getexif()
    except Image.DecompressionBombError as exc:
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(pixels.group(1)) / 1e6:.0f} megapixels, " if pixels else ""
        raise ImageRejected(_too_large(path, size, max_pixels)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"{path}: not an image Loupe can read (unknown format, or corrupt: {exc})") from exc

    width, height = opened.size
    if width * height > max_pixels:
        raise ImageRejected(_too_large(path, f"{width}x{height} = {width * height / 1e6:.0f} megapixels, ",
                                       max_pixels))
    image_format = opened.format or "unknown"
    orientation = exif.get(_TAG_ORIENTATION)

    try:
        if image_format == "JPEG":
            opened.draft("RGB", (WORKING_MAX_SIDE, WORKING_MAX_SIDE))
        opened.seek(0)  # first frame of an animation or multi-page TIFF
        opened.load()
        oriented = ImageOps.exif_transpose(opened)
        rgb = _to_rgb(oriented)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageRejected(f"{path}: corrupt or truncated image data ({exc})") from exc

    if orientation in (5, 6, 7, 8):
        width, height = height, width
    rgb.thumbnail((WORKING_MAX_SIDE, WORKING_MAX_SIDE), Image.Resampling.BILINEAR)
    return ImageFile(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        pixel_sha256=hashlib.sha256(rgb.tobytes()).hexdigest(),
        phash=perceptual_hash(rgb),
        file_size=len(data),
        mtime=mtime,
        width=width,
        height=height,
        format=image_format,
        taken_at=_exif_datetime(exif),
        camera=_exif_camera(exif),
        orientation=int(orientation) if orientation else None,
        image=rgb,
    )


def open_image(image: str | Path | bytes | None, max_pixels: int) -> ImageFile:
    """A query image from a file path or uploaded bytes."""
    if isinstance(image, bytes):
        return decode_image_bytes(image, Path("uploaded image"), max_pixels)
    if not image:
        raise ImageRejected("no image given: pass an image file, uploaded image bytes or a record id")
    return read_image(image, max_pixels)


def _too_large(path: Path, size: str, max_pixels: int) -> str:
    return (f"{path}: {size}over the {max_pixels / 1e6:.0f} megapixels limit, refused before decoding "
            "(a decompression bomb or a huge scan; raise LOUPE_MAX_PIXELS to accept it)")


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT hash as a signed int64 (Arrow has no uint64 sort order issues)."""
    bits = imagehash.phash(image).hash.flatten()
    value = int("".join("1" if b else "0" for b in bits), 2)
    return value - (1 << 64) if value >= (1 << 63) else value


def hamming_distances(query: int, hashes: np.ndarray) -> np.ndarray:
    """Bit differences between one perceptual hash and an int64 array of them."""
    xor = np.bitwise_xor(hashes.astype(np.int64), np.int64(query)).view(np.uint64)
    return np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB on white for images with transparency, so logos do not turn black."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _exif_datetime(exif: Image.Exif) -> str | None:
    raw = exif.get_ifd(_EXIF_IFD).get(_TAG_DATETIME_ORIGINAL) or exif.get(_TAG_DATETIME)
    if not raw:
        return None
    try:
        return datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _exif_camera(exif: Image.Exif) -> str | None:
    parts = [str(exif.get(tag, "")).strip("\x00 ") for tag in (_TAG_MAKE, _TAG_MODEL)]
    make, model = parts
    if model.lower().startswith(make.lower()):
        make = ""
    camera = " ".join(p for p in (make, model) if p)
    return camera or None
