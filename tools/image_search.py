"""The image_search tool: which records show this picture, a copy of it, or something like it.

Three signals, cheapest first, decide both the ranking and the match label:

* identical: the same bytes (SHA-256) or the same decoded pixels (a copy whose
  EXIF was stripped, a PNG re-saved). Not "perceptual hash distance 0": a
  resized or heavily recompressed copy keeps its perceptual hash too, and
  that is a near-duplicate.
* near-duplicate: perceptual hash within a few bits (resized, recompressed),
  geometric verification of local features (cropped, rotated, a phone photo
  of the same object), or a very high embedding cosine.
* similar: embedding cosine above the encoder's calibrated threshold.

Anything below "similar" is not returned: an empty list says nothing
resembling the query is indexed.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from store.image_table import ImageTable, sql_string
from store.schema import RECORD_COLUMNS
from tools.image_file import ImageFile, hamming_distances, open_image
from tools.local_features import (
    SAME_OBJECT_INLIERS,
    SOME_OBJECT_INLIERS,
    LocalFeatures,
    count_inliers,
    extract_features,
)
from tools.models import Models
from tools.records import MATCH_ORDER, MatchLabel, SearchResult, ToolName, attach_thumbnails, record_from_row

NEAR_DUPLICATE_PHASH_BITS = 6  # resized/recompressed copies measured at most 4 of 64 bits apart
VECTOR_CANDIDATES = 50  # nearest rows by embedding that are considered at all
# All of them get geometric verification (1.2-3 ms a pair on one core): on SMVS the phone photo's own cover
# ranks anywhere up to 49th by embedding, so fewer would lose it.
VERIFY_CANDIDATES = 50
FEATURE_COLUMNS = ["orb_keypoints", "orb_descriptors"]


@dataclass(frozen=True)
class QueryImage:
    """What image_search compares: from a file, uploaded bytes, or a stored record."""

    label: str
    vector: np.ndarray
    features: LocalFeatures
    sha256: str
    pixel_sha256: str
    phash: int
    rotated_phashes: tuple[int, ...]  # the picture turned 90, 180, 270 degrees (empty: a row from before them)
    record_id: str = ""  # set when the query is a stored record ("more like #3")

    def hash_distances(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per stored hash: the fewest bits apart from this picture turned any way, and the turn (degrees)."""
        distances = np.stack([hamming_distances(h, hashes) for h in (self.phash, *self.rotated_phashes)])
        turn = distances.argmin(axis=0)
        return distances[turn, np.arange(len(hashes))], turn * 90


def query_from_file(models: Models, image: ImageFile) -> QueryImage:
    vector = models.image_encoder.embed_images([image.image]).vectors[0]
    return QueryImage(label=image.path.name, vector=vector, features=extract_features(image.image),
                      sha256=image.sha256, pixel_sha256=image.pixel_sha256, phash=image.phash,
                      rotated_phashes=image.rotated_phashes)


def query_from_record(table: ImageTable, record_id: str) -> QueryImage:
    row = table.record(record_id, ["file_name", "sha256", "pixel_sha256", "phash", "rotated_phashes",
                                   "image_vector", "orb_keypoints", "orb_descriptors"])
    return QueryImage(label=row["file_name"], vector=np.asarray(row["image_vector"], np.float32),
                      features=LocalFeatures.from_bytes(row["orb_keypoints"], row["orb_descriptors"]),
                      sha256=row["sha256"], pixel_sha256=row["pixel_sha256"], phash=row["phash"],
                      rotated_phashes=tuple(row["rotated_phashes"] or ()), record_id=record_id)


def load_query(table: ImageTable, models: Models, image: str | Path | bytes | None = None,
               record_id: str | None = None) -> QueryImage:
    """The query from a file path, uploaded bytes or a record id (exactly one)."""
    if record_id:
        return query_from_record(table, record_id)
    return query_from_file(models, open_image(image, models.settings.max_pixels))


def image_search(table: ImageTable, models: Models, image: str | Path | bytes | None = None,
                 record_id: str | None = None, k: int = 10, where: str | None = None) -> SearchResult:
    """Ranked records that show the query image, a copy of it, or a similar picture."""
    start = time.perf_counter()
    query = load_query(table, models, image, record_id)
    encoder = models.image_encoder
    candidates = _candidates(table, query, where)

    verified = sorted(candidates.values(), key=lambda r: -r["cosine"])[:VERIFY_CANDIDATES]
    inliers_of = verify(query.features, {row["id"]: LocalFeatures.from_bytes(row["orb_keypoints"],
                                                                         row["orb_descriptors"]) for row in verified})

    records = []
    for row in candidates.values():
        inliers = inliers_of.get(row["id"], 0)
        label, why = _label(query, row, inliers, encoder.similar_cosine, encoder.near_duplicate_cosine)
        if label is None:
            continue
        record = record_from_row(row, 1.0 if label == MatchLabel.IDENTICAL else max(row["cosine"], 0.0), label, why)
        by_inliers = -inliers if label == MatchLabel.NEAR_DUPLICATE else 0
        records.append((MATCH_ORDER[label], by_inliers, -row["cosine"], record))
    records.sort(key=lambda item: item[:3])
    matched = [item[3] for item in records[:k]]
    attach_thumbnails(table, matched)
    note = "" if matched else (
        f"nothing in the {table.count()} indexed images resembles {query.label} "
        f"(no embedding cosine above {encoder.similar_cosine}, no matching local features)"
    )
    return SearchResult(tool=ToolName.IMAGE_SEARCH, query={"image": query.label, "record_id": query.record_id,
                                                    "k": k, "where": where or ""},
                        records=matched, seconds=time.perf_counter() - start, note=note)


