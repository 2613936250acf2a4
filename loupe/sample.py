"""A small sample collection, built from files that installed packages ship.

``loupe demo`` needs real pictures on a machine with no internet and no
datasets: scikit-learn ships two photos and matplotlib one, and printed text
(receipts, a price tag, a sign) is rendered with matplotlib's DejaVu fonts.
Copies that are resized, recompressed, cropped and duplicated show each match
label; the query photos are warped, blurred "phone photos" that are not in the
collection.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont


def _package_dir(name: str) -> Path:
    """Where an installed package's files lie, found without importing it: importing scikit-learn alone costs
    the demo's process 175 MB for good, and only its two sample photos are wanted."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the demo collection reads files that {name} ships: `pip install {name}`")
    return Path(next(iter(spec.submodule_search_locations)))


MATPLOTLIB_DATA = _package_dir("matplotlib") / "mpl-data"
FONT_DIR = MATPLOTLIB_DATA / "fonts" / "ttf"

RECEIPTS = [
    ("receipt_bookshop.png", "CORNER BOOKSHOP", "12 Harbour Street", [("Paperback novel", "12.90"), ("Notebook", "4.50"), ("Bookmark", "1.20")], "18.60", "2019-03-14"),
    ("receipt_cafe.png", "BLUE DOOR CAFE", "3 Station Road", [("Cappuccino", "3.20"), ("Croissant", "2.40")], "5.60", "2021-07-02"),
    ("receipt_hardware.png", "MILLER HARDWARE", "88 Mill Lane", [("Hammer", "15.00"), ("Nails 200", "3.75"), ("Tape", "2.25")], "21.00", "2019-11-23"),
]


def package_photos() -> dict[str, Path]:
    """Real photos that ship inside installed packages (scikit-learn's sample images, matplotlib's portrait)."""
    images = _package_dir("sklearn") / "datasets" / "images"
    return {
        "temple.jpg": images / "china.jpg",
        "daisy.jpg": images / "flower.jpg",
        "grace_hopper.jpg": MATPLOTLIB_DATA / "sample_data" / "grace_hopper.jpg",
    }


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), size)


def render_receipt(shop: str, address: str, items: list[tuple[str, str]], total: str, date: str) -> Image.Image:
    image = Image.new("RGB", (520, 300 + 42 * len(items)), (250, 248, 240))
    draw = ImageDraw.Draw(image)
    draw.text((260, 30), shop, font=_font(34, bold=True), fill="black", anchor="mt")
    draw.text((260, 80), address, font=_font(22), fill="black", anchor="mt")
    draw.text((40, 125), f"Date: {date}", font=_font(22), fill="black")
    y = 175
    for name, price in items:
        draw.text((40, y), name, font=_font(24), fill="black")
        draw.text((480, y), price, font=_font(24), fill="black", anchor="ra")
        y += 42
    draw.line((40, y + 5, 480, y + 5), fill="black", width=2)
    draw.text((40, y + 20), "TOTAL", font=_font(28, bold=True), fill="black")
    draw.text((480, y + 20), total, font=_font(28, bold=True), fill="black", anchor="ra")
    return image


def render_label(lines: list[str], background: tuple[int, int, int], size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    y = size[1] // (len(lines) + 1)
    for i, line in enumerate(lines):
        draw.text((size[0] // 2, y * (i + 1)), line, font=_font(48 if i == 0 else 34, bold=i == 0),
                  fill="white" if sum(background) < 380 else "black", anchor="mm")
    return image


def phone_photo(image: Image.Image, seed: int) -> Image.Image:
    """A re-photographed look: perspective tilt, a table around it, blur and sensor noise."""
    rng = np.random.default_rng(seed)
    w, h = image.size
    canvas = Image.new("RGB", (int(w * 1.3), int(h * 1.3)), (120, 95, 70))
    tilt = [int(v) for v in rng.integers(0, int(min(w, h) * 0.06), size=8)]
    quad = (tilt[0], tilt[1], tilt[2], h - tilt[3], w - tilt[4], h - tilt[5], w - tilt[6], tilt[7])
    warped = image.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)
    canvas.paste(warped, (int(w * 0.15), int(h * 0.12)))
    canvas = canvas.filter(ImageFilter.GaussianBlur(1.2))
    noisy = np.asarray(canvas, dtype=np.float32) + rng.normal(0, 6, size=(canvas.height, canvas.width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def build_sample(folder: Path) -> tuple[Path, Path, dict[str, Path]]:
    """Write the collection, its metadata CSV and the query images; return (collection, metadata, queries)."""
    if folder.exists():
        shutil.rmtree(folder)
    collection = folder / "collection"
    queries = folder / "queries"
    for sub in ("photos", "documents", "copies"):
        (collection / sub).mkdir(parents=True)
    queries.mkdir()

    photos = package_photos()
    for name, source in photos.items():
        shutil.copyfile(source, collection / "photos" / name)
    for name, shop, address, items, total, date in RECEIPTS:
        render_receipt(shop, address, items, total, date).save(collection / "documents" / name)
    render_label(["SALE", "Organic apples", "$4.99 / kg"], (200, 30, 30), (640, 400)).save(
        collection / "documents" / "price_tag.png")
    render_label(["PLATFORM 2", "Trains to the airport"], (20, 60, 140), (800, 300)).save(
        collection / "documents" / "station_sign.png")

    temple = Image.open(photos["temple.jpg"]).convert("RGB")
    temple.resize((temple.width // 2, temple.height // 2)).save(collection / "copies" / "temple_small.jpg", quality=90)
    _jpeg(Image.open(photos["grace_hopper.jpg"]).convert("RGB"), 25).save(
        collection / "copies" / "grace_hopper_recompressed.jpg", quality=25)
    daisy = Image.open(photos["daisy.jpg"]).convert("RGB")
    daisy.crop((120, 0, daisy.width - 60, daisy.height)).save(collection / "copies" / "daisy_cropped.jpg")
    shutil.copyfile(photos["daisy.jpg"], collection / "copies" / "daisy_copy.jpg")

    phone_photo(temple, seed=1).save(queries / "temple_phone_photo.jpg", quality=85)
    phone_photo(Image.open(collection / "documents" / "receipt_bookshop.png").convert("RGB"), seed=2).save(
        queries / "receipt_phone_photo.jpg", quality=85)

    metadata = folder / "metadata.csv"
    with metadata.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "title", "description", "price", "date"])
        writer.writerow(["temple.jpg", "Temple roofs", "A temple among trees in China", "", "2019-06-01"])
        writer.writerow(["grace_hopper.jpg", "Grace Hopper", "Portrait of the computer scientist", "", "1984-01-01"])
        for name, shop, _, _, total, date in RECEIPTS:
            writer.writerow([name, f"Receipt from {shop.title()}", "Scanned receipt", total, date])
        writer.writerow(["price_tag.png", "Apple price tag", "Supermarket shelf label", "4.99", "2021-09-09"])
    return collection, metadata, {p.stem: p for p in sorted(queries.iterdir())}
