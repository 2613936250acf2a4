"""Reading one image file safely: the checks, the hashes, EXIF and a thumbnail.

Indexing and every query image go through :func:`read_image` (or
:func:`decode_image_bytes` for an upload), so a hostile or broken file fails
the same way everywhere: with an :class:`~loupe.base.errors.ImageRejected` whose
one-line message names the file and the reason, and never with another
exception. The order of the checks keeps a bad file cheap: the file's type
and byte size first, then the format and pixel size from its header (Pillow's
``Image.open`` is lazy), and only then the decoding, with the pixel limit
counted on the size actually decoded. The SHA-256 is computed by streaming the
file, so no file is held whole in memory, except a WebP, which Pillow reads
whole (at most MAX_FILE_BYTES).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import scipy.fftpack
import numpy as np
from PIL import Image, UnidentifiedImageError

from loupe.base.errors import ImageRejected

SUPPORTED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# The formats Pillow may identify a file as, whatever its name: not every format Pillow knows, so that a
# renamed EPS (which Pillow hands to Ghostscript), PSD or ICO is refused rather than decoded.
_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# MPO is how Pillow's JPEG opener names a JPEG carrying a second picture (many phone photos: a depth or gain map).
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
# Larger files are refused before they are opened: 512 MB holds an uncompressed 8-bit RGB TIFF of 179
# megapixels, over the default pixel limit, and it caps what a WebP (read whole by Pillow) can cost.
MAX_FILE_BYTES = 512 * 1024 * 1024
_HASH_CHUNK_BYTES = 1024 * 1024
# Opening never blocks (a FIFO swapped in after the check) and never translates bytes (Windows).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
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
_EXIF_TEXT_MAX = 100  # longer Make, Model or date strings are garbage, not names
# The same transpositions as ImageOps.exif_transpose, which is not used because it re-encodes the EXIF
# block (and so can raise on a malformed one) and copies the image even when there is nothing to turn.
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What Pillow raises on hostile or broken data, at open or while decoding: a truncated file (OSError,
# EOFError), bad headers and tables (SyntaxError, struct.error, IndexError, KeyError, TypeError,
# ValueError, ZeroDivisionError and other ArithmeticErrors), assertions and runtime errors in its plugins.
# MemoryError and Pillow's DecompressionBombError are handled apart, with their own messages.
_DECODING_ERRORS = (OSError, ValueError, SyntaxError, struct.error, EOFError, LookupError, TypeError,
                    ArithmeticError, RuntimeError, AssertionError)

# Loupe checks every image's size itself, against its own limit, so Pillow's warning for images over
# Image.MAX_IMAGE_PIXELS (89 MP) is noise: configure_process (tools/process.py) silences it.
# Image.MAX_IMAGE_PIXELS itself is left alone: see _open_header.


@dataclass(frozen=True)
class ImageFile:
    """A decoded image and the facts about its file that get stored."""

    path: Path
    sha256: str
    pixel_sha256: str  # hash of the decoded pixels: equal for a copy with only its metadata changed
    phash: int  # 64-bit DCT perceptual hash, as a signed int64 for storage
    rotated_phashes: tuple[int, int, int]  # the same hash of the picture turned 90, 180 and 270 degrees
    file_size: int
    mtime: float  # modification time when read; 0 for bytes that came from no file
    width: int  # size of the original, after EXIF orientation
    height: int
    format: str
    taken_at: str | None  # ISO 8601 from EXIF DateTimeOriginal, else DateTime
    camera: str | None
    orientation: int | None  # the EXIF orientation (1 to 8) applied; None when absent or invalid
    image: Image.Image  # RGB, oriented, at most WORKING_MAX_SIDE on its long side

    def thumbnail_jpeg(self) -> bytes:
        """A small JPEG for galleries and answers, stored in the table (at least 1 pixel on each side)."""
        thumb = self.image.copy()
        thumb.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=80, optimize=True)
        return buffer.getvalue()


@dataclass(frozen=True)
class _Decoded:
    """What decoding gives, before the file facts (hash, size, time) are added."""

    image: Image.Image
    width: int
    height: int
    format: str
    taken_at: str | None
    camera: str | None
    orientation: int | None


def read_image(path: str | Path, max_pixels: int) -> ImageFile:
    """Decode ``path`` (first frame of an animation or multi-page TIFF) or raise ImageRejected.

    Nothing is read before the file is known to be a regular file of at most
    MAX_FILE_BYTES, and no pixel is decoded before the header says the image
    fits ``max_pixels``, so a 2 GB file of zeros or a decompression bomb costs
    no memory.
    """
    path = Path(path)
    try:
        # Checked before opening: opening a FIFO blocks until something writes to it, and opening a device
        # can act on it. The flags and the second check cover a path swapped for one in between.
        _check_file(path, os.stat(path))
        with os.fdopen(os.open(path, _OPEN_FLAGS), "rb") as handle:
            info = os.fstat(handle.fileno())
            _check_file(path, info)
            decoded = _decode(handle, path, max_pixels)
            handle.seek(0)
            digest = hashlib.sha256()
            while chunk := handle.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise _rejected(path, "file not found (moved or deleted?)") from exc
    except PermissionError as exc:
        raise _rejected(path, "permission denied") from exc
    except OSError as exc:
        raise _rejected(path, f"cannot be read ({exc.strerror or exc})") from exc
    return _image_file(path, digest.hexdigest(), info.st_size, info.st_mtime, decoded)


def decode_image_bytes(data: bytes, path: Path, max_pixels: int, mtime: float = 0.0) -> ImageFile:
    """Like :func:`read_image` for bytes already in memory (an upload)."""
    if not data:
        raise _rejected(path, "empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise _rejected(path, _too_many_bytes(len(data)))
    decoded = _decode(io.BytesIO(data), path, max_pixels)
    return _image_file(path, hashlib.sha256(data).hexdigest(), len(data), mtime, decoded)


def open_image(image: str | Path | bytes | None, max_pixels: int) -> ImageFile:
    """A query image from a file path or uploaded bytes."""
    if isinstance(image, bytes):
        return decode_image_bytes(image, Path("uploaded image"), max_pixels)
    if not image:
        raise ImageRejected("no image given: pass an image file, uploaded image bytes or a record id")
    return read_image(image, max_pixels)


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT hash (imagehash's phash) as a signed int64 (Arrow has no uint64 sort order issues)."""
    return perceptual_hashes(image)[0]


