"""Geometric verification alone: today's ORB + RANSAC against RootSIFT + MAGSAC++ on the hard phone photos.

    python -m loupe.evals.verification_compare [--cameras e63,palm] [--conditions small,tilted,glare,all]
                                               [--limit N]

Issue 15 asks whether other local features or another robust estimator would verify the hard photos
(evals/hard_photos.py) better. hard_photos scores the whole search, where a miss may come from the first
look never ranking the cover; this isolates the verification stage. Each hard query is verified against
its true cover and a fixed set of wrong candidates: the 10 other covers and the 10 Holidays photos nearest
to the true cover by Loupe's stored image vectors in hard_photos' own index (evals/results/index/hard_photos,
built by that script), i.e. the pictures that look most like it. Methods:

* ``orb+ransac``: Loupe's second look as it runs today: ORB from the query at SECOND_LOOK_MAX_SIDE with
  SECOND_LOOK_KEYPOINTS, the candidates' stored ORB rows, tools/local_features.count_inliers;
* ``rootsift+magsac``: SIFT with RootSIFT descriptors at the same sizes and keypoint budgets (query 800 px /
  1000, candidate 640 px / 500), the same ratio test, cv2.findHomography with cv2.USAC_MAGSAC;
* ``orb+magsac``: today's ORB matches, verified with USAC_MAGSAC instead of RANSAC;
* ``rootsift+ransac``: the RootSIFT matches with today's RANSAC, so that the two changes are measured apart.

Pair times cover matching and estimation (the candidates' features are stored at indexing); the query's own
extraction is timed apart.

All three zero a count below image_search's COUNTED_INLIERS, as the second look does. The copy threshold
of each method is the lowest count no wrong candidate reaches on half A of the tuning cameras (canon,
droid), reported on half B, and swapped; those cameras are always run (with the same --limit) to choose
it, whichever cameras are reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from loupe.evals.hard_photos import HardQuery, build
from loupe.evals.paths import DATASETS, RESULTS
from loupe.store.image_table import ImageTable, vector_matrix
from loupe.tools.image_file import read_image
from loupe.tools.image_search import COUNTED_INLIERS
from loupe.tools.local_features import (
    FEATURE_MAX_SIDE,
    MAX_KEYPOINTS,
    RANSAC_REPROJECTION_PX,
    RATIO_TEST,
    SECOND_LOOK_KEYPOINTS,
    SECOND_LOOK_MAX_SIDE,
    LocalFeatures,
    count_inliers,
    extract_features,
)
from loupe.tools.process import configure_process

TUNING_CAMERAS = ("canon", "droid")
HELD_OUT_CAMERAS = ("e63", "palm")
WRONG_CANDIDATES = 10
MAX_PIXELS = 50_000_000  # the dataset images are at most 800 px; this only satisfies read_image's guard
# MAGSAC++ marginalises over noise scales up to this bound; the same 8 px as RANSAC keeps the comparison about
# the estimator, not about a tighter inlier band.
MAGSAC_THRESHOLD_PX = RANSAC_REPROJECTION_PX
METHODS = ("orb+ransac", "orb+magsac", "rootsift+ransac", "rootsift+magsac")


@dataclass(frozen=True)
class Features:
    """Keypoint coordinates and descriptors of one image, for either detector."""

    points: np.ndarray  # (n, 2) float32 pixels at the scale the image was described at
    descriptors: np.ndarray  # ORB: (n, 32) uint8; RootSIFT: (n, 128) float32


@dataclass
class Pair:
    """One query against one candidate under one method."""

    inliers: int
    ms: float


@dataclass
class Outcome:
    """One query under one method: the true cover's count, the best wrong one, and the pair timings."""

    query: HardQuery
    camera: str
    true_inliers: int
    wrong_inliers: int
    pair_ms: list[float]
    extract_ms: float


def rootsift(image: Image.Image, max_side: int, keypoints: int) -> Features:
    """SIFT at the same size and keypoint budget as Loupe's ORB, descriptors mapped to RootSIFT (L1-normalise,
    square root) so that Euclidean matching compares them by the Hellinger kernel, which matches better."""
    grey = image.convert("L")
    grey.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    found, descriptors = cv2.SIFT_create(nfeatures=keypoints).detectAndCompute(np.asarray(grey), None)
    if descriptors is None or not found:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    descriptors = np.sqrt(descriptors / (descriptors.sum(axis=1, keepdims=True) + 1e-7)).astype(np.float32)
    return Features(np.array([k.pt for k in found], np.float32), descriptors)


def orb(features: LocalFeatures) -> Features:
    return Features(features.keypoints.astype(np.float32), features.descriptors)


