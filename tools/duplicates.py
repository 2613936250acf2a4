"""The duplicate report: every group of identical and near-identical images in the index, in one pass.

Comparing every pair of a 100,000-photo library is five billion comparisons, so candidate pairs come
from three cheap sources, and each is then labelled exactly as image_search labels a result
(tools/image_search.py), so a pair is a duplicate here when a search for one returns the other as
identical or near-duplicate:

* the same SHA-256 or the same decoded pixels: rows grouped by value;
* perceptual hashes at most NEAR_DUPLICATE_PHASH_BITS apart, also once one picture is turned (the
  stored rotated hashes): a multi-index over 7 bands of the 64 bits, since two hashes that close agree
  on at least one whole band, so only rows sharing a band are compared;
* the nearest rows by embedding, found inside cells of a coarse k-means over the vectors (each row in
  its two nearest cells) instead of against every row, then checked with the stored local features
  (crops, rotations, a screenshot border, a new photo of the same thing).

Links join into groups (union-find); each group gets a keeper by a configurable rule. Nothing here
moves or deletes a file except :func:`move_copies`, and that only on request and with an undo file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from loupe.base.errors import LoupeError
from loupe.store.image_table import ImageTable, vector_matrix
from loupe.tools.boundary import CollectionBoundary
from loupe.tools.image_search import NEAR_DUPLICATE_PHASH_BITS, copy_label
from loupe.tools.local_features import LocalFeatures, inliers_of_pairs
from loupe.tools.records import MATCH_ORDER, MatchLabel

# Nearest rows by embedding that each row is checked against. 20, chosen on duplicates_bench's first end and its
# --skip 24 sample, checked on the held-out end: with 10, framed receipts whose nearest rows were other framed
# receipts never met their original (border recall 0.846 on --skip 24; 1.000 with 20, at 2-3x the pairs verified).
NEIGHBOURS = 20
NEIGHBOUR_FLOOR = 0.5  # below this cosine no copy kind was seen (a 90-degree turn is found by its hash)
BRUTE_FORCE_ROWS = 6_000  # up to this many rows every embedding pair is compared; above, within k-means cells
# The 64 hash bits cut into NEAR_DUPLICATE_PHASH_BITS + 1 bands (9-10 bits each): two hashes that differ in at most
# that many bits agree on at least one whole band, so comparing only within equal bands finds every such pair.
_BAND_COUNT = NEAR_DUPLICATE_PHASH_BITS + 1
_BANDS = [(64 * band // _BAND_COUNT, 64 * (band + 1) // _BAND_COUNT) for band in range(_BAND_COUNT)]

KEEPER_CRITERIA = ("resolution", "date", "size", "path")
KeeperRule = tuple[str, ...]
DEFAULT_KEEPER: KeeperRule = ("resolution", "date", "path")

_COLUMNS = ["id", "path", "file_name", "sha256", "pixel_sha256", "phash", "rotated_phashes", "width", "height",
            "file_size", "taken_at", "date", "mtime", "ocr_text", "total"]
# Documents: two receipts of one shop share the header and the layout, so they pass every picture test.
# They are told apart by what is printed: the date or the total differs (tools/document_fields.py), and
# most of their numbers too. Either alone failed: a bad copy misreads a date or a total, and receipts of
# one shop share many numbers (address, phone, tax id, prices). Measured with evals/duplicates_bench.py on
# SROIE receipts: see README, "Duplicates, measured".
SHARED_NUMBERS = 0.7
MIN_NUMBERS = 5
_NUMBER = re.compile(r"[\w.,:/-]*\d[\w.,:/-]*")
# Receipts of one shop for one order (same items, same total) share over 70% of their numbers, so the date differs
# and the numbers do not; what also differs is the till's time of day. A copy, even one whose date was misread,
# keeps that time. Chosen looking at evals/duplicates_bench.py's first end and its --skip 24 sample (no copy lost a
# link, the --skip 24 sample's false links across receipts all went); its --held-out end, the check, was unchanged.
_TIME_OF_DAY = re.compile(r"(?<!\d)([01]?\d|2[0-3]):([0-5]\d)(?!\d)")


@dataclass
class Member:
    """One image of a group: the keeper, or a copy with the reason it is one."""

    id: str
    path: str
    file_name: str
    width: int
    height: int
    file_size: int
    date: str  # the EXIF or metadata date, else the file's time (what "earliest" compares)
    match: MatchLabel | None = None  # None for the keeper
    why: str = ""  # e.g. "same pixels as IMG_0042.jpg"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "file_name": self.file_name, "width": self.width,
                "height": self.height, "file_size": self.file_size, "date": self.date,
                "match": self.match.value if self.match else "keeper", "why": self.why}


@dataclass
class DuplicateGroup:
    keeper: Member
    copies: list[Member]

    @property
    def members(self) -> list[Member]:
        return [self.keeper, *self.copies]

    def to_dict(self) -> dict[str, Any]:
        return {"keeper": self.keeper.to_dict(), "copies": [c.to_dict() for c in self.copies]}

    def with_keeper(self, member_id: str) -> DuplicateGroup:
        """The group with another member kept (the user's choice over the rule's); the suggested keeper
        becomes a copy of it, linked as the chosen one was linked to the group."""
        if member_id == self.keeper.id:
            return self
        chosen = next((m for m in self.copies if m.id == member_id), None)
        if chosen is None:
            raise LoupeError(f"no image with id {member_id} in this group")
        former = dataclasses.replace(self.keeper, match=chosen.match,
                                     why=f"the rule's keeper; {chosen.file_name} kept instead ({chosen.why})")
        copies = [former, *(m for m in self.copies if m.id != member_id)]
        return DuplicateGroup(keeper=dataclasses.replace(chosen, match=None, why=""), copies=copies)


@dataclass
class DuplicateReport:
    groups: list[DuplicateGroup]
    rows: int  # rows looked at
    pairs_checked: int  # candidate pairs labelled (of rows * (rows - 1) / 2 possible)
    seconds: float
    pairs_verified: int = 0  # of those, checked with local features (the costly part: about 1 ms a pair)
    keep: KeeperRule = DEFAULT_KEEPER
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def copies(self) -> int:
        return sum(len(group.copies) for group in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {"groups": [g.to_dict() for g in self.groups], "rows": self.rows, "copies": self.copies,
                "pairs_checked": self.pairs_checked, "pairs_verified": self.pairs_verified,
                "seconds": round(self.seconds, 3), "keep": list(self.keep)}


def parse_keeper_rule(text: str) -> KeeperRule:
    """``"resolution,date,path"`` as a rule; a clear error naming the criteria for anything else."""
    rule = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in rule if part not in KEEPER_CRITERIA]
    if not rule or unknown:
        raise LoupeError(f"keeper rule {text!r}: use criteria from {', '.join(KEEPER_CRITERIA)}, most important "
                         "first, separated by commas (e.g. resolution,date,path)")
    return rule


def find_duplicates(table: ImageTable, similar_cosine: float, near_duplicate_cosine: float,
                    keep: KeeperRule | None = None, where: str | None = None) -> DuplicateReport:
    """Every group of identical and near-identical images among the rows ``where`` selects (all by default).

    The thresholds are the image encoder's calibrated ones, as image_search uses them."""
    start = time.perf_counter()
    keep = keep or DEFAULT_KEEPER
    stages: dict[str, float] = {}
    columns = table.scan([*_COLUMNS, "image_vector"], where)
    vectors = vector_matrix(columns["image_vector"], table.info.image_dim)
    rows = columns.drop_columns(["image_vector"]).to_pylist()
    stages["read"] = time.perf_counter() - start

    links: dict[tuple[int, int], tuple[MatchLabel, str]] = {}
    mark = time.perf_counter()
    for column, why in (("sha256", "same file content (SHA-256)"),
                        ("pixel_sha256", "same pixels, different file (metadata changed or re-saved losslessly)")):
        for i, j in _equal_value_pairs([row[column] for row in rows]):
            links.setdefault((i, j), (MatchLabel.IDENTICAL, why))
    hashed = _hash_pairs(rows)
    stages["hashes"] = time.perf_counter() - mark

    mark = time.perf_counter()
    neighbours = _embedding_pairs(vectors)
    stages["embeddings"] = time.perf_counter() - mark

    mark = time.perf_counter()
    candidates = {pair for pair in (*hashed, *neighbours) if pair not in links}
    cosines = {(i, j): float(vectors[i] @ vectors[j]) for i, j in candidates}
    to_verify = [pair for pair in candidates if pair not in hashed and cosines[pair] < near_duplicate_cosine]
    inliers = _verify(table, rows, to_verify)
    best = _best_feature_match(inliers)
    for pair in candidates:
        bits, turned = hashed.get(pair, (64, 0))
        if not turned and cosines[pair] < similar_cosine:
            bits = 64  # close hashes of pictures that do not look alike: a shared frame or a blank page
        if pair in inliers and best.get(pair[0]) != pair and best.get(pair[1]) != pair:
            inliers[pair] = 0  # see _best_feature_match
        # "similar" set to the near-duplicate cosine: a look-alike never joins a group
        label, why = copy_label(bits, turned, inliers.get(pair, 0), cosines[pair], similar=near_duplicate_cosine,
                                near_duplicate=near_duplicate_cosine)
        if label == MatchLabel.NEAR_DUPLICATE and not _different_documents(rows[pair[0]], rows[pair[1]]):
            links[pair] = (label, why)
    stages["verify"] = time.perf_counter() - mark

    groups = _groups(rows, links, keep)
    return DuplicateReport(groups=groups, rows=len(rows), pairs_checked=len(candidates | set(links)),
                           seconds=time.perf_counter() - start, pairs_verified=len(to_verify), keep=keep,
                           stage_seconds=stages)