def perceptual_hashes(image: Image.Image) -> tuple[int, int, int, int]:
    """The DCT hash of the picture as it is and turned 90, 180 and 270 degrees (counter-clockwise).

    A copy that lost its EXIF orientation is the original turned, and its hash is 30-40 bits from the
    original's; it is within a few bits of one of these. Turning the 32 x 32 grey picture that the hash
    is computed from is the same as turning the picture first (the resize is separable), so the three
    extra hashes cost three 32 x 32 DCTs. The first hash is imagehash's ``phash`` bit for bit.
    """
    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS))
    return tuple(_dct_hash(np.rot90(grey, turns)) for turns in range(4))  # type: ignore[return-value]


def rotated_hashes_of_thumbnail(jpeg: bytes) -> tuple[int, int, int]:
    """The turned hashes of a stored thumbnail (for rows indexed before they were stored): within a few bits
    of the full picture's, as the hash reads a 32 x 32 reduction of either."""
    with Image.open(io.BytesIO(jpeg)) as thumbnail:
        return perceptual_hashes(thumbnail.convert("RGB"))[1:]  # type: ignore[return-value]


def _dct_hash(pixels: np.ndarray) -> int:
    low = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)[:8, :8]
    value = int("".join("1" if bit else "0" for bit in (low > np.median(low)).flatten()), 2)
    return value - (1 << 64) if value >= (1 << 63) else value


def hamming_distances(query: int, hashes: np.ndarray) -> np.ndarray:
    """Bit differences between one perceptual hash and an int64 array of them."""
    xor = np.bitwise_xor(hashes.astype(np.int64), np.int64(query)).view(np.uint64)
    return np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def _check_file(path: Path, info: os.stat_result) -> None:
    """Refuses, from its stat alone, what is not worth opening or would block or cost too much to read."""
    if stat.S_ISDIR(info.st_mode):
        raise _rejected(path, "is a folder, not an image")
    if not stat.S_ISREG(info.st_mode):
        raise _rejected(path, "not a regular file (a pipe, socket or device), not read")
    if info.st_size == 0:
        raise _rejected(path, "empty file (0 bytes)")
    if info.st_size > MAX_FILE_BYTES:
        raise _rejected(path, _too_many_bytes(info.st_size))


