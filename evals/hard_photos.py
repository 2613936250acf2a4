"""Hard phone photos: the SMVS DVD-cover photos made small, tilted, glared and covered, scored per condition.

    python -m loupe.evals.hard_photos [--datasets ../shared/datasets] [--cameras canon,droid,e63,palm] [--fresh]

The README's SMVS figure is measured on covers the pipeline was tuned on, in photos where the cover fills
most of the frame. Photos people take are harder, so this builds, from each SMVS phone photo, one query per
condition (deterministic: the random numbers are seeded by the photo's name):

* ``photo``: the phone photo as it is;
* ``small``: the whole photo shrunk to 15-30% of a Flickr8k frame (so the cover fills a tenth or less),
  turned up to 15 degrees;
* ``tilted``: seen 40-60 degrees from the side (a perspective warp over a Flickr8k frame);
* ``glare``: a bright glare spot and motion blur;
* ``covered``: a piece of another photo over 25-35% of it from one edge (a hand, a mug, another cover);
* ``all``: small, tilted and glared at once;
* ``absent``: Flickr8k photos whose subject is not in the collection, where the right answer is nothing.

The collection is the 50 clean covers plus the Holidays photos as distractors. Covers 001-025 are half
A and 026-050 half B: a threshold chosen on one half is reported on the other (and swapped), so that
over-fitting shows as a gap; the thresholds were chosen on the Canon and Droid photos, so ``--cameras e63,palm``
is a set that choosing never saw. The first look alone (today's pipeline) runs beside the full search in one
process, on the same index.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from loupe.evals.harness import indexed_toolbox
from loupe.evals.metrics import average_precision, percentile
from loupe.evals.paths import DATASETS, RESULTS
from loupe.base.config import load_settings
from loupe.tools.boundary import ChosenFile
from loupe.tools.models import Models
from loupe.tools.process import configure_process
from loupe.tools.records import MatchLabel

CONDITIONS = ("photo", "small", "tilted", "glare", "covered", "all")
FRAME_SIDE = 800  # the SMVS photos' own long side
ABSENT_QUERIES = 100
COLLECTION = ("smvs_dvd/reference", "holidays")
CAMERAS = ("canon", "droid", "e63", "palm")


@dataclass(frozen=True)
class HardQuery:
    id: str
    image: Path
    condition: str
    half: str  # "A" (covers 001-025), "B" (026-050), or "-" for absent queries
    relevant: str  # dataset-relative path of the cover; "" when absent


def _frame(background: Path, size: tuple[int, int]) -> Image.Image:
    return Image.open(background).convert("RGB").resize(size, Image.Resampling.BILINEAR)


def small(photo: Image.Image, background: Path, rng: random.Random) -> Image.Image:
    frame = _frame(background, photo.size)
    scale = math.sqrt(rng.uniform(0.15, 0.30))
    shrunk = photo.resize((int(photo.width * scale), int(photo.height * scale)), Image.Resampling.LANCZOS)
    turned = shrunk.convert("RGBA").rotate(rng.uniform(-15, 15), expand=True, resample=Image.Resampling.BICUBIC)
    x = rng.randint(0, frame.width - turned.width)
    y = rng.randint(0, frame.height - turned.height)
    frame.paste(turned, (x, y), turned)
    return frame


def tilted(photo: Image.Image, background: Path, rng: random.Random) -> Image.Image:
    """A perspective warp as if the camera stood 40-60 degrees to one side of the cover."""
    width, height = photo.size
    angle = math.radians(rng.uniform(40, 60))
    squeeze = (1 - math.cos(angle)) / 2  # how much the far edge moves in, as a share of the width
    shrink = 0.5 * math.sin(angle) * 0.5  # the far edge's height lost at each end, as a share of the height
    near_left = rng.random() < 0.5
    far = [(width * (1 - squeeze), height * shrink), (width * (1 - squeeze), height * (1 - shrink))]
    if near_left:
        target = [(0, 0), far[0], far[1], (0, height)]
    else:
        target = [(width * squeeze, height * shrink), (width, 0), (width, height),
                  (width * squeeze, height * (1 - shrink))]
    source = np.float32([(0, 0), (width, 0), (width, height), (0, height)])
    matrix = cv2.getPerspectiveTransform(source, np.float32(target))
    warped = cv2.warpPerspective(np.asarray(photo), matrix, (width, height))
    mask = cv2.warpPerspective(np.full((height, width), 255, np.uint8), matrix, (width, height))
    frame = _frame(background, photo.size)
    frame.paste(Image.fromarray(warped), (0, 0), Image.fromarray(mask))
    return frame


def glare(photo: Image.Image, rng: random.Random) -> Image.Image:
    """A saturating bright spot (a lamp on glossy plastic) and a motion blur of 7-15 pixels."""
    pixels = np.asarray(photo, np.float32)
    height, width = pixels.shape[:2]
    cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    sigma = rng.uniform(0.08, 0.15) * min(width, height)
    ys, xs = np.mgrid[0:height, 0:width]
    spot = np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2)) * rng.uniform(180, 255)
    pixels = np.clip(pixels + spot[..., None], 0, 255).astype(np.uint8)
    length = rng.randint(7, 15)
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1 / length
    turn = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, turn, (length, length))
    kernel /= kernel.sum()
    return Image.fromarray(cv2.filter2D(pixels, -1, kernel))


def covered(photo: Image.Image, occluder: Path, rng: random.Random) -> Image.Image:
    """A piece of another photo, with rounded corners, over 25-35% of the frame from one edge."""
    width, height = photo.size
    share = rng.uniform(0.25, 0.35)
    side = rng.choice(("left", "right", "top", "bottom"))
    box_w, box_h = (int(width * share), height) if side in ("left", "right") else (width, int(height * share))
    piece = _frame(occluder, (box_w, box_h))
    mask = Image.new("L", (box_w, box_h), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, box_w - 1, box_h - 1), radius=min(box_w, box_h) // 3, fill=255)
    x = {"left": 0, "right": width - box_w}.get(side, 0)
    y = {"top": 0, "bottom": height - box_h}.get(side, 0)
    result = photo.copy()
    result.paste(piece, (x, y), mask.filter(ImageFilter.GaussianBlur(3)))
    return result


def make(condition: str, photo: Image.Image, frames: list[Path], rng: random.Random) -> Image.Image:
    background = rng.choice(frames)
    if condition == "photo":
        return photo
    if condition == "small":
        return small(photo, background, rng)
    if condition == "tilted":
        return tilted(photo, background, rng)
    if condition == "glare":
        return glare(photo, rng)
    if condition == "covered":
        return covered(photo, background, rng)
    return small(glare(tilted(photo, background, rng), rng), rng.choice(frames), rng)


def build(datasets: Path, folder: Path, cameras: tuple[str, ...] = CAMERAS) -> list[HardQuery]:
    """Write every query image under ``folder`` (skipping those already there) and return the queries."""
    flickr = sorted((datasets / "flickr8k" / "images").glob("*.jpg"))
    frames, absent = flickr[:-ABSENT_QUERIES], flickr[-ABSENT_QUERIES:]
    truth = json.loads((datasets / "smvs_dvd" / "groundtruth.json").read_text())
    by_cover: dict[str, list[dict]] = {}
    for case in truth:
        by_cover.setdefault(Path(case["query"]).stem, []).append(case)
    queries = []
    for cover, cases in sorted(by_cover.items()):
        half = "A" if int(cover) <= 25 else "B"
        for case in sorted(cases, key=lambda c: c["query"]):
            source = datasets / "smvs_dvd" / case["query"]
            camera = Path(case["query"]).parent.name
            if camera not in cameras:
                continue
            for condition in CONDITIONS:
                target = folder / condition / f"{camera}-{cover}.jpg"
                if not target.is_file():
                    rng = random.Random(f"{condition}/{case['query']}")
                    photo = Image.open(source).convert("RGB")
                    photo.thumbnail((FRAME_SIDE, FRAME_SIDE))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    make(condition, photo, frames, rng).save(target, quality=90)
                queries.append(HardQuery(f"{condition}/{camera}-{cover}", target, condition, half,
                                         f"smvs_dvd/{case['relevant'][0]}"))
    queries += [HardQuery(f"absent/{path.stem}", path, "absent", "-", "") for path in absent]
    return queries


def score(runs: list[tuple[HardQuery, list[tuple[str, str]], float]]) -> dict:
    """top-1, mAP and how often nothing (or only a possible match) was shown, for one group of queries."""
    present = [(q, ranked) for q, ranked, _ in runs if q.relevant]
    seconds = [s for _, _, s in runs]
    result = {"queries": len(runs), "p50_ms": percentile(seconds, 50) * 1000, "p95_ms": percentile(seconds, 95) * 1000}
    if present:
        result["top1"] = sum(bool(r) and r[0][0] == q.relevant for q, r in present) / len(present)
        precisions = [average_precision([p for p, _ in r], {q.relevant}) or 0.0 for q, r in present]
        result["mAP"] = sum(precisions) / len(present)
        result["nothing"] = sum(not r for _, r in present) / len(present)
        possible = [(q, r) for q, r in present if r and r[0][1] == MatchLabel.POSSIBLE]
        result["possible"] = len(possible) / len(present)
        result["possible_right"] = (sum(r[0][0] == q.relevant for q, r in possible) / len(possible)
                                    if possible else None)
    else:
        result["confident_shown"] = sum(bool(r) and r[0][1] != MatchLabel.POSSIBLE for _, r, _ in runs) / len(runs)
        result["possible_shown"] = sum(bool(r) and r[0][1] == MatchLabel.POSSIBLE for _, r, _ in runs) / len(runs)
    return result


def run(toolbox, queries: list[HardQuery], datasets: Path, second_look: bool) -> list[tuple]:
    runs = []
    for query in queries:
        result = toolbox.image_search(image=ChosenFile(query.image), k=10, second_look=second_look)
        ranked = [(Path(r.path).resolve().relative_to(datasets.resolve()).as_posix(), r.match) for r in result.records]
        runs.append((query, ranked, result.seconds))
    return runs


def report(name: str, runs: list[tuple]) -> dict:
    groups: dict[str, dict] = {}
    for condition in (*CONDITIONS, "absent"):
        for half in ("A", "B") if condition != "absent" else ("-",):
            chosen = [r for r in runs if r[0].condition == condition and r[0].half == half]
            if chosen:
                groups[f"{condition}/{half}"] = score(chosen)
    for half in ("A", "B"):
        groups[f"hard/{half}"] = score([r for r in runs if r[0].half == half and r[0].condition != "photo"])
    print(f"\n{name}")
    print("| group | queries | top-1 | mAP | nothing | possible (right) | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for group, s in groups.items():
        if "top1" in s:
            right = "-" if s["possible_right"] is None else f"{s['possible_right']:.2f}"
            print(f"| {group} | {s['queries']} | {s['top1']:.3f} | {s['mAP']:.3f} | {s['nothing']:.3f} | "
                  f"{s['possible']:.3f} ({right}) | {s['p50_ms']:.0f} | {s['p95_ms']:.0f} |")
        else:
            print(f"| {group} | {s['queries']} | shown: {s['confident_shown']:.3f} | | | {s['possible_shown']:.3f} | "
                  f"{s['p50_ms']:.0f} | {s['p95_ms']:.0f} |")
    return groups


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--cameras", default=",".join(CAMERAS), help="whose phone photos (SMVS has four cameras)")
    parser.add_argument("--fresh", action="store_true", help="write the query images again")
    args = parser.parse_args()
    folder = RESULTS / "hard_photos"
    if args.fresh:
        for old in folder.glob("*/*.jpg"):
            old.unlink()
    queries = build(args.datasets, folder, tuple(args.cameras.split(",")))
    settings = load_settings()
    models = Models(settings)
    toolbox = indexed_toolbox(settings, models, "hard_photos", [args.datasets / c for c in COLLECTION],
                              RESULTS / "index" / "hard_photos")
    results = {"first look only (today)": report("first look only (today)", run(toolbox, queries, args.datasets,
                                                                                    second_look=False)),
               "loupe": report("loupe", run(toolbox, queries, args.datasets, second_look=True))}
    (RESULTS / "hard_photos.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
