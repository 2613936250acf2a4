"""Geometric verification counts what OpenCV's brute-force matcher would, however the pairs are computed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from loupe.tools.local_features import (
    RANSAC_REPROJECTION_PX,
    RATIO_TEST,
    SECOND_LOOK_KEYPOINTS,
    SECOND_LOOK_MAX_SIDE,
    LocalFeatures,
    count_inliers,
    extract_features,
    inliers_of_pairs,
)
from tests.conftest import holidays_files

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier


def _bf_inliers(query: LocalFeatures, candidate: LocalFeatures, least: int) -> int:
    """The reference: BFMatcher.knnMatch(k=2), the ratio test, one RANSAC homography."""
    if min(len(query.descriptors), len(candidate.descriptors)) < least:
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query.descriptors, candidate.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO_TEST * p[1].distance]
    if len(good) < least:
        return 0
    source = query.keypoints[[m.queryIdx for m in good]].astype(np.float32)
    target = candidate.keypoints[[m.trainIdx for m in good]].astype(np.float32)
    _, mask = cv2.findHomography(source, target, cv2.RANSAC, RANSAC_REPROJECTION_PX)
    inliers = int(mask.sum()) if mask is not None else 0
    return inliers if inliers >= least else 0


@pytest.fixture(scope="module")
def stored() -> list[LocalFeatures]:
    """Stored-row features of real photos (several scenes photographed more than once), read back from bytes."""
    features = [extract_features(Image.open(path)) for path in holidays_files(24)]
    return [LocalFeatures.from_bytes(*f.to_bytes()) for f in features]


@pytest.mark.parametrize("second_look", [False, True])
def test_inlier_counts_are_the_brute_force_matchers(stored: list[LocalFeatures], second_look: bool) -> None:
    queries = [extract_features(Image.open(path), SECOND_LOOK_MAX_SIDE, SECOND_LOOK_KEYPOINTS) if second_look
               else extract_features(Image.open(path)) for path in holidays_files(6)]
    expected = [_bf_inliers(q, c, 8) for q in queries for c in stored]
    assert [count_inliers(q, c, 8) for q in queries for c in stored] == expected
    assert sum(count > 0 for count in expected) >= len(queries)  # each photo at least matches its stored self


def test_pairs_spread_over_threads_come_back_in_order(stored: list[LocalFeatures]) -> None:
    pairs = [(stored[i], stored[j]) for i in range(6) for j in range(len(stored))]
    assert inliers_of_pairs(pairs, 8) == [count_inliers(a, b, 8) for a, b in pairs]
    assert inliers_of_pairs([]) == []


def test_a_forked_child_verifies_with_its_own_threads(stored: list[LocalFeatures]) -> None:
    """After the parent's pool has run, a forked child (multiprocessing's default start on Linux) still counts."""
    import multiprocessing

    pairs = [(stored[0], stored[j]) for j in range(4)]
    expected = inliers_of_pairs(pairs, 8)
    with multiprocessing.get_context("fork").Pool(1) as child:
        assert child.apply_async(inliers_of_pairs, (pairs, 8)).get(timeout=60) == expected