def _too_many_bytes(size: int) -> str:
    return f"{size / 2**20:.0f} MB, over the {MAX_FILE_BYTES / 2**20:.0f} MB limit for one image file, not read"


def _image_file(path: Path, sha256: str, file_size: int, mtime: float, decoded: _Decoded) -> ImageFile:
    """The stored facts: the file's, given, and the picture's, with its pixel and perceptual hashes."""
    hashes = perceptual_hashes(decoded.image)
    return ImageFile(
        path=path,
        sha256=sha256,
        pixel_sha256=hashlib.sha256(decoded.image.tobytes()).hexdigest(),
        phash=hashes[0],
        rotated_phashes=hashes[1:],
        file_size=file_size,
        mtime=mtime,
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        taken_at=decoded.taken_at,
        camera=decoded.camera,
        orientation=decoded.orientation,
        image=decoded.image,
    )


def _decode(stream: BinaryIO, path: Path, max_pixels: int) -> _Decoded:
    """The oriented RGB working image and the EXIF facts, the size checked from the header first."""
    with _rejecting(path, "not an image Loupe can read"):
        image = _open_header(stream)
        width, height = image.size
        image_format = image.format or "unknown"
        decoded_pixels, detail = _pixels_to_decode(image)
    if decoded_pixels > max_pixels:
        raise _rejected(path, f"{width}x{height} = {width * height / 1e6:.0f} megapixels{detail}, over the "
                              f"{max_pixels / 1e6:.0f} megapixels limit, refused before decoding (a decompression "
                              "bomb or a huge scan; raise LOUPE_MAX_PIXELS to accept it)")
    with _rejecting(path, "corrupt or truncated image data"):
        image.load()  # the first frame only, of an animation or a multi-page TIFF
        exif = _exif(image)  # after load: a PNG's EXIF may follow its pixels, and getexif() would load it
        orientation = _exif_orientation(exif)
        if orientation in _ORIENTATIONS:
            image = image.transpose(_ORIENTATIONS[orientation])
        image = _to_rgb(image)
        image.thumbnail((WORKING_MAX_SIDE, WORKING_MAX_SIDE), Image.Resampling.BILINEAR)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return _Decoded(image=image, width=width, height=height, format=image_format, taken_at=_exif_datetime(exif),
                    camera=_exif_camera(exif), orientation=orientation)


@contextmanager
def _rejecting(path: Path, failure: str) -> Iterator[None]:
    """Turns what Pillow raises on a hostile or broken file into ImageRejected; ``failure`` names the step."""
    try:
        yield
    except MemoryError as exc:
        raise _rejected(path, "too large to decode in the memory available") from exc
    except Image.DecompressionBombError as exc:  # WebP and GIF frames are also checked inside Pillow
        raise _rejected(path, f"over Pillow's decompression-bomb limit, refused before decoding ({exc})") from exc
    except _DECODING_ERRORS as exc:
        if isinstance(exc, UnidentifiedImageError):  # its message repeats the stream, not the path
            reason = "unknown format: not JPEG, PNG, WebP, GIF, BMP or TIFF"
        else:
            reason = str(exc) or type(exc).__name__
        raise _rejected(path, f"{failure} ({reason})") from exc


def _rejected(path: Path, reason: str) -> ImageRejected:
    """The error for ``path``, on one line whatever the file name or Pillow's message holds."""
    return ImageRejected(" ".join(f"{path}: {reason}".splitlines()))


def _open_header(stream: BinaryIO) -> Image.Image:
    """The image with only its header read (``Image.open`` is lazy), among the formats Loupe reads.

    Pillow's own bomb guard refuses at open anything over twice Image.MAX_IMAGE_PIXELS (179 MP by default),
    before draft mode could shrink a JPEG and whatever LOUPE_MAX_PIXELS says. Loupe checks the size itself
    before decoding, so past that guard the header is read again by the format's own opener, which has no
    such check. Image.MAX_IMAGE_PIXELS is left alone: the guard stays for every other caller in the process.
    """
    try:
        return Image.open(stream, formats=_FORMATS)
    except Image.DecompressionBombError:
        stream.seek(0)
        prefix = stream.read(16)
        for factory, accept in (Image.OPEN[name] for name in _FORMATS if name in Image.OPEN):
            if accept(prefix):
                stream.seek(0)
                return factory(stream, None)  # a WebP or GIF over Pillow's limit raises again, inside
        raise