def _equal_value_pairs(values: list[str | None]) -> Iterable[tuple[int, int]]:
    """Each row with an equal value linked to the first row that has it (a star is enough for a group)."""
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if not value:
            continue
        if value in first:
            yield first[value], index
        else:
            first[value] = index


def _hash_pairs(rows: list[dict[str, Any]]) -> dict[tuple[int, int], tuple[int, int]]:
    """Pairs whose perceptual hashes, one of them turned or neither, are within NEAR_DUPLICATE_PHASH_BITS:
    (bits apart, degrees turned) per pair (i < j)."""
    plain = np.array([row["phash"] if row["phash"] is not None else 0 for row in rows], np.int64).view(np.uint64)
    turned_rows, turned_hashes, turns = [], [], []
    for index, row in enumerate(rows):
        for turn, value in enumerate(row["rotated_phashes"] or [], start=1):
            turned_rows.append(index)
            turned_hashes.append(value)
            turns.append(turn * 90)
    turned = np.array(turned_hashes, np.int64).view(np.uint64)
    turned_rows_array, turns_array = np.array(turned_rows, np.int64), np.array(turns, np.int64)

    found: dict[tuple[int, int], tuple[int, int]] = {}
    for low, high in _BANDS:
        mask = np.uint64((1 << (high - low)) - 1)
        turned_buckets = dict(_buckets((turned >> np.uint64(low)) & mask))
        for key, members in _buckets((plain >> np.uint64(low)) & mask):
            bits = np.bitwise_count(plain[members][:, None] ^ plain[members][None, :])
            for a, b in zip(*np.nonzero(np.triu(bits <= NEAR_DUPLICATE_PHASH_BITS, k=1))):
                _keep_closest(found, members[a], members[b], int(bits[a, b]), 0)
            others = turned_buckets.get(key)
            if others is not None:
                bits = np.bitwise_count(turned[others][:, None] ^ plain[members][None, :])
                for a, b in zip(*np.nonzero(bits <= NEAR_DUPLICATE_PHASH_BITS)):
                    _keep_closest(found, turned_rows_array[others[a]], members[b], int(bits[a, b]),
                                  int(turns_array[others[a]]))
    return found


