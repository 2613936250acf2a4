"""Retrieval metrics, written out so each number in README.md can be checked by hand.

Conventions (the seed's): average precision is the mean, over all relevant
items, of the precision at the rank where each is retrieved; a relevant item
never retrieved contributes 0. A query with no relevant items has no AP (it is
left out of mAP rather than counted as 0 or 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def average_precision(ranked: Sequence[str], relevant: set[str]) -> float | None:
    if not relevant:
        return None
    hits = 0
    total = 0.0
    seen: set[str] = set()
    for rank, item in enumerate(ranked, start=1):
        if item in relevant and item not in seen:
            hits += 1
            total += hits / rank
        seen.add(item)
    return total / len(relevant)


def mean_average_precision(runs: Sequence[tuple[Sequence[str], set[str]]]) -> float:
    scores = [ap for ranked, relevant in runs if (ap := average_precision(ranked, relevant)) is not None]
    return sum(scores) / len(scores) if scores else 0.0


def precision_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return sum(1 for item in ranked[:k] if item in relevant) / k


def recall_at(ranked: Sequence[str], relevant: set[str], k: int) -> float | None:
    if not relevant:
        return None
    return len(set(ranked[:k]) & relevant) / len(relevant)


def f1_at(ranked: Sequence[str], relevant: set[str], k: int) -> float | None:
    recall = recall_at(ranked, relevant, k)
    if recall is None:
        return None
    precision = precision_at(ranked, relevant, k)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def top1(ranked: Sequence[str], relevant: set[str]) -> float:
    return 1.0 if ranked and ranked[0] in relevant else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    for rank, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], grades: dict[str, float], k: int) -> float | None:
    """Normalised discounted cumulative gain: graded relevance, higher grades count more near the top.

    gain = 2^grade - 1 at rank r, discounted by log2(r + 1); divided by the
    gain of the ideal ranking. None when nothing is relevant.
    """
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return None
    best = sum((2 ** g - 1) / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    seen: set[str] = set()
    gained = 0.0
    for rank, item in enumerate(ranked[:k], start=1):
        if item not in seen:
            gained += (2 ** grades.get(item, 0) - 1) / math.log2(rank + 1)
        seen.add(item)
    return gained / best


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions each cost 1."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def character_error_rate(errors: int, reference_chars: int) -> float:
    """Edit operations per reference character (0 is perfect; can exceed 1 with many insertions)."""
    return errors / reference_chars if reference_chars else 0.0