def _pixels_to_decode(image: Image.Image) -> tuple[int, str]:
    """The pixels decoding will hold, and how they differ from the full size; JPEGs are draft-scaled here.

    libjpeg scales a JPEG by 1/2, 1/4 or 1/8 while decoding (draft mode), to the smallest size still at least
    WORKING_MAX_SIDE on both sides: a 20000x20000 photo decodes as 2500x2500, so it is accepted. A progressive
    JPEG is the exception: libjpeg keeps all its DCT coefficients at full size (2 bytes each, 1.5 to 4 of them
    a pixel), whatever the scale, so its full size counts.
    """
    width, height = image.size
    if image.format not in _JPEG_FORMATS:
        return width * height, ""
    image.draft("RGB", (WORKING_MAX_SIDE, WORKING_MAX_SIDE))
    if image.info.get("progressive"):
        return width * height, " (a progressive JPEG, decoded whole whatever the scale)"
    decoded_width, decoded_height = image.size
    if (decoded_width, decoded_height) == (width, height):
        return width * height, ""
    detail = f" ({decoded_width}x{decoded_height} when decoded at 1/{math.ceil(width / decoded_width)})"
    return decoded_width * decoded_height, detail


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB; transparency lands on white, so logos do not turn black.

    16-bit greys (I;16, I;16B...) keep their top 8 bits: Pillow's own conversion clips them at 255, which
    turned a 16-bit scan white. I (32-bit integer) and F (float) have no standard white level, so their own
    range is stretched to 0..255. An RGB image is returned as it is, not copied: at the pixel limit a copy
    is hundreds of megabytes.
    """
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
    elif image.mode in ("I", "F"):
        image = _stretch_to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image if image.mode in ("RGBA", "LA") else image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba)  # the mask is the alpha band
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _stretch_to_8bit(image: Image.Image) -> Image.Image:
    """An I or F image as L, its finite range stretched to 0..255 (NaN and infinities are ignored for it)."""
    low, high = image.getextrema()
    if not (math.isfinite(low) and math.isfinite(high)):
        values = np.asarray(image)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if high <= low:  # one value everywhere: no range to stretch
        return image.convert("L")
    scale = 255 / (high - low)
    return image.point(lambda value: (value - low) * scale).convert("L")


def _exif(image: Image.Image) -> Image.Exif:
    """The EXIF block, or an empty one when it is malformed: bad metadata does not make the pixels unreadable."""
    try:
        return image.getexif()
    except _DECODING_ERRORS:
        return Image.Exif()


def _exif_value(exif: Image.Exif, tag: int, ifd: int | None = None) -> object:
    """One tag's value, or None when absent or when its bytes cannot be parsed (Pillow parses tags lazily)."""
    try:
        return (exif.get_ifd(ifd) if ifd else exif).get(tag)
    except _DECODING_ERRORS:
        return None


def _exif_orientation(exif: Image.Exif) -> int | None:
    """Orientation 1 to 8; text, a fraction, 0 or 9 are treated as absent (no rotation)."""
    value = _exif_value(exif, _TAG_ORIENTATION)
    return value if type(value) is int and 1 <= value <= 8 else None


def _exif_text(value: object) -> str | None:
    """An EXIF ASCII value up to its first NUL, read as UTF-8; None for what is not short printable text.

    Pillow reads ASCII tags as Latin-1, so they are turned back into their bytes first: a phone's UTF-8
    model name reads right, and bytes that are not UTF-8 at all are garbage.
    """
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
    if not isinstance(raw, bytes):
        return None
    try:
        text = raw.split(b"\x00", 1)[0].decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return text if text and len(text) <= _EXIF_TEXT_MAX and text.isprintable() else None


def _exif_datetime(exif: Image.Exif) -> str | None:
    for raw in (_exif_value(exif, _TAG_DATETIME_ORIGINAL, _EXIF_IFD), _exif_value(exif, _TAG_DATETIME)):
        text = _exif_text(raw)
        if text:
            try:
                return datetime.strptime(text, "%Y:%m:%d %H:%M:%S").isoformat()
            except ValueError:  # garbage, or a date like 0000:00:00: try the next tag
                pass
    return None


def _exif_camera(exif: Image.Exif) -> str | None:
    make, model = (_exif_text(_exif_value(exif, tag)) or "" for tag in (_TAG_MAKE, _TAG_MODEL))
    if model.lower().startswith(make.lower()):
        make = ""
    camera = " ".join(p for p in (make, model) if p)
    return camera or None
