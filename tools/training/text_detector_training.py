"""Train a YOLO text detector (``loupe train-detector``) on labelled and synthetic text.

Sources:

* labelled datasets in the ICDAR layout (``images/`` plus ``gt/gt_<stem>.txt``
  or ``box/<stem>.csv``, see text_boxes.py), e.g. ICDAR 2015 and SROIE. The
  last part of each (``held_out``) goes to validation and is never trained on,
  so the detection recall ``evals/ocr_eval.py`` reports on it is honest;
* synthetic pictures: words, prices and dates rendered in several fonts on
  photo backgrounds or plain paper, then blurred and recompressed, because
  the text users photograph is often out of focus.

The quads become axis-aligned YOLO boxes of one class, ``text``. Labelled
pictures are cut into squares of the training size at their own resolution
rather than shrunk whole: shrinking ICDAR's 1280 px street scenes to 320 px
leaves words a median 8 px tall, and a first run learnt nothing. The squares
keep the text at the scale the detector later sees (it detects at the
picture's own size, see text_detection.py). Training starts from ``yolov8n.yaml`` (random
weights: none can be downloaded here) or from a user's weights file, and runs
offline on CPU or a GPU.
"""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from loupe.base.errors import LoupeError
from loupe.tools.image_file import SUPPORTED_SUFFIXES, read_image
from loupe.tools.models.text_detection import load_yolo_class
from loupe.tools.training.text_boxes import HELD_OUT_SHARE, held_out, label_file_for, read_text_boxes, share_inside

TILES_PER_PICTURE = 4  # squares with text kept per labelled picture: enough variety, a bounded epoch
MIN_SHARE_INSIDE = 0.5  # a box cut by a square's edge is kept (clipped) when at least this much is inside
WORDS = ("total cash change sale price receipt invoice tax open closed exit station platform street road coffee "
         "bakery market pharmacy hotel museum parking bus stop menu special offer discount street avenue "
         "welcome thank you please push pull entrance gate books music film").split()


@dataclass
class DetectorTrainingReport:
    train_images: int  # training examples: squares cut from labelled pictures, and synthetic pictures
    val_images: int
    boxes: int
    weights: Path
    metrics: dict


def yolo_label(box: tuple[float, float, float, float], width: int, height: int) -> str | None:
    """``0 cx cy w h`` normalised, or None for a box that is empty after clipping."""
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(width), box[2]), min(float(height), box[3])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return f"0 {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"


def square_windows(width: int, height: int, size: int) -> list[tuple[int, int, int, int]]:
    """Squares of ``size`` (smaller where the picture is) covering the picture, evenly overlapping at the edges."""
    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        count = math.ceil(length / size)
        return [round(i * (length - size) / (count - 1)) for i in range(count)]

    return [(x, y, min(x + size, width), min(y + size, height)) for y in starts(height) for x in starts(width)]


def boxes_in_window(boxes: list[tuple[float, ...]], window: tuple[int, int, int, int]) -> list[tuple[float, ...]]:
    """The boxes mostly inside ``window``, clipped to it, in the window's pixels."""
    left, top, right, bottom = window
    return [(max(x0, left) - left, max(y0, top) - top, min(x1, right) - left, min(y1, bottom) - top)
            for x0, y0, x1, y1 in boxes if share_inside((x0, y0, x1, y1), window) >= MIN_SHARE_INSIDE]


def _write_example(image: Image.Image, labels: list[str], folder: Path, split: str, stem: str) -> None:
    image.convert("RGB").save(folder / "images" / split / f"{stem}.jpg", quality=92)
    (folder / "labels" / split / f"{stem}.txt").write_text("\n".join(labels) + ("\n" if labels else ""))


def _fonts() -> list[Path]:
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(p for p in ttf.glob("DejaVu*.ttf") if "Display" not in p.name)


def _phrase(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.2:
        return f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
    if kind < 0.3:
        return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/20{rng.randint(10, 26)}"
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))).upper() if rng.random() < 0.4 else \
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))


