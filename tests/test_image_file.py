"""Reading image files: every supported format, EXIF date and orientation, transparency, hashes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loupe.errors import ImageRejected
from tests.conftest import holidays_files
from tools.image_file import hamming_distances, open_image, read_image

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
    with pytest.raises(ImageRejected, match=r": 25 megapixels, over the 10 megapixels limit"):
        read_image(path, 10_000_000)  # caught by PIL's guard at twice the limit
    with pytest.raises(ImageRejected, match="empty file"):
        open_image(b"", LIMIT)
    with pytest.raises(ImageRejected, match="no image given"):
        open_image(None, LIMIT)
    with pytest.raises(ImageRejected, match="is a folder"):
        read_image(tmp_path, LIMIT)
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buffer, "PNG")
    assert open_image(buffer.getvalue(), LIMIT).mtime == 0.0
