"""The eval metrics against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from loupe.evals.metrics import (
    average_precision,
    f1_at,
    mean_average_precision,
    ndcg_at,
    percentile,
    precision_at,
    recall_at,
    reciprocal_rank,
    top1,
)

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier


def test_average_precision_by_hand() -> None:
    # relevant at ranks 1 and 3: (1/1 + 2/3) / 2
    assert average_precision(["a", "x", "b"], {"a", "b"}) == pytest.approx((1 + 2 / 3) / 2)
    # one of two relevant never retrieved counts 0: (1/2) / 2
    assert average_precision(["x", "a"], {"a", "b"}) == pytest.approx(0.25)
    assert average_precision([], {"a"}) == 0.0
    assert average_precision(["a"], set()) is None
    # a duplicate in the ranking is not a second hit
    assert average_precision(["a", "a", "b"], {"a", "b"}) == pytest.approx((1 + 2 / 3) / 2)


def test_map_leaves_out_queries_without_relevant_items() -> None:
    runs = [(["a"], {"a"}), (["x"], {"b"}), (["y"], set())]
    assert mean_average_precision(runs) == pytest.approx(0.5)
    assert mean_average_precision([]) == 0.0


def test_precision_recall_f1_top1_mrr() -> None:
    ranked = ["a", "x", "b", "y"]
    relevant = {"a", "b", "c"}
    assert precision_at(ranked, relevant, 2) == 0.5
    assert recall_at(ranked, relevant, 3) == pytest.approx(2 / 3)
    assert f1_at(ranked, relevant, 3) == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert f1_at(["x"], {"a"}, 1) == 0.0
    assert recall_at(ranked, set(), 3) is None
    assert top1(ranked, relevant) == 1.0 and top1([], relevant) == 0.0
    assert reciprocal_rank(["x", "y", "b"], relevant) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x"], relevant) == 0.0


def test_percentile_matches_numpy_including_ties() -> None:
    values = [5.0, 1.0, 3.0, 3.0, 10.0, 7.0]
    for q in (0, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([], 50) == 0.0


def test_edit_distance_and_cer_by_hand() -> None:
    from loupe.evals.metrics import character_error_rate, edit_distance

    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3
    assert edit_distance("TOTAL", "TOTAL") == 0
    assert edit_distance("9.00", "9,00") == 1
    assert character_error_rate(3, 6) == 0.5 and character_error_rate(0, 0) == 0.0


def test_ndcg_by_hand_with_grades() -> None:
    grades = {"a": 2, "b": 1}
    # ideal: a then b -> (3 / log2 2 + 1 / log2 3); ranked b, x, a -> 1 / log2 2 + 3 / log2 4
    ideal = 3 + 1 / np.log2(3)
    assert ndcg_at(["b", "x", "a"], grades, 10) == pytest.approx((1 + 3 / 2) / ideal)
    assert ndcg_at(["a", "b"], grades, 10) == pytest.approx(1.0)
    assert ndcg_at(["x", "y"], grades, 10) == 0.0
    assert ndcg_at(["b", "x", "a"], grades, 2) == pytest.approx(1 / (3 + 1 / np.log2(3)))  # a is cut off
    assert ndcg_at(["a"], {"a": 0}, 10) is None  # grade 0 means not relevant
    assert ndcg_at(["a", "a", "b"], grades, 10) == pytest.approx((3 + 1 / 2) / ideal)  # no double counting