def synthetic_example(rng: random.Random, backgrounds: list[Path], size: int,
                      max_pixels: int) -> tuple[Image.Image, list[str]]:
    """One ``size`` square picture of rendered text with its YOLO labels: blurred, sometimes on a photo."""
    if backgrounds and rng.random() < 0.7:
        picture = read_image(rng.choice(backgrounds), max_pixels).image.resize((size, size))
    else:
        shade = rng.randint(150, 255)
        picture = Image.new("RGB", (size, size), (shade, shade - rng.randint(0, 20), shade - rng.randint(0, 30)))
    draw = ImageDraw.Draw(picture)
    fonts = _fonts()
    labels, taken = [], []
    for _ in range(rng.randint(2, 9)):
        font = ImageFont.truetype(str(rng.choice(fonts)), rng.randint(12, max(13, min(64, size // 5))))
        text = _phrase(rng)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left >= size - 10 or bottom - top >= size - 10:
            continue
        x = rng.randint(5, size - (right - left) - 5)
        y = rng.randint(5, size - (bottom - top) - 5)
        box = (x + left, y + top, x + right, y + bottom)
        if any(not (box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3]) for b in taken):
            continue  # no overlapping words: each box holds exactly one line of text
        if rng.random() < 0.5:  # a plate behind the text, as on signs and labels
            plate = tuple(rng.randint(0, 255) for _ in range(3))
            draw.rectangle((box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4), fill=plate)
            ink = (0, 0, 0) if sum(plate) > 380 else (255, 255, 255)
        else:
            ink = tuple(rng.choice((rng.randint(0, 60), rng.randint(200, 255))) for _ in range(3))
        draw.text((x, y), text, font=font, fill=ink)
        taken.append(box)
        labels.append(yolo_label(box, size, size))
    blur = rng.choice((0, 0, 0.8, 1.5, 2.5))
    if blur:
        picture = picture.filter(ImageFilter.GaussianBlur(blur))
    return picture, [label for label in labels if label]


def prepare_dataset(labelled: list[Path], out: Path, *, size: int = 640, synthetic: int = 200,
                    backgrounds: Path | None = None, val_share: float = HELD_OUT_SHARE, max_pixels: int = 256_000_000,
                    seed: int = 0) -> tuple[Path, int, int, int]:
    """Write the YOLO dataset of ``size`` squares (images/, labels/, data.yaml); returns (yaml, train, val, boxes)."""
    for split in ("train", "val"):
        for kind in ("images", "labels"):
            folder = out / kind / split
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
    counts = {"train": 0, "val": 0}
    boxes = 0
    rng = random.Random(seed)
    for dataset in labelled:
        images = sorted(p for p in (dataset / "images").glob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
        if not images:
            raise LoupeError(f"{dataset} has no images/ folder with pictures (expected the ICDAR layout)")
        validation = held_out(images, val_share)
        for path in images:
            label_file = label_file_for(path)
            if label_file is None:
                continue
            image = read_image(path, max_pixels)  # boxes are in the original's pixels, before any downsizing
            scale = image.image.width / image.width
            text = [tuple(v * scale for v in b.box) for b in read_text_boxes(label_file)]
            windows = [(w, found) for w in square_windows(image.image.width, image.image.height, size)
                       if (found := boxes_in_window(text, w))]
            split = "val" if path in validation else "train"
            for number, (window, found) in enumerate(rng.sample(windows, min(TILES_PER_PICTURE, len(windows)))):
                width, height = window[2] - window[0], window[3] - window[1]
                labels = [label for box in found if (label := yolo_label(box, width, height))]
                _write_example(image.image.crop(window), labels, out, split, f"{dataset.name}-{path.stem}-{number}")
                counts[split] += 1
                boxes += len(labels)
    photos = sorted(p for p in backgrounds.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES) if backgrounds else []
    for number in range(synthetic):
        picture, labels = synthetic_example(rng, photos, size, max_pixels)
        _write_example(picture, labels, out, "train", f"synthetic-{number:05d}")
        counts["train"] += 1
        boxes += len(labels)
    if counts["train"] == 0 or counts["val"] == 0:
        raise LoupeError("the detector needs training and validation pictures: give labelled datasets "
                         f"(found {counts['train']} to train on, {counts['val']} to validate on)")
    data = out / "data.yaml"
    data.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n  0: text\n")
    return data, counts["train"], counts["val"], boxes


def train_text_detector(labelled: list[Path], out: Path, work: Path, *, model: str = "yolov8n.yaml",
                        synthetic: int = 200, backgrounds: Path | None = None, epochs: int = 30,
                        image_size: int = 640, batch_size: int = 8, device: str = "auto",
                        max_pixels: int = 256_000_000, progress: Callable[[str], None] = print) -> DetectorTrainingReport:
    """Build the dataset under ``work``, train, and copy the best weights to ``out``."""
    data, train_count, val_count, boxes = prepare_dataset(labelled, work / "dataset", size=image_size,
                                                          synthetic=synthetic, backgrounds=backgrounds,
                                                          max_pixels=max_pixels)
    progress(f"{train_count} training and {val_count} validation squares of {image_size} px, {boxes} text boxes")
    if not model.endswith(".yaml") and not Path(model).is_file():
        raise LoupeError(f"starting weights {model} do not exist: give a .pt file or a model .yaml such as yolov8n.yaml")
    import torch

    YOLO = load_yolo_class()  # noqa: N806 - the class, under its usual name
    if device == "auto":
        device = "0" if torch.cuda.is_available() else "cpu"
    detector = YOLO(model, task="detect")
    detector.train(data=str(data), epochs=epochs, imgsz=image_size, batch=batch_size, device=device, workers=0,
                   project=str(work / "runs"), name="text", exist_ok=True, plots=False, amp=device != "cpu",
                   single_cls=True, verbose=False, seed=0)
    best = Path(detector.trainer.best)
    if not best.is_file():
        best = Path(detector.trainer.last)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, out)
    metrics = {k: round(float(v), 4) for k, v in (detector.trainer.metrics or {}).items()}
    return DetectorTrainingReport(train_count, val_count, boxes, out, metrics)