def inliers(query: Features, candidate: Features, norm: int, estimator: int) -> int:
    """Ratio-test matches that one homography (cv2.RANSAC or cv2.USAC_MAGSAC) explains, gated like
    count_inliers (0 below COUNTED_INLIERS, and no estimation when the matches are fewer than that)."""
    if min(len(query.descriptors), len(candidate.descriptors)) < COUNTED_INLIERS:
        return 0
    pairs = cv2.BFMatcher(norm).knnMatch(query.descriptors, candidate.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO_TEST * p[1].distance]
    if len(good) < COUNTED_INLIERS:
        return 0
    source = query.points[[m.queryIdx for m in good]]
    target = candidate.points[[m.trainIdx for m in good]]
    threshold = MAGSAC_THRESHOLD_PX if estimator == cv2.USAC_MAGSAC else RANSAC_REPROJECTION_PX
    _, mask = cv2.findHomography(source, target, estimator, threshold)
    inliers = int(mask.sum()) if mask is not None else 0
    return inliers if inliers >= COUNTED_INLIERS else 0


def timed(count: Callable[[], int]) -> Pair:
    start = time.perf_counter()
    inliers = count()
    return Pair(inliers, (time.perf_counter() - start) * 1000)


class Collection:
    """hard_photos' index: the stored ORB rows and image vectors, plus RootSIFT of the same files on demand."""

    def __init__(self, index_dir: Path) -> None:
        table = ImageTable.open(index_dir)
        rows = table.scan(["path", "image_vector", "orb_keypoints", "orb_descriptors"])
        self.paths = [Path(p).resolve() for p in rows.column("path").to_pylist()]
        vectors = vector_matrix(rows.column("image_vector"), rows.schema.field("image_vector").type.list_size)
        self.vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self.orb = [LocalFeatures.from_bytes(k, d) for k, d in zip(rows.column("orb_keypoints").to_pylist(),
                                                                   rows.column("orb_descriptors").to_pylist())]
        self._sift: dict[int, Features] = {}

    def row(self, path: Path) -> int:
        return self.paths.index(path.resolve())

    def wrong_neighbours(self, row: int) -> list[int]:
        """The other covers and the Holidays photos nearest to the true cover's stored vector, WRONG_CANDIDATES
        of each: fixed per cover, the pictures a vector search puts next to it. By vector alone nearly all of
        the nearest are covers, so the distractors that the collection mostly consists of get their own share."""
        order = [int(i) for i in np.argsort(-(self.vectors @ self.vectors[row])) if i != row]
        covers = [i for i in order if "smvs_dvd" in self.paths[i].parts]
        return covers[:WRONG_CANDIDATES] + [i for i in order if i not in covers][:WRONG_CANDIDATES]

    def sift(self, row: int) -> Features:
        """Extracted once per row, as indexing would store it (the stored-row size and budget)."""
        if row not in self._sift:
            image = read_image(self.paths[row], MAX_PIXELS).image
            self._sift[row] = rootsift(image, FEATURE_MAX_SIDE, MAX_KEYPOINTS)
        return self._sift[row]


def verify_query(collection: Collection, query: HardQuery, datasets: Path) -> dict[str, Outcome]:
    """Every method's counts for one query against its true cover and its wrong neighbours."""
    image = read_image(query.image, MAX_PIXELS).image
    cover = collection.row(datasets / query.relevant)
    rows = [cover, *collection.wrong_neighbours(cover)]
    start = time.perf_counter()
    query_orb = extract_features(image, SECOND_LOOK_MAX_SIDE, SECOND_LOOK_KEYPOINTS)
    orb_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    query_sift = rootsift(image, SECOND_LOOK_MAX_SIDE, SECOND_LOOK_KEYPOINTS)
    sift_ms = (time.perf_counter() - start) * 1000
    sift_rows = {r: collection.sift(r) for r in rows}  # extracted before timing: indexing would store them
    pairs = {
        "orb+ransac": [timed(lambda r=r: count_inliers(query_orb, collection.orb[r], COUNTED_INLIERS)) for r in rows],
        "orb+magsac": [timed(lambda r=r: inliers(orb(query_orb), orb(collection.orb[r]), cv2.NORM_HAMMING,
                                                 cv2.USAC_MAGSAC)) for r in rows],
        "rootsift+ransac": [timed(lambda r=r: inliers(query_sift, sift_rows[r], cv2.NORM_L2, cv2.RANSAC))
                            for r in rows],
        "rootsift+magsac": [timed(lambda r=r: inliers(query_sift, sift_rows[r], cv2.NORM_L2, cv2.USAC_MAGSAC))
                            for r in rows],
    }
    camera = query.image.stem.split("-")[0]
    return {method: Outcome(query, camera, found[0].inliers, max(p.inliers for p in found[1:]),
                            [p.ms for p in found], sift_ms if method.startswith("rootsift") else orb_ms)
            for method, found in pairs.items()}


