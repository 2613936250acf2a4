"""Geometric verification counts what OpenCV's brute-force matcher would, however the pairs are computed."""

from __future__ import annotations

import cv2
import pytest
from PIL import Image

from loupe.evals.verification_compare import inliers as brute_force_inliers
from loupe.evals.verification_compare import orb
from loupe.tools.image_search import COUNTED_INLIERS
from loupe.tools.local_features import (
    SECOND_LOOK_KEYPOINTS,
    SECOND_LOOK_MAX_SIDE,
    LocalFeatures,
    count_inliers,
    extract_features,
    inliers_of_pairs,
)
from tests.conftest import holidays_files

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier


@pytest.fixture(scope="module")
def stored() -> list[LocalFeatures]:
    """Stored-row features of real photos (several scenes photographed more than once), read back from bytes."""
    features = [extract_features(Image.open(path)) for path in holidays_files(24)]
    return [LocalFeatures.from_bytes(*f.to_bytes()) for f in features]


@pytest.mark.parametrize("second_look", [False, True])
def test_inlier_counts_are_the_brute_force_matchers(stored: list[LocalFeatures], second_look: bool) -> None:
    queries = [extract_features(Image.open(path), SECOND_LOOK_MAX_SIDE, SECOND_LOOK_KEYPOINTS) if second_look
               else extract_features(Image.open(path)) for path in holidays_files(6)]
    # the reference: OpenCV's BFMatcher.knnMatch(k=2), the ratio test and RANSAC, gated at COUNTED_INLIERS
    expected = [brute_force_inliers(orb(q), orb(c), cv2.NORM_HAMMING, cv2.RANSAC) for q in queries for c in stored]
    assert [count_inliers(q, c, COUNTED_INLIERS) for q in queries for c in stored] == expected
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
