"""Local features and geometric verification: is this the same object, photographed again?

A global embedding ranks a phone photo of a DVD cover against its clean
catalogue scan poorly (top-1 0.245 on SMVS dev with EfficientNet). Matching ORB
keypoints and counting the matches a single homography explains (RANSAC
inliers) recognises it (top-1 0.98), at a few ms per image to extract and, on
this CPU, about 0.4 ms per pair for the ratio-test matching plus up to 1.5 ms
for RANSAC (which runs to its iteration cap on an unrelated pair, so it is
only tried where it can matter: see count_inliers). The features are stored
with each row (about 18 KB), so verifying a query against 50 candidates reads
no image files.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import faiss
import numpy as np
from PIL import Image

FEATURE_MAX_SIDE = 640
MAX_KEYPOINTS = 500
RATIO_TEST = 0.8
RANSAC_REPROJECTION_PX = 8.0
# Same object if at least this many matches fit one homography. Over all 200
# SMVS dev phone photos against the 50 covers, the true pairs had a median of
# 95 inliers and 91% reached 25; the best wrong cover of a query had 14 or fewer
# in 95% of queries (28 at the 99th percentile, 40 at most).
SAME_OBJECT_INLIERS = 25
# Between the two, the object may be the same: shown as "similar" with the count.
SOME_OBJECT_INLIERS = 15
# The second look (tools/image_search.py) extracts more keypoints from the query at its full size, so that an
# object filling a tenth of a phone photo still carries enough of them; stored rows keep their 500 at 640 px.
# More query keypoints also line up more by chance with a wrong picture, so its thresholds are its own
# (chosen on hard_photos' half A, checked on half B: evals/hard_photos.py).
SECOND_LOOK_MAX_SIDE = 800
SECOND_LOOK_KEYPOINTS = 1000
# ORB finds no keypoint within edgeThreshold pixels of the border (31, as its patch size), so a grey copy
# with a side under two of those has none; below a few pixels cv2.resize even asserts on its pyramid.
_ORB_EDGE = 31
_MIN_SIDE = 2 * _ORB_EDGE + 1

# OpenCV runs single-threaded (tools/process.py): many small calls, where threads cost more than they save.


@dataclass(frozen=True)
class LocalFeatures:
    keypoints: np.ndarray  # (n, 2) int16 pixel coordinates at FEATURE_MAX_SIDE scale
    descriptors: np.ndarray  # (n, 32) uint8 ORB descriptors

    def to_bytes(self) -> tuple[bytes, bytes]:
        return self.keypoints.astype(np.int16).tobytes(), self.descriptors.astype(np.uint8).tobytes()

    @classmethod
    def from_bytes(cls, keypoints: bytes | None, descriptors: bytes | None) -> LocalFeatures:
        points = np.frombuffer(keypoints or b"", dtype=np.int16).reshape(-1, 2)
        described = np.frombuffer(descriptors or b"", dtype=np.uint8).reshape(-1, 32)
        return cls(points, described)


def extract_features(image: Image.Image, max_side: int = FEATURE_MAX_SIDE,
                     keypoints: int = MAX_KEYPOINTS) -> LocalFeatures:
    """ORB keypoints of a grey copy at most ``max_side`` pixels on its long side; none for a sliver."""
    grey = image.convert("L")
    grey.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    none = LocalFeatures(np.zeros((0, 2), np.int16), np.zeros((0, 32), np.uint8))
    if min(grey.size) < _MIN_SIDE:
        return none
    detector = cv2.ORB_create(nfeatures=keypoints, fastThreshold=10, edgeThreshold=_ORB_EDGE)
    keypoints, descriptors = detector.detectAndCompute(np.asarray(grey), None)
    if descriptors is None or not keypoints:
        return none
    points = np.array([k.pt for k in keypoints], dtype=np.float32).round().astype(np.int16)
    return LocalFeatures(points, descriptors)


def count_inliers(query: LocalFeatures, candidate: LocalFeatures, least: int = SOME_OBJECT_INLIERS) -> int:
    """Matches (ratio test) that one RANSAC homography explains, when they are evidence; else 0.

    Fewer than SOME_OBJECT_INLIERS inliers is what unrelated pictures reach, so such a count is 0 here, and
    RANSAC, about half the cost of a pair, is not tried when the ratio test leaves fewer matches than that
    (inliers are a subset of them): on SMVS, 84% of a query's wrong candidates stop there.
    """
    if min(len(query.descriptors), len(candidate.descriptors)) < max(least, 2):
        return 0
    # The two nearest stored descriptors of each query descriptor: the pairs of OpenCV's BFMatcher.knnMatch(k=2)
    # (the same inliers on 3,200 Holidays pairs), by faiss's popcount search at a third of its time, as arrays.
    distances, nearest = faiss.knn_hamming(np.ascontiguousarray(query.descriptors),
                                           np.ascontiguousarray(candidate.descriptors), 2)
    good = np.flatnonzero(distances[:, 0] < RATIO_TEST * distances[:, 1])
    if len(good) < least:
        return 0
    source = query.keypoints[good].astype(np.float32)
    target = candidate.keypoints[nearest[good, 0]].astype(np.float32)
    _, mask = cv2.findHomography(source, target, cv2.RANSAC, RANSAC_REPROJECTION_PX)
    inliers = int(mask.sum()) if mask is not None else 0
    return inliers if inliers >= least else 0


def _thread_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 8), thread_name_prefix="loupe-verify")


# One pool for the life of the process (starting a query's threads took about 3 ms); a forked child gets its
# own, as the parent's threads do not exist there and tasks given to their pool would never run.
_POOL = _thread_pool()


def _new_pool_after_fork() -> None:
    global _POOL
    _POOL = _thread_pool()


os.register_at_fork(after_in_child=_new_pool_after_fork)


def inliers_of_pairs(pairs: list[tuple[LocalFeatures, LocalFeatures]], least: int = SOME_OBJECT_INLIERS) -> list[int]:
    """count_inliers of each pair, in order, spread over the cores: OpenCV's matching and RANSAC release the
    GIL and each runs single-threaded (tools/process.py). One task a pair, as a pair costs 1 ms where the ratio
    test stops it and 3 where RANSAC runs: equal shares per thread finished later."""
    return list(_POOL.map(lambda pair: count_inliers(*pair, least), pairs))