def _buckets(keys: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    """(key, indexes of the entries with that key) for every key present."""
    order = np.argsort(keys, kind="stable")
    values, starts = np.unique(keys[order], return_index=True)
    for value, begin, end in zip(values.tolist(), starts, [*starts[1:], len(order)]):
        yield value, order[begin:end]


def _keep_closest(found: dict, i: int, j: int, bits: int, turned: int) -> None:
    if i == j:
        return
    pair = (int(min(i, j)), int(max(i, j)))
    if pair not in found or bits < found[pair][0]:
        found[pair] = (bits, turned)


def _embedding_pairs(vectors: np.ndarray) -> set[tuple[int, int]]:
    """Each row with its NEIGHBOURS nearest rows by cosine (at least NEIGHBOUR_FLOOR), as pairs i < j."""
    if len(vectors) < 2:
        return set()
    if len(vectors) <= BRUTE_FORCE_ROWS:
        return _nearest_within(vectors, np.arange(len(vectors)))
    cells = _cells(vectors)
    pairs: set[tuple[int, int]] = set()
    for members in cells:
        pairs |= _nearest_within(vectors, members)
    return pairs


def _cells(vectors: np.ndarray, iterations: int = 8) -> list[np.ndarray]:
    """Row indexes per cell of a spherical k-means with about sqrt(rows) cells, each row in its two nearest
    cells (a near copy of a row on a cell border is then still in one of its cells)."""
    rng = np.random.default_rng(0)
    count = int(np.sqrt(len(vectors)))
    sample = vectors[rng.choice(len(vectors), size=min(len(vectors), 40 * count), replace=False)]
    centroids = sample[rng.choice(len(sample), size=count, replace=False)]
    for _ in range(iterations):
        nearest = np.argmax(sample @ centroids.T, axis=1)
        for cell in range(count):
            chosen = sample[nearest == cell]
            if len(chosen):
                centre = chosen.sum(axis=0)
                centroids[cell] = centre / max(float(np.linalg.norm(centre)), 1e-12)
    two = np.concatenate([np.argsort(-(block @ centroids.T), axis=1)[:, :2]
                          for block in np.array_split(vectors, max(1, len(vectors) // 8192))])
    return [np.flatnonzero((two == cell).any(axis=1)) for cell in range(count)]


def _nearest_within(vectors: np.ndarray, members: np.ndarray) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    chosen = vectors[members]
    for begin in range(0, len(members), 2048):
        block = chosen[begin:begin + 2048] @ chosen.T
        for row, local in enumerate(range(begin, min(begin + 2048, len(members)))):
            block[row, local] = -1.0
        take = min(NEIGHBOURS, len(members) - 1)
        if take <= 0:
            continue
        top = np.argpartition(-block, take - 1, axis=1)[:, :take]
        for row, columns in enumerate(top):
            i = int(members[begin + row])
            for column in columns:
                if block[row, column] >= NEIGHBOUR_FLOOR:
                    j = int(members[column])
                    pairs.add((min(i, j), max(i, j)))
    return pairs


def _verify(table: ImageTable, rows: list[dict[str, Any]], pairs: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """Inliers of the local features of each pair, the features read once per row, the pairs on every core."""
    if not pairs:
        return {}
    needed = sorted({index for pair in pairs for index in pair})
    features: dict[int, LocalFeatures] = {}
    for begin in range(0, len(needed), 500):
        chunk = needed[begin:begin + 500]
        stored = {row["id"]: row for row in table.get([rows[i]["id"] for i in chunk],
                                                      columns=["id", "orb_keypoints", "orb_descriptors"])}
        for index in chunk:
            row = stored.get(rows[index]["id"])
            features[index] = LocalFeatures.from_bytes(row["orb_keypoints"] if row else None,
                                                       row["orb_descriptors"] if row else None)
    return dict(zip(pairs, inliers_of_pairs([(features[first], features[second]) for first, second in pairs])))


def _different_documents(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Two pictures of printed text with another date or total, and mostly other numbers or another time of day.

    A date or total alone is not enough: a bad copy misreads one. Receipts of one shop for the same order share
    most numbers (address, tax id, prices), so the numbers alone are not either; they were printed at another
    time, though, which a copy's OCR still reads alike."""
    dates_differ = bool(first["date"] and second["date"] and first["date"] != second["date"])
    totals_differ = first["total"] is not None and second["total"] is not None and \
        abs(first["total"] - second["total"]) >= 0.005
    if not (dates_differ or totals_differ):
        return False
    return _printed_at_other_times(first["ocr_text"], second["ocr_text"]) or \
        _mostly_other_numbers(first["ocr_text"], second["ocr_text"])


def _mostly_other_numbers(first: str | None, second: str | None) -> bool:
    a, b = _numbers(first), _numbers(second)
    return min(len(a), len(b)) >= MIN_NUMBERS and len(a & b) / min(len(a), len(b)) < SHARED_NUMBERS


def _printed_at_other_times(first: str | None, second: str | None) -> bool:
    """Both texts print a time of day and no time is in both: two transactions, not one seen twice."""
    a, b = _times_of_day(first), _times_of_day(second)
    return bool(a and b and not a & b)


def _times_of_day(text: str | None) -> set[tuple[int, str]]:
    """The times printed, as (hour, minutes): "09:05" and "9:05" are one time."""
    return {(int(hour), minutes) for hour, minutes in _TIME_OF_DAY.findall(text or "")}


def _numbers(text: str | None) -> set[str]:
    return set(_NUMBER.findall((text or "").lower()))


def _best_feature_match(inliers: dict[tuple[int, int], int]) -> dict[int, tuple[int, int]]:
    """Per picture, the pair in which its local features line up best.

    Two phone photos of different things on the same desk share the desk's features, enough to pass as
    the same object; joined into groups, a few such pairs chain whole collections together. Each picture's
    own subject is what it matches best (a phone photo matches its cover better than the desk), so a link
    by local features alone is kept only when it is the best of one of its two pictures.
    """
    best: dict[int, tuple[int, int]] = {}
    for pair, count in inliers.items():
        for index in pair:
            if count and (index not in best or count > inliers[best[index]]):
                best[index] = pair
    return best


def _groups(rows: list[dict[str, Any]], links: dict[tuple[int, int], tuple[MatchLabel, str]],
            keep: KeeperRule) -> list[DuplicateGroup]:
    parent = list(range(len(rows)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for i, j in sorted(links):
        parent[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for index in {i for pair in links for i in pair}:
        members.setdefault(root(index), []).append(index)

    strongest: dict[int, tuple[MatchLabel, str, int]] = {}  # per row: its strongest link, and to which row
    for (i, j), (label, why) in links.items():
        for index, other in ((i, j), (j, i)):
            if index not in strongest or MATCH_ORDER[label] < MATCH_ORDER[strongest[index][0]]:
                strongest[index] = (label, why, other)

    groups = []
    for indexes in members.values():
        ordered = sorted(indexes, key=lambda i: _keeper_key(rows[i], keep))
        groups.append(DuplicateGroup(keeper=_member(rows[ordered[0]]),
                                     copies=[_copy(rows, index, strongest[index]) for index in ordered[1:]]))
    groups.sort(key=lambda g: (-len(g.copies), g.keeper.path))
    return groups


def _copy(rows: list[dict[str, Any]], index: int, link: tuple[MatchLabel, str, int]) -> Member:
    label, why, other = link
    member = _member(rows[index])
    member.match, member.why = label, f"{why}, with {rows[other]['file_name']}"
    return member


def _member(row: dict[str, Any]) -> Member:
    return Member(id=row["id"], path=row["path"], file_name=row["file_name"], width=row["width"] or 0,
                  height=row["height"] or 0, file_size=row["file_size"] or 0, date=_date(row))


def _date(row: dict[str, Any]) -> str:
    if row.get("taken_at") or row.get("date"):
        return str(row.get("taken_at") or row.get("date"))
    return datetime.fromtimestamp(row["mtime"], UTC).isoformat(timespec="seconds") if row.get("mtime") else ""


def _keeper_key(row: dict[str, Any], keep: KeeperRule) -> tuple:
    """Sorts the preferred keeper first: largest resolution, earliest date, largest file, shortest path."""
    keys = {"resolution": -((row["width"] or 0) * (row["height"] or 0)), "date": _date(row) or "9999",
            "size": -(row["file_size"] or 0), "path": (len(row["path"]), row["path"])}
    return (*(keys[criterion] for criterion in keep), row["path"])


UNDO_FILE_PREFIX = "loupe-undo-"


def move_copies(table: ImageTable, boundary: CollectionBoundary, report: DuplicateReport, folder: Path,
                dry_run: bool = True) -> tuple[list[tuple[str, str]], Path | None]:
    """Move every group's copies into ``folder`` (keeping their path under their root) and drop their rows;
    with ``dry_run``, only say what would move. Returns the moves and the undo file written into ``folder``.

    Only files inside the collection move, and never into it: moved copies inside an indexed folder would
    come back at the next `loupe index`.
    """
    if boundary.contains(folder / "probe") or any(boundary.contains(_destination(folder, boundary, root / "probe"))
                                                  for root in boundary.roots):
        raise LoupeError(f"{folder} is inside the indexed collection, or the copies would land in it: move them "
                         "to a folder outside it")
    taken: set[Path] = set()
    moves = []
    for group in report.groups:
        for copy in group.copies:
            if boundary.contains(copy.path) and Path(copy.path).is_file():
                target = _free(_destination(folder, boundary, Path(copy.path)), taken)
                taken.add(target)
                moves.append((copy.path, str(target)))
    if dry_run or not moves:
        return moves, None
    folder.mkdir(parents=True, exist_ok=True)
    undo = _free(folder / f"{UNDO_FILE_PREFIX}{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json", set())
    done: list[tuple[str, str]] = []
    try:
        for source, target in moves:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)
            done.append((source, target))
    finally:  # written even when a move fails, so every move made can be undone
        undo.write_text(json.dumps({"index": str(table.location), "moves": [
            {"from": source, "to": target} for source, target in done]}, indent=2), encoding="utf-8")
        table.delete_paths([source for source, _ in done])
    return done, undo


def undo_moves(undo: Path) -> list[tuple[str, str]]:
    """Move files back as an undo file lists them; a file whose old place is taken again stays, named."""
    try:
        moves = json.loads(undo.read_text(encoding="utf-8"))["moves"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LoupeError(f"{undo}: not a Loupe undo file ({exc})") from exc
    restored = []
    for move in moves:
        source, target = Path(move["from"]), Path(move["to"])
        if source.exists() or not target.is_file():
            continue
        source.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target), str(source))
        restored.append((str(target), str(source)))
    return restored


def _free(path: Path, taken: set[Path]) -> Path:
    """``path``, or ``name (2).ext``, ``name (3).ext``, ...: a move never replaces a file."""
    candidate, number = path, 1
    while candidate in taken or candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem} ({number}){path.suffix}")
    return candidate


def _destination(folder: Path, boundary: CollectionBoundary, path: Path) -> Path:
    """``folder/<root name>/<path under the root>``: the copy keeps where it came from, visibly."""
    real = Path(os.path.realpath(path))
    for root in boundary.roots:
        real_root = Path(os.path.realpath(root))
        if real.is_relative_to(real_root) and real != real_root:
            return folder / real_root.name / real.relative_to(real_root)
    return folder / real.name