def verify(query: LocalFeatures, candidates: dict[str, LocalFeatures]) -> dict[str, int]:
    """Inliers of each candidate, the pairs spread over the cores: OpenCV's matcher and RANSAC release the
    GIL, and each pair runs single-threaded (tools/process.py), so threads are what uses a second core."""
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 8)) as pool:
        counts = pool.map(lambda features: count_inliers(query, features), candidates.values())
        return dict(zip(candidates, counts))


def _candidates(table: ImageTable, query: QueryImage, where: str | None) -> dict[str, dict]:
    """Rows by embedding, by content hash and by perceptual hash, each with its cosine and hash distance.

    Two reads: the nearest rows by embedding and the rows whose hashes match, each with the local features
    that verification needs, so no row is fetched twice (the perceptual hashes come from the table's cache).
    """
    rows = {row["id"]: row for row in table.vector_search("image_vector", query.vector, VECTOR_CANDIDATES, where,
                                                         extra_columns=FEATURE_COLUMNS)}
    for row in rows.values():
        row["cosine"] = 1.0 - float(row["_distance"])

    hash_filter = f"sha256 = {sql_string(query.sha256)} OR pixel_sha256 = {sql_string(query.pixel_sha256)}"
    ids, hashes = table.perceptual_hashes()
    close = [ids[i] for i in np.flatnonzero(query.hash_distances(hashes)[0] <= NEAR_DUPLICATE_PHASH_BITS)]
    if close:
        hash_filter += " OR id IN (" + ", ".join(sql_string(i) for i in close[:200]) + ")"
    extra = table.find(f"({hash_filter})" + (f" AND ({where})" if where else ""), limit=200,
                       columns=[*RECORD_COLUMNS, *FEATURE_COLUMNS, "image_vector"])
    for row in extra:
        if row["id"] not in rows:
            row["cosine"] = float(np.asarray(row.pop("image_vector"), np.float32) @ query.vector)
            rows[row["id"]] = row

    rows.pop(query.record_id, None)  # "more like #3" does not return #3 itself
    if rows:
        bits, turns = query.hash_distances(np.array([row["phash"] for row in rows.values()], np.int64))
        for row, row_bits, turn in zip(rows.values(), bits, turns):
            row["phash_bits"], row["turned"] = int(row_bits), int(turn)
    return rows


def _label(query: QueryImage, row: dict, inliers: int, similar: float,
           near_duplicate: float) -> tuple[MatchLabel | None, str]:
    cosine = row["cosine"]
    if row["sha256"] == query.sha256:
        return MatchLabel.IDENTICAL, "same file content (SHA-256)"
    if row["pixel_sha256"] == query.pixel_sha256:
        return MatchLabel.IDENTICAL, "same pixels, different file (metadata changed or re-saved losslessly)"
    return copy_label(row["phash_bits"], row.get("turned", 0), inliers, cosine, similar, near_duplicate)


def copy_label(bits: int, turned: int, inliers: int, cosine: float, similar: float,
               near_duplicate: float) -> tuple[MatchLabel | None, str]:
    """The label of a picture that is not the same file or pixels, from the three signals that image_search
    and the duplicate report (tools/duplicates.py) both read, and the reason in words."""
    if bits <= NEAR_DUPLICATE_PHASH_BITS and turned:
        return MatchLabel.NEAR_DUPLICATE, (f"perceptual hash {bits} of 64 bits apart once turned {turned} degrees "
                                           "(a rotated copy)")
    if bits <= NEAR_DUPLICATE_PHASH_BITS:
        return MatchLabel.NEAR_DUPLICATE, f"perceptual hash {bits} of 64 bits apart (resized or recompressed copy)"
    if inliers >= SAME_OBJECT_INLIERS:
        return MatchLabel.NEAR_DUPLICATE, (f"same object: {inliers} local features line up (crop, rotation or "
                                f"new photo of it); embedding cosine {cosine:.2f}")
    if cosine >= near_duplicate:
        return MatchLabel.NEAR_DUPLICATE, f"embedding cosine {cosine:.2f} (at least {near_duplicate})"
    if cosine >= similar:
        return MatchLabel.SIMILAR, f"embedding cosine {cosine:.2f}"
    if inliers >= SOME_OBJECT_INLIERS:
        return MatchLabel.SIMILAR, (f"possibly the same object: {inliers} local features line up; "
                                    f"embedding cosine {cosine:.2f}")
    return None, ""
