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

When the first look finds no copy, a second look tries harder, because a
phone photo often shows the object small, tilted or half covered among other
things: it embeds crops of the picture (the object may fill only one of them)
to find more candidates, and verifies the best of them with more keypoints
taken from the query at its full size. If that still finds no copy but one
candidate is clearly ahead of the rest, it is shown as a "possible match",
which the answer calls not confident.

Anything below these is not returned: an empty list says nothing resembling
the query is indexed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from loupe.store.image_table import ImageTable, sql_string
from loupe.store.schema import RECORD_COLUMNS
from loupe.tools.image_file import ImageFile, hamming_distances, open_image
from loupe.tools.local_features import (
    SAME_OBJECT_INLIERS,
    SECOND_LOOK_KEYPOINTS,
    SECOND_LOOK_MAX_SIDE,
    SOME_OBJECT_INLIERS,
    LocalFeatures,
    extract_features,
    inliers_of_pairs,
)
from loupe.tools.models import Models
from loupe.tools.records import MATCH_ORDER, MatchLabel, SearchResult, ToolName, attach_thumbnails, record_from_row

NEAR_DUPLICATE_PHASH_BITS = 6  # resized/recompressed copies measured at most 4 of 64 bits apart
VECTOR_CANDIDATES = 50  # nearest rows by embedding that are considered at all
# All of them get geometric verification (1.2-3 ms a pair on one core): on SMVS the phone photo's own cover
# ranks anywhere up to 49th by embedding, so fewer would lose it.
VERIFY_CANDIDATES = 50
FEATURE_COLUMNS = ["orb_keypoints", "orb_descriptors"]
# The second look (see the module docstring). Crops: the centre at 60% of each side, and a 3 x 3 grid at 50%
# (an object that fills a tenth of the frame fills a third of one of them); each adds its nearest rows.
CENTRE_CROP, GRID_CROP = 0.6, 0.5
CROP_CANDIDATES = 10
SECOND_LOOK_VERIFY = 30  # the candidates verified again, best by whole-picture or crop cosine
# Thresholds of the second look's inlier counts, chosen on hard_photos' half A and checked on half B
# (evals/hard_photos.py prints both): more query keypoints line up more by chance with a wrong picture.
SECOND_LOOK_SAME_OBJECT = 35  # no wrong picture reached it on either half (a Holidays photo reached 31 on E63)
POSSIBLE_INLIERS = 20  # a possible match: at least this many inliers ...
POSSIBLE_MARGIN = 1.5  # ... and this many times the next best candidate's (counted from COUNTED_INLIERS)
COUNTED_INLIERS = 8  # below this a count is 0, also for the runner-up


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
    image: Image.Image | None = None  # the decoded picture, for the second look (None for a stored record)

    def hash_distances(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per stored hash: the fewest bits apart from this picture turned any way, and the turn (degrees)."""
        distances = np.stack([hamming_distances(h, hashes) for h in (self.phash, *self.rotated_phashes)])
        turn = distances.argmin(axis=0)
        return distances[turn, np.arange(len(hashes))], turn * 90


def query_from_file(models: Models, image: ImageFile) -> QueryImage:
    vector = models.image_encoder.embed_images([image.image]).vectors[0]
    return QueryImage(label=image.path.name, vector=vector, features=extract_features(image.image),
                      sha256=image.sha256, pixel_sha256=image.pixel_sha256, phash=image.phash,
                      rotated_phashes=image.rotated_phashes, image=image.image)


def query_from_record(table: ImageTable, record_id: str) -> QueryImage:
    row = table.record(record_id, ["file_name", "sha256", "pixel_sha256", "phash", "rotated_phashes",
                                   "image_vector", "orb_keypoints", "orb_descriptors"])
    return QueryImage(label=row["file_name"], vector=np.asarray(row["image_vector"], np.float32),
                      features=_stored_features(row),
                      sha256=row["sha256"], pixel_sha256=row["pixel_sha256"], phash=row["phash"],
                      rotated_phashes=tuple(row["rotated_phashes"] or ()), record_id=record_id)


def load_query(table: ImageTable, models: Models, image: str | Path | bytes | None = None,
               record_id: str | None = None) -> QueryImage:
    """The query from a file path, uploaded bytes or a record id (exactly one)."""
    if record_id:
        return query_from_record(table, record_id)
    return query_from_file(models, open_image(image, models.settings.max_pixels))


def image_search(table: ImageTable, models: Models, image: str | Path | bytes | None = None,
                 record_id: str | None = None, k: int = 10, where: str | None = None,
                 second_look: bool = True) -> SearchResult:
    """Ranked records that show the query image, a copy of it, or a similar picture (see the module docstring);
    ``second_look=False`` stops after the first look (the evaluation compares the two)."""
    start = time.perf_counter()
    query = load_query(table, models, image, record_id)
    encoder = models.image_encoder
    candidates = _candidates(table, query, where)

    verified = sorted(candidates.values(), key=lambda r: -r["cosine"])[:VERIFY_CANDIDATES]
    inliers_of = verify(query.features, {row["id"]: _stored_features(row) for row in verified})
    labels = {row["id"]: _label(query, row, inliers_of.get(row["id"], 0), encoder.similar_cosine,
                                encoder.near_duplicate_cosine) for row in candidates.values()}
    looked_twice = second_look and query.image is not None and not any(
        label in (MatchLabel.IDENTICAL, MatchLabel.NEAR_DUPLICATE) for label, _ in labels.values())
    if looked_twice:
        inliers_of.update(_second_look(table, models, query, candidates, labels, where))

    records = []
    for row in candidates.values():
        label, why = labels[row["id"]]
        if label is None:
            continue
        score = 1.0 if label == MatchLabel.IDENTICAL else max(row["cosine"], 0.0)
        by_inliers = -inliers_of.get(row["id"], 0) if label in (MatchLabel.NEAR_DUPLICATE, MatchLabel.POSSIBLE) else 0
        records.append((MATCH_ORDER[label], by_inliers, -row["cosine"], record_from_row(row, score, label, why)))
    records.sort(key=lambda item: item[:3])
    matched = [item[3] for item in records[:k]]
    attach_thumbnails(table, matched)
    note = "" if matched else (
        f"nothing in the {table.count()} indexed images resembles {query.label} "
        f"(no embedding cosine above {encoder.similar_cosine}, no matching local features"
        + (", also on a closer look at its parts)" if looked_twice else ")")
    )
    return SearchResult(tool=ToolName.IMAGE_SEARCH, query={"image": query.label, "record_id": query.record_id,
                                                    "k": k, "where": where or ""},
                        records=matched, seconds=time.perf_counter() - start, note=note)


def _stored_features(row: dict) -> LocalFeatures:
    return LocalFeatures.from_bytes(row["orb_keypoints"], row["orb_descriptors"])


def crops(image: Image.Image) -> list[Image.Image]:
    """The centre and a 3 x 3 grid of overlapping windows (see CENTRE_CROP, GRID_CROP)."""
    width, height = image.size
    boxes = [((1 - CENTRE_CROP) / 2, (1 - CENTRE_CROP) / 2, CENTRE_CROP)]
    boxes += [(fx * (1 - GRID_CROP), fy * (1 - GRID_CROP), GRID_CROP) for fy in (0, 0.5, 1) for fx in (0, 0.5, 1)]
    return [image.crop((int(x * width), int(y * height), int((x + side) * width), int((y + side) * height)))
            for x, y, side in boxes]


def _second_look(table: ImageTable, models: Models, query: QueryImage, candidates: dict[str, dict],
                 labels: dict[str, tuple[MatchLabel | None, str]], where: str | None) -> dict[str, int]:
    """Add the crops' nearest rows to ``candidates``, verify the best with more query keypoints, and relabel
    ``labels`` in place: a copy found now, else at most one possible match. Returns the new inlier counts."""
    crop_vectors = models.image_encoder.embed_images(crops(query.image)).vectors
    for row_id, row in table.nearest_to_any("image_vector", crop_vectors, CROP_CANDIDATES, where,
                                            extra_columns=[*FEATURE_COLUMNS, "image_vector"]).items():
        if row_id == query.record_id:
            continue
        if row_id not in candidates:
            row["cosine"] = float(np.asarray(row["image_vector"], np.float32) @ query.vector)
            bits, turns = query.hash_distances(np.array([row["phash"]], np.int64))
            row["phash_bits"], row["turned"] = int(bits[0]), int(turns[0])
            candidates[row_id] = row
            labels[row_id] = _label(query, row, 0, models.image_encoder.similar_cosine,
                                    models.image_encoder.near_duplicate_cosine)
        candidates[row_id]["crop_cosine"] = 1.0 - float(row["_distance"])
    best = sorted(candidates.values(), key=lambda r: -max(r["cosine"], r.get("crop_cosine", -1.0)))
    features = extract_features(query.image, SECOND_LOOK_MAX_SIDE, SECOND_LOOK_KEYPOINTS)
    inliers = verify(features, {row["id"]: _stored_features(row) for row in best[:SECOND_LOOK_VERIFY]},
                     least=COUNTED_INLIERS)
    ranked = sorted(inliers.items(), key=lambda item: -item[1])
    for row_id, count in ranked:
        if count >= SECOND_LOOK_SAME_OBJECT:
            labels[row_id] = (MatchLabel.NEAR_DUPLICATE, f"same object, found on a closer look: {count} local "
                              f"features line up; embedding cosine {candidates[row_id]['cosine']:.2f}")
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    if ranked and SECOND_LOOK_SAME_OBJECT > ranked[0][1] >= max(POSSIBLE_INLIERS, POSSIBLE_MARGIN * runner_up):
        row_id, count = ranked[0]
        labels[row_id] = (MatchLabel.POSSIBLE, f"possibly the same object, not confident: {count} local "
                          f"features line up (the next best picture {runner_up}); embedding cosine "
                          f"{candidates[row_id]['cosine']:.2f}")
    return {row_id: count for row_id, count in ranked if count}


def verify(query: LocalFeatures, candidates: dict[str, LocalFeatures],
           least: int = SOME_OBJECT_INLIERS) -> dict[str, int]:
    """Inliers of each candidate (0 below ``least``), the pairs spread over the cores."""
    return dict(zip(candidates, inliers_of_pairs([(query, features) for features in candidates.values()], least)))


def _candidates(table: ImageTable, query: QueryImage, where: str | None) -> dict[str, dict]:
    """Rows by embedding, by content hash and by perceptual hash, each with its cosine and hash distance.

    At most two reads: the nearest rows by embedding and, where that missed any, the rows whose hashes match,
    each with the local features that verification needs, so no row is fetched twice (the perceptual hashes
    come from the table's cache).
    """
    rows = {row["id"]: row for row in table.vector_search("image_vector", query.vector, VECTOR_CANDIDATES, where,
                                                         extra_columns=FEATURE_COLUMNS)}
    for row in rows.values():
        row["cosine"] = 1.0 - float(row["_distance"])

    ids, hashes = table.perceptual_hashes()
    close = [ids[i] for i in np.flatnonzero(query.hash_distances(hashes)[0] <= NEAR_DUPLICATE_PHASH_BITS)]
    # The same bytes or pixels give the same perceptual hash, so every exact copy is among ``close``: only the
    # close rows the embedding search missed are read (none, most of the time), by content hash too past 200.
    missing = [row_id for row_id in close if row_id not in rows][:200]
    conditions = [f"id IN ({', '.join(sql_string(i) for i in missing)})"] if missing else []
    if len(close) > 200:  # too many to name them all: the exact copies by their content hashes as well
        conditions.append(f"sha256 = {sql_string(query.sha256)} OR pixel_sha256 = {sql_string(query.pixel_sha256)}")
    extra = table.find(f"({' OR '.join(conditions)})" + (f" AND ({where})" if where else ""), limit=200,
                       columns=[*RECORD_COLUMNS, *FEATURE_COLUMNS, "image_vector"]) if conditions else []
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