def choose_thresholds(outcomes: list[Outcome]) -> dict[str, int]:
    """Per half, the lowest count no wrong candidate reached on it (tuning cameras only)."""
    return {half: 1 + max((o.wrong_inliers for o in outcomes if o.query.half == half), default=0)
            for half in ("A", "B")}


def copy_threshold(outcome: Outcome, thresholds: dict[str, int]) -> int:
    """The threshold chosen on the other half, so that no query is scored by a threshold it helped choose."""
    return thresholds["B" if outcome.query.half == "A" else "A"]


def summary(outcomes: list[Outcome], thresholds: dict[str, int]) -> str:
    """One table row's cells: top-1, copy found, wrong copy, median true inliers, median ms per pair and query."""
    top1 = sum(o.true_inliers > o.wrong_inliers for o in outcomes) / len(outcomes)
    copy = sum(o.true_inliers >= copy_threshold(o, thresholds) for o in outcomes) / len(outcomes)
    wrong = sum(o.wrong_inliers >= copy_threshold(o, thresholds) for o in outcomes) / len(outcomes)
    true_median = statistics.median(o.true_inliers for o in outcomes)
    pair_ms = statistics.median(ms for o in outcomes for ms in o.pair_ms)
    extract_ms = statistics.median(o.extract_ms for o in outcomes)
    return (f"{len(outcomes)} | {top1:.3f} | {copy:.3f} | {1 - copy:.3f} | {wrong:.3f} | {true_median:.0f} | "
            f"{pair_ms:.2f} | {extract_ms:.0f}")


def report(title: str, results: dict[str, list[Outcome]], thresholds: dict[str, dict[str, int]],
           conditions: list[str]) -> None:
    print(f"\n### {title}\n")
    print("| condition | method | queries | top-1 | copy (>= thr) | nothing | wrong >= thr | median true inliers | "
          "ms / pair | query extract ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for condition in [*conditions, "hard"]:
        for method in METHODS:
            chosen = [o for o in results[method] if condition in ("hard", o.query.condition)]
            if chosen:
                print(f"| {condition} | {method} | {summary(chosen, thresholds[method])} |")


def selected(queries: list[HardQuery], cameras: set[str], conditions: list[str], limit: int | None) -> list[HardQuery]:
    """The cameras' and conditions' queries; with ``limit``, that many covers per camera, spread evenly over
    001-050 so that both halves keep their share."""
    chosen = [q for q in queries if q.condition in conditions and q.image.stem.split("-")[0] in cameras]
    if limit is None:
        return chosen
    covers = sorted({q.image.stem.split("-")[1] for q in chosen})
    kept = {covers[int(i * len(covers) / limit)] for i in range(min(limit, len(covers)))}
    return [q for q in chosen if q.image.stem.split("-")[1] in kept]


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--cameras", default=",".join(HELD_OUT_CAMERAS), help="whose photos to report")
    parser.add_argument("--conditions", default="small,tilted,glare,all")
    parser.add_argument("--limit", type=int, help="covers per camera (evenly spread over both halves)")
    args = parser.parse_args()
    print(f"OpenCV {cv2.__version__}")
    cameras, conditions = args.cameras.split(","), args.conditions.split(",")
    queries = build(args.datasets, RESULTS / "hard_photos", tuple(sorted({*cameras, *TUNING_CAMERAS})))
    collection = Collection(RESULTS / "index" / "hard_photos")
    results: dict[str, list[Outcome]] = {method: [] for method in METHODS}
    for query in selected(queries, {*cameras, *TUNING_CAMERAS}, conditions, args.limit):
        for method, outcome in verify_query(collection, query, args.datasets).items():
            results[method].append(outcome)
    tuning = {m: [o for o in found if o.camera in TUNING_CAMERAS] for m, found in results.items()}
    thresholds = {method: choose_thresholds(found) for method, found in tuning.items()}
    print("\nCopy thresholds (lowest count no wrong candidate reached on the tuning cameras' half):\n")
    print("| method | chosen on half A (reported on B) | chosen on half B (reported on A) |\n|---|---|---|")
    for method, chosen in thresholds.items():
        print(f"| {method} | {chosen['A']} | {chosen['B']} |")
    report(f"tuning cameras ({','.join(TUNING_CAMERAS)}), cross-validated by half", tuning, thresholds, conditions)
    reported = [c for c in cameras if c not in TUNING_CAMERAS]
    if reported:
        group = {m: [o for o in found if o.camera in reported] for m, found in results.items()}
        report(f"reported cameras ({','.join(reported)})", group, thresholds, conditions)


if __name__ == "__main__":
    main()
