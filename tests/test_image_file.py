"""Reading image files: every supported format, EXIF date and orientation, transparency, hashes, and hostile files."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import PIL.ImageFile
import pytest
from PIL import Image

from loupe.evals.hostile_corpus import exif_block
from loupe.base.config import DECODE_BYTES_PER_PIXEL, DECODE_MEMORY_BUDGET, Settings, load_settings
from loupe.base.errors import ImageRejected
from tests.conftest import holidays_files
from loupe.tools import image_file
from loupe.tools.image_file import ImageFile, decode_image_bytes, hamming_distances, open_image, read_image
from loupe.tools.local_features import count_inliers, extract_features

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier

LIMIT = 256_000_000


@pytest.mark.parametrize("suffix, pil_format", [(".png", "PNG"), (".webp", "WEBP"), (".bmp", "BMP"),
                                                (".tif", "TIFF"), (".jpg", "JPEG")])
def test_every_supported_format_reads_to_the_same_picture(tmp_path: Path, suffix: str, pil_format: str) -> None:
    source = Image.open(holidays_files(1)[0]).convert("RGB")
    path = tmp_path / f"photo{suffix}"
    source.save(path, pil_format, **({"quality": 95} if pil_format in ("JPEG", "WEBP") else {}))
    image = read_image(path, LIMIT)
    assert image.format == pil_format and image.image.size == source.size and image.image.mode == "RGB"
    reference = read_image(holidays_files(1)[0], LIMIT)
    assert hamming_distances(reference.phash, np.array([image.phash]))[0] <= 4


def test_perceptual_hash_is_imagehash_phash_and_turned_copies_match_a_turned_hash() -> None:
    import imagehash

    for path in holidays_files(4):
        picture = Image.open(path).convert("RGB")
        hashes = image_file.perceptual_hashes(picture)
        bits = imagehash.phash(picture).hash.flatten()
        assert hashes[0] == np.array([int("".join("1" if b else "0" for b in bits), 2)], np.uint64).view(np.int64)[0]
        for turns in (1, 2, 3):
            turned = image_file.perceptual_hash(picture.rotate(90 * turns, expand=True))
            assert hamming_distances(turned, np.array([hashes[turns]]))[0] <= 4
            assert hamming_distances(turned, np.array([hashes[0]]))[0] > 12  # why the turned hashes are kept


def test_animated_gif_uses_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = read_image(path, LIMIT)
    red, green, blue = image.image.getpixel((10, 10))
    assert red > 200 and blue < 50


def test_exif_date_camera_and_orientation_are_applied(tmp_path: Path) -> None:
    picture = Image.new("RGB", (120, 60), (0, 128, 0))
    exif = Image.Exif()
    exif[271], exif[272], exif[274] = "Canon", "Canon EOS 5D", 6  # make, model, orientation: rotate 90
    exif.get_ifd(0x8769)[36867] = "2019:07:14 10:31:00"  # DateTimeOriginal
    path = tmp_path / "camera.jpg"
    picture.save(path, "JPEG", exif=exif)
    image = read_image(path, LIMIT)
    assert image.taken_at == "2019-07-14T10:31:00"
    assert image.camera == "Canon EOS 5D"
    assert image.orientation == 6 and (image.width, image.height) == (60, 120) == image.image.size


def test_transparent_png_lands_on_white(tmp_path: Path) -> None:
    logo = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    path = tmp_path / "logo.png"
    logo.save(path)
    assert read_image(path, LIMIT).image.getpixel((5, 5)) == (255, 255, 255)


def test_metadata_only_copy_has_same_pixel_hash_but_not_same_bytes(tmp_path: Path) -> None:
    original = holidays_files(1)[0]
    data = original.read_bytes()
    with_comment = data[:2] + b"\xff\xfe\x00\x0bhello loupe" + data[2:]  # a JPEG comment segment
    a, b = open_image(data, LIMIT), open_image(with_comment, LIMIT)
    assert a.sha256 != b.sha256 and a.pixel_sha256 == b.pixel_sha256


def test_limits_and_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("1", (5000, 5000)).save(path)
    with pytest.raises(ImageRejected, match=r"5000x5000 = 25 megapixels, over the 20 megapixels limit"):
        read_image(path, 20_000_000)  # caught by Loupe's own check
    with pytest.raises(ImageRejected, match=r"5000x5000 = 25 megapixels, over the 10 megapixels limit"):
        read_image(path, 10_000_000)  # Pillow's guard does not follow the limit: Loupe's own check again
    with pytest.raises(ImageRejected, match="empty file"):
        open_image(b"", LIMIT)
    with pytest.raises(ImageRejected, match="no image given"):
        open_image(None, LIMIT)
    with pytest.raises(ImageRejected, match="is a folder"):
        read_image(tmp_path, LIMIT)
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buffer, "PNG")
    assert open_image(buffer.getvalue(), LIMIT).mtime == 0.0


# Hostile and unusual files: each decodes to a sensible picture or is an ImageRejected naming the file.


def _save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def _jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def test_file_over_the_byte_limit_is_refused_before_it_is_read(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "zeros.jpg"
    with path.open("wb") as handle:
        handle.truncate(2 * 2**30)  # sparse: 2 GB of zeros on no disk
    start = time.perf_counter()
    with pytest.raises(ImageRejected, match=r"zeros.jpg: 2048 MB, over the 512 MB limit"):
        read_image(path, LIMIT)
    assert time.perf_counter() - start < 1.0
    monkeypatch.setattr(image_file, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ImageRejected, match="uploaded image: .* over the 0 MB limit"):
        open_image(b"\xff" * 2000, LIMIT)


def test_zeros_under_the_byte_limit_are_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "zeros.png"
    with path.open("wb") as handle:
        handle.truncate(100 * 2**20)
    with pytest.raises(ImageRejected, match=r"zeros.png: not an image Loupe can read \(unknown format"):
        read_image(path, LIMIT)


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)  # nothing ever writes to it: opening it for reading would block for ever
    return path


def _socket(tmp_path: Path) -> Path:
    path = tmp_path / "socket.png"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and Unix sockets")
@pytest.mark.parametrize("make", [_fifo, _socket, lambda _: Path("/dev/zero")], ids=["fifo", "socket", "device"])
def test_fifo_socket_and_device_are_refused_without_blocking(tmp_path: Path, make) -> None:
    path = make(tmp_path)
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: outcome.append(pytest.raises(ImageRejected, read_image, path, LIMIT)),
                              daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "read_image blocked"
    assert "not a regular file" in str(outcome[0].value) and path.name in str(outcome[0].value)


def test_default_pixel_limit_comes_from_the_memory_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().max_pixels == DECODE_MEMORY_BUDGET // DECODE_BYTES_PER_PIXEL == 107_374_182
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOUPE_CONFIG", raising=False)
    monkeypatch.setenv("LOUPE_MAX_PIXELS", "300000000")
    assert load_settings().max_pixels == 300_000_000


def test_large_jpeg_is_decoded_reduced_and_counted_at_that_size(tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    path.write_bytes(_jpeg_bytes(Image.new("RGB", (4096, 4096), (200, 30, 30))))  # 16.8 MP, drafts to 1/2
    image = read_image(path, 5_000_000)
    assert (image.width, image.height) == (4096, 4096) and image.image.size == (2048, 2048)
    assert image.image.getpixel((100, 100))[0] > 180
    with pytest.raises(ImageRejected, match=r"4096x4096 = 17 megapixels \(2048x2048 when decoded at 1/2\), over "
                                            r"the 4 megapixels limit"):
        read_image(path, 4_000_000)
    progressive = tmp_path / "progressive.jpg"
    progressive.write_bytes(_jpeg_bytes(Image.new("RGB", (4096, 4096), (200, 30, 30)), progressive=True))
    with pytest.raises(ImageRejected, match=r"17 megapixels \(a progressive JPEG, decoded whole"):
        read_image(progressive, 5_000_000)  # libjpeg holds a progressive JPEG's coefficients at full size
    assert read_image(progressive, 17_000_000).image.size == (2048, 2048)


def test_pillow_guard_is_neither_changed_nor_in_the_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = Image.MAX_IMAGE_PIXELS
    path = tmp_path / "large.jpg"
    path.write_bytes(_jpeg_bytes(Image.new("RGB", (4096, 4096), (20, 30, 200))))
    assert read_image(path, LIMIT).image.size == (2048, 2048) and Image.MAX_IMAGE_PIXELS == before
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # Pillow now refuses at open over 2 MP
    assert read_image(path, 5_000_000).image.size == (2048, 2048)  # a JPEG that decodes small still passes
    png = _save(Image.new("RGB", (3000, 1000), (20, 30, 200)), tmp_path / "wide.png")
    assert read_image(png, 5_000_000).image.size == (2048, 683)  # and so does anything under Loupe's limit
    with pytest.raises(ImageRejected, match=r"wide.png: 3000x1000 = 3 megapixels, over the 2 megapixels limit"):
        read_image(png, 2_000_000)


def _grey_levels(image: ImageFile) -> tuple[int, int]:
    pixels = np.asarray(image.image)
    assert image.image.mode == "RGB" and pixels.shape[2] == 3
    return int(pixels.min()), int(pixels.max())


def test_16_bit_grey_keeps_its_levels(tmp_path: Path) -> None:
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    png = _save(Image.fromarray(ramp), tmp_path / "scan16.png")
    assert Image.open(png).mode == "I;16"
    low, high = _grey_levels(read_image(png, LIMIT))
    assert low == 0 and high == 255
    assert read_image(png, LIMIT).image.getpixel((0, 32)) == ((32 * 64 * 16) >> 8,) * 3  # not clipped to white
    big_endian = Image.frombuffer("I;16B", (64, 64), ramp.astype(">u2").tobytes())
    tiff = _save(big_endian, tmp_path / "scan16.tif")
    assert Image.open(tiff).mode == "I;16B" and _grey_levels(read_image(tiff, LIMIT)) == (0, 255)


@pytest.mark.parametrize("values", [
    np.linspace(-5000, 90000, 64 * 64).astype(np.int32),  # mode I
    np.linspace(0, 1, 64 * 64).astype(np.float32),  # mode F, 0..1
    np.where(np.arange(64 * 64) % 7 == 0, np.nan, np.linspace(-2, 3, 64 * 64)).astype(np.float32),  # F with NaN
], ids=["I", "F", "F-with-NaN"])
def test_32_bit_integer_and_float_images_are_stretched(tmp_path: Path, values: np.ndarray) -> None:
    path = _save(Image.fromarray(values.reshape(64, 64)), tmp_path / "data.tif")
    low, high = _grey_levels(read_image(path, LIMIT))
    assert low <= 5 and high >= 250


@pytest.mark.parametrize("name, make, expected", [
    ("cmyk.jpg", lambda: Image.new("CMYK", (32, 32), (0, 255, 255, 0)), (255, 0, 0)),
    ("grey.png", lambda: Image.new("L", (32, 32), 90), (90, 90, 90)),
    ("palette.png", lambda: Image.new("RGB", (32, 32), (30, 160, 40)).quantize(4), (30, 160, 40)),
    ("palette.gif", lambda: Image.new("RGB", (32, 32), (30, 40, 160)).quantize(4), (30, 40, 160)),
    ("half_transparent.png", lambda: Image.new("LA", (32, 32), (0, 128)), (127, 127, 127)),
    ("rgba.webp", lambda: Image.new("RGBA", (32, 32), (200, 0, 0, 255)), (200, 0, 0)),
], ids=lambda value: value if isinstance(value, str) else "")
def test_unusual_modes_give_the_right_colour(tmp_path: Path, name: str, make, expected: tuple) -> None:
    path = _save(make(), tmp_path / name, **({"lossless": True} if name.endswith(".webp") else {}))
    pixel = read_image(path, LIMIT).image.getpixel((16, 16))
    assert all(abs(a - b) <= 8 for a, b in zip(pixel, expected)), pixel


def test_palette_transparency_lands_on_white_and_one_bit_keeps_black_and_white(tmp_path: Path) -> None:
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([10, 20, 200] + [250, 0, 0] * 255)
    palette.paste(1, (0, 0, 16, 32))  # left half index 1 (red), declared transparent below
    image = read_image(_save(palette, tmp_path / "logo.png", transparency=1), LIMIT).image
    assert image.getpixel((4, 4)) == (255, 255, 255) and image.getpixel((24, 4)) == (10, 20, 200)
    checker = Image.fromarray(np.indices((32, 32)).sum(axis=0) % 2 == 0)
    assert checker.mode == "1" and _grey_levels(read_image(_save(checker, tmp_path / "bits.png"), LIMIT)) == (0, 255)


@pytest.mark.parametrize("orientation", [
    (2, b"abc\x00"), (2, b"6x\x00"), (3, struct.pack("<H", 9)), (3, struct.pack("<H", 0)),
    (5, struct.pack("<II", 6, 1)), (7, b"\x06"), (4, struct.pack("<I", 2**31)),
], ids=["text", "6x", "9", "0", "rational", "undefined", "huge"])
def test_invalid_exif_orientation_means_no_rotation(tmp_path: Path, orientation: tuple[int, bytes]) -> None:
    exif = exif_block((274, *orientation), (271, 2, b"Canon\x00"))
    path = _save(Image.new("RGB", (120, 60), (0, 128, 0)), tmp_path / "odd.jpg", exif=exif)
    image = read_image(path, LIMIT)
    assert image.orientation is None and (image.width, image.height) == (120, 60) == image.image.size
    assert image.camera == "Canon"


def test_garbage_exif_fields_are_treated_as_absent(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[271], exif[272] = b"\xff\xfe\x00 not text", b"Pixel 9\x00\x00junk"  # Make not UTF-8, Model NUL-ended
    exif[306] = "2021:03:04 05:06:07"  # DateTime, the fall-back
    exif.get_ifd(0x8769)[36867] = "2019:13:45 99:99:99"  # DateTimeOriginal that is no date
    image = read_image(_save(Image.new("RGB", (40, 30)), tmp_path / "odd.jpg", exif=exif), LIMIT)
    assert image.camera == "Pixel 9" and image.taken_at == "2021-03-04T05:06:07"
    garbage = [b"Exif\x00\x00" + b"II*\x00\xff\xff\xff\x7f" + bytes(range(256)) * 4,  # IFD offset past the end
               b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x01" * 64,  # 65535 entries, 5 present
               b"Exif\x00\x00garbage"]
    for number, block in enumerate(garbage):
        image = read_image(_save(Image.new("RGB", (40, 30), (9, 9, 9)), tmp_path / f"bad{number}.jpg", exif=block),
                           LIMIT)
        assert image.image.size == (40, 30) and image.orientation is None and image.taken_at is None


def test_orientation_is_applied_once_for_tiff(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[274] = 6
    picture = Image.new("RGB", (120, 60), (0, 128, 0))
    for compression in (None, "tiff_lzw"):  # Pillow's own decoder and libtiff
        image = read_image(_save(picture, tmp_path / f"{compression}.tif", exif=exif, compression=compression),
                           LIMIT)
        assert (image.width, image.height) == (60, 120) == image.image.size


@pytest.mark.parametrize("size", [(1, 1), (1, 1000), (2, 1000), (1000, 1), (63, 5000), (40, 40)])
def test_tiny_images_index_without_local_features(tmp_path: Path, size: tuple[int, int]) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = read_image(_save(Image.fromarray(noise), tmp_path / "tiny.png"), LIMIT)
    features = extract_features(image.image)
    assert features.keypoints.shape == (0, 2) and features.descriptors.shape == (0, 32)
    assert count_inliers(features, features) == 0
    thumbnail = Image.open(io.BytesIO(image.thumbnail_jpeg()))
    assert thumbnail.format == "JPEG" and min(thumbnail.size) >= 1


def test_local_features_never_fail_on_small_sides() -> None:
    rng = np.random.default_rng(1)
    for width in (1, 2, 3, 5, 9, 31, 62, 63, 64, 100):
        for height in (1, 2, 63, 64, 700):
            features = extract_features(Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)))
            assert len(features.keypoints) == len(features.descriptors)
    assert len(extract_features(Image.fromarray(rng.integers(0, 256, (128, 128), dtype=np.uint8))).keypoints) > 0


def _animated(frame_count: int, fmt: str) -> bytes:
    frames = [Image.new("RGB", (16, 16), (255, 0, 0) if i == 0 else (0, 0, 255)) for i in range(frame_count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=10)
    return buffer.getvalue()


@pytest.mark.parametrize("name, fmt", [("many.gif", "GIF"), ("many.png", "PNG"), ("many.webp", "WEBP"),
                                       ("pages.tif", "TIFF")])
def test_many_frames_only_the_first_is_decoded(tmp_path: Path, name: str, fmt: str) -> None:
    path = tmp_path / name
    path.write_bytes(_animated(300, fmt))
    start = time.perf_counter()
    red, green, blue = read_image(path, LIMIT).image.getpixel((8, 8))
    assert red > 200 and blue < 60 and time.perf_counter() - start < 1.0


def _broken_files() -> dict[str, bytes]:
    photo = _jpeg_bytes(Image.new("RGB", (64, 48), (200, 100, 50)))
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 100, 50)).save(png, "PNG")
    gif_header = b"GIF89a" + b"\x10\x00\x10\x00\x00\x00\x00"  # 16x16 screen, no colour table
    return {
        "half.jpg": photo[: len(photo) // 2],
        "header_only.png": png.getvalue()[:33],  # signature and IHDR, then nothing
        "no_pixels.png": png.getvalue()[:-30],  # IDAT cut, no IEND
        "notes.png": b"shopping list: milk, bread\n",
        "no_frames.gif": gif_header + b";",
        "broken_frame.gif": gif_header + b",\x00\x00\x00\x00\x10\x00\x10\x00\x00\x08\x05\xff\xff\xff\xff\xff\x00;",
        "huge_frame.gif": gif_header + b",\x00\x00\x00\x00\xff\xff\xff\xff\x00\x02\x02\x44\x01\x00;",
        "webp_cut.webp": b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + b"\x00" * 8,
        "tiff_no_ifd.tif": b"II*\x00\xff\xff\x00\x00",
        "bmp_bad.bmp": b"BM" + b"\x00" * 12 + b"\x28\x00\x00\x00" + b"\xff" * 36,
        "eps_renamed.jpg": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
    }


@pytest.mark.parametrize("name", sorted(_broken_files()))
def test_broken_files_are_a_one_line_rejection(tmp_path: Path, name: str) -> None:
    data = _broken_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    for call in (lambda: read_image(path, LIMIT), lambda: decode_image_bytes(data, path, LIMIT)):
        with pytest.raises(ImageRejected) as error:
            call()
        assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_truncated_or_flipped_bytes_decode_or_are_rejected(tmp_path: Path) -> None:
    """Every cut and every flipped byte of a small file of each format: a picture or ImageRejected, nothing else."""
    rng = np.random.default_rng(2)
    picture = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[274], exif[271] = 6, "Make"
    for fmt, options in (("JPEG", {"exif": exif}), ("PNG", {"exif": exif}), ("GIF", {}), ("TIFF", {}),
                         ("WEBP", {}), ("BMP", {})):
        buffer = io.BytesIO()
        picture.save(buffer, fmt, **options)
        data = buffer.getvalue()
        variants = [data[:cut] for cut in range(1, len(data), max(1, len(data) // 40))]
        for position in rng.integers(0, len(data), 40):
            flipped = bytearray(data)
            flipped[position] ^= 0xFF
            variants.append(bytes(flipped))
        for variant in variants:
            try:
                assert decode_image_bytes(variant, tmp_path / "x", LIMIT).image.mode == "RGB"
            except ImageRejected as error:
                assert "\n" not in str(error)


def test_out_of_memory_while_decoding_is_a_rejection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(Image.new("RGB", (32, 32)), tmp_path / "fine.png")

    def no_memory(self: Image.Image) -> None:
        raise MemoryError

    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", no_memory)
    with pytest.raises(ImageRejected, match="fine.png: too large to decode in the memory available"):
        read_image(path, LIMIT)


def test_file_name_with_a_newline_still_gives_one_line(tmp_path: Path) -> None:
    path = tmp_path / "two\nlines.png"
    path.write_text("not an image", encoding="utf-8")
    with pytest.raises(ImageRejected, match="not an image") as error:
        read_image(path, LIMIT)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["copy.jpg", "lzw.tif"])
def test_hashes_stream_the_file_and_match_the_bytes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".jpg"):
        path.write_bytes(holidays_files(1)[0].read_bytes())
    else:  # decoded by libtiff, which reads the file descriptor itself
        Image.open(holidays_files(1)[0]).save(path, compression="tiff_lzw")
    data = path.read_bytes()
    from_file, from_bytes = read_image(path, LIMIT), decode_image_bytes(data, path, LIMIT)
    assert from_file.sha256 == from_bytes.sha256 == hashlib.sha256(data).hexdigest()
    assert from_file.pixel_sha256 == from_bytes.pixel_sha256 and from_file.file_size == len(data)
    assert from_file.mtime == path.stat().st_mtime
