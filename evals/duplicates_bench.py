"""How well and how fast `loupe duplicates` finds copies: pair precision and recall per kind of copy.

    python -m loupe.evals.duplicates_bench [--originals 60] [--rows 10000,100000]
    python -m loupe.evals.duplicates_bench --store-only --rows 10000,100000     (the synthetic rows alone)

The collection is built from ../shared/datasets: Flickr8k photos and SROIE receipts, each with one copy of every kind
(exact bytes, metadata changed, resized to 50%, JPEG quality 30, a 10% crop, turned 90 degrees, a
screenshot-like border), the real near-duplicates the datasets already hold (Holidays groups: the same
scene photographed again; SMVS: phone photos of the same DVD cover and the cover itself), and unrelated
Flickr8k photos and receipts. It is indexed by the real indexer. A pair counts as found when both images land in one
group. The baseline is imagededup-style hashing alone: a pair is a duplicate when the perceptual hashes
are at most 10 bits apart (imagededup's default for PHash), printed side by side.

The store part at 10k and 100k rows uses synthetic rows (random vectors and hashes, 1% of them planted
near copies), so it times candidate search and grouping; verification of local features is timed on the
real collection, where its pairs per row are printed.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import random
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from loupe.evals.hostile_corpus import exif_block
from loupe.evals.paths import DATASETS
from loupe.api import Collection
from loupe.base.config import load_settings
from loupe.store.image_table import ImageTable
from loupe.store.schema import IndexInfo
from loupe.tools.image_file import hamming_distances

COPY_KINDS = ("exact", "metadata", "resized", "quality30", "crop10", "turned90", "border")
BASELINE_BITS = 10


def make_copy(source: Path, kind: str) -> bytes:
    """One copy of ``source`` of the given kind, as file bytes."""
    data = source.read_bytes()
    if kind == "exact":
        return data
    if kind == "metadata":  # an EXIF block added after the JPEG start: other bytes, the same pixels
        block = exif_block((0x010F, 2, b"Loupe bench\x00"))
        return data[:2] + b"\xff\xe1" + (len(block) + 2).to_bytes(2, "big") + block + data[2:]
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    quality = 90
    if kind == "resized":
        image = image.resize((w // 2, h // 2), Image.Resampling.LANCZOS)
    elif kind == "quality30":
        quality = 30
    elif kind == "crop10":
        image = image.crop((w // 20, h // 20, w - w // 20, h - h // 20))
    elif kind == "turned90":
        image = image.rotate(90, expand=True)
    elif kind == "border":  # a phone screenshot: dark bars above and below, a light status bar
        framed = Image.new("RGB", (w + 40, h + 260), (18, 18, 18))
        framed.paste((235, 235, 235), (0, 0, w + 40, 40))
        framed.paste(image, (20, 120))
        image = framed
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_with_copies(folder: Path, sources: list[Path], kinds: tuple[str, ...],
                      alone: list[Path] = ()) -> list[tuple[Path, Path, str]]:
    """Each source and one copy of it per kind (``<stem>-<kind>.jpg``), and the ``alone`` files as they are,
    into ``folder``; returns (original, copy, kind) for every copy."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        original = folder / source.name
        shutil.copyfile(source, original)
        for kind in kinds:
            copy = folder / f"{source.stem}-{kind}.jpg"
            copy.write_bytes(make_copy(source, kind))
            written.append((original, copy, kind))
    for source in alone:
        shutil.copyfile(source, folder / source.name)
    return written


def build_collection(folder: Path, originals: int, unrelated: int, holidays_groups: int,
                     covers: int, receipts: int, held_out: bool = False, skip: int = 0) -> dict[str, list[set[str]]]:
    """Write the collection; returns the true groups (file paths) per kind: per copy kind, the original with
    that copy; "holidays re-shot" and "smvs phone photo", the dataset's own groups. ``held_out`` takes every
    image from the other end of each dataset: the rules were written looking at the first end only."""
    flickr = sorted((DATASETS / "flickr8k" / "images").glob("*.jpg"))
    random.Random(0).shuffle(flickr)
    flickr = (flickr[::-1] if held_out else flickr)[skip:]
    scans = sorted((DATASETS / "sroie" / "images").glob("*.jpg"), reverse=held_out)[skip:]
    truth: dict[str, list[set[str]]] = defaultdict(list)
    for name, sources, copied, alone in (("flickr", flickr, originals, unrelated),
                                         ("receipts", scans, receipts, receipts)):
        for original, copy, kind in write_with_copies(folder / name, sources[:copied], COPY_KINDS,
                                                      sources[copied:copied + alone]):
            truth[kind].append({str(original), str(copy)})

    (folder / "holidays").mkdir()
    groups = json.loads((DATASETS / "holidays" / "groundtruth.json").read_text())
    for query, relevant in (list(groups.items())[::-1] if held_out else list(groups.items()))[skip:][:holidays_groups]:
        members = set()
        for name in [query, *relevant]:
            shutil.copyfile(DATASETS / "holidays" / "images" / name, folder / "holidays" / name)
            members.add(str(folder / "holidays" / name))
        truth["holidays re-shot"].append(members)

    (folder / "smvs").mkdir()
    by_cover: dict[str, set[str]] = defaultdict(set)
    entries = json.loads((DATASETS / "smvs_dvd" / "groundtruth.json").read_text())
    for entry in sorted(entries, key=lambda e: e["relevant"][0], reverse=held_out):
        cover = entry["relevant"][0]
        if len(by_cover) >= covers and cover not in by_cover:
            continue
        for name in (cover, entry["query"]):
            target = folder / "smvs" / name.replace("/", "_")
            shutil.copyfile(DATASETS / "smvs_dvd" / name, target)
            by_cover[cover].add(str(target))
    truth["smvs phone photo"].extend(by_cover.values())
    return dict(truth)


def pairs_of(groups: list[set[str]]) -> set[frozenset[str]]:
    return {frozenset(pair) for group in groups for pair in itertools.combinations(sorted(group), 2)}


def families(truth: dict[str, list[set[str]]]) -> list[set[str]]:
    """The true groups: an original with all its copies, and each dataset group."""
    merged: dict[str, set[str]] = {}
    for groups in truth.values():
        for group in groups:
            family = set().union(group, *(merged.get(path, set()) for path in group))
            for path in family:
                merged[path] = family
    return list({id(family): family for family in merged.values()}.values())


def score(found: set[frozenset[str]], truth: dict[str, list[set[str]]]) -> dict[str, tuple[float, float, int]]:
    """Per kind: (precision, recall, true pairs). Recall: of that kind's pairs (an original and its copy of
    that kind; the pairs of a dataset group), how many were found. Precision: of the found pairs that touch
    that kind's copies, how many lie inside one true group (two copies of one original are a true pair)."""
    every_true = pairs_of(families(truth))
    results = {}
    for kind, groups in truth.items():
        true = pairs_of(groups)
        touched = set().union(*groups)
        if kind in COPY_KINDS:  # only the copy itself, not its original (which every kind shares)
            touched = {path for group in groups for path in group if f"-{kind}." in path}
        near = {pair for pair in found if pair & touched}
        precision = len(near & every_true) / len(near) if near else 1.0
        results[kind] = (precision, len(found & true) / len(true) if true else 1.0, len(true))
    results["all pairs"] = (len(found & every_true) / len(found) if found else 1.0,
                      len(found & every_true) / len(every_true), len(every_true))
    return results


def same_bytes(table: ImageTable, known: list[set[str]]) -> list[set[str]]:
    """Files the datasets themselves hold twice (SROIE has a few byte-identical receipts): true duplicates
    too, though no copy was made of them."""
    family_of = {path: index for index, group in enumerate(known) for path in group}
    by_hash: dict[str, set[str]] = defaultdict(set)
    for row in table.find("true", limit=table.count(), columns=["path", "sha256"]):
        by_hash[row["sha256"]].add(row["path"])
    return [paths for paths in by_hash.values() if len({family_of.get(p, p) for p in paths}) > 1]


def baseline_pairs(table: ImageTable) -> set[frozenset[str]]:
    """imagededup-style: every pair of perceptual hashes at most BASELINE_BITS apart (all pairs compared)."""
    rows = table.find("true", limit=table.count(), columns=["path", "phash"])
    hashes = np.array([row["phash"] for row in rows], np.int64)
    found = set()
    for i, row in enumerate(rows):
        for j in np.flatnonzero(hamming_distances(row["phash"], hashes[i + 1:]) <= BASELINE_BITS):
            found.add(frozenset((row["path"], rows[i + 1 + j]["path"])))
    return found


def store_timing(index_dir: Path, rows: int, similar_cosine: float,
                 near_duplicate_cosine: float) -> tuple[float, int, int, dict[str, float]]:
    """Seconds to group ``rows`` synthetic rows, the groups found, the planted copies (1% of rows) and the
    seconds per stage."""
    from loupe.evals.bench import synthetic_rows
    from loupe.tools.duplicates import find_duplicates

    info = IndexInfo("synthetic", 1280, "synthetic", 384, "none", "none")
    table = ImageTable.open_or_create(index_dir, info)
    rng = np.random.default_rng(1)
    planted = 0
    for start in range(0, rows, 5000):
        batch = synthetic_rows(start, min(5000, rows - start), info, rng)
        for row in batch:
            row["rotated_phashes"] = [int(v) for v in rng.integers(-2**63, 2**63 - 1, 3)]
        for offset in range(0, len(batch) - 1, 100):  # every 100th row: a near copy of the row before it
            original, copy = batch[offset], batch[offset + 1]
            vector = original["image_vector"] + 0.25 * rng.standard_normal(info.image_dim).astype(np.float32) \
                / np.sqrt(info.image_dim)
            copy["image_vector"] = (vector / np.linalg.norm(vector)).astype(np.float32)
            copy["phash"] = original["phash"] ^ 0b101
            planted += 1
        table.append(batch)
    start = time.perf_counter()
    report = find_duplicates(table, similar_cosine, near_duplicate_cosine)
    return time.perf_counter() - start, len(report.groups), planted, report.stage_seconds


def print_store_timings(sizes: list[int], scratch: Path, similar_cosine: float, near_duplicate_cosine: float) -> None:
    if sizes:
        print("\n| synthetic rows | seconds | groups found | planted copies | seconds per stage |")
        print("|---|---|---|---|---|")
    for rows in sizes:
        seconds, groups, planted, stages = store_timing(scratch / f"store-{rows}", rows, similar_cosine,
                                                        near_duplicate_cosine)
        print(f"| {rows} | {seconds:.1f} | {groups} | {planted} | "
              + ", ".join(f"{stage} {value:.1f}" for stage, value in stages.items()) + " |", flush=True)


def _print_false_links(report, true_groups: list[set[str]], most: int = 10) -> None:
    """The copies linked into a group they do not belong to, with the reason given: what to look at first."""
    family_of = {path: index for index, group in enumerate(true_groups) for path in group}
    wrong = [(group.keeper.path, copy) for group in report.groups for copy in group.copies
             if family_of.get(copy.path, -1) != family_of.get(group.keeper.path, -2)]
    for keeper, copy in wrong[:most]:
        print(f"  not a copy of {Path(keeper).name}: {Path(copy.path).name} ({copy.why})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=60, help="Flickr8k originals, each with every copy kind")
    parser.add_argument("--unrelated", type=int, default=200, help="unrelated Flickr8k photos")
    parser.add_argument("--receipts", type=int, default=20,
                        help="SROIE receipts, each with every copy kind, and as many other receipts alone")
    parser.add_argument("--holidays-groups", type=int, default=40)
    parser.add_argument("--covers", type=int, default=20, help="SMVS covers, each with its phone photos")
    parser.add_argument("--rows", default="10000,100000", help="synthetic store sizes to time ('' for none)")
    parser.add_argument("--held-out", action="store_true", help="the images at the other end of each dataset")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N images of each dataset (a "
                                                                 "third sample between the two ends)")
    parser.add_argument("--workdir", type=Path, help="keep the collection and its index here (a re-run with the "
                                                     "same arguments reuses them); default: a temporary folder")
    parser.add_argument("--store-only", action="store_true", help="only the synthetic rows (--rows)")
    args = parser.parse_args()

    sizes = [int(n) for n in args.rows.split(",") if n.strip()]
    with tempfile.TemporaryDirectory() as temporary:
        scratch = args.workdir or Path(temporary)
        if args.store_only:
            encoder = Collection(load_settings(None)).toolbox.models.image_encoder
            print_store_timings(sizes, scratch, encoder.similar_cosine, encoder.near_duplicate_cosine)
            return
        folder = scratch / "collection"
        truth_file = scratch / "truth.json"
        if truth_file.is_file():
            truth = {kind: [set(g) for g in groups] for kind, groups in json.loads(truth_file.read_text()).items()}
        else:
            truth = build_collection(folder, args.originals, args.unrelated, args.holidays_groups, args.covers,
                                     args.receipts, args.held_out, args.skip)
            truth_file.write_text(json.dumps({kind: [sorted(g) for g in groups] for kind, groups in truth.items()}))
        collection = Collection(load_settings(None).with_index_dir(Path(scratch) / "index"))
        start = time.perf_counter()
        indexed = collection.index([folder])
        print(f"collection: {indexed.added + indexed.unchanged} images, indexed in {time.perf_counter() - start:.0f} s "
              f"({len(indexed.problems)} problems)")
        truth["same bytes in the dataset"] = same_bytes(collection.toolbox.table, families(truth))
        report = collection.duplicates()
        _print_false_links(report, families(truth))
        found = pairs_of([{m.path for m in group.members} for group in report.groups])
        baseline = baseline_pairs(collection.toolbox.table)
        ours, theirs = score(found, truth), score(baseline, truth)
        print(f"loupe duplicates: {len(report.groups)} groups, {report.copies} copies, {report.pairs_checked} "
              f"candidate pairs of {report.rows * (report.rows - 1) // 2} ({report.pairs_checked / report.rows:.1f} "
              f"per row; {report.pairs_verified} verified by local features), {report.seconds:.2f} s ("
              + ", ".join(f"{k} {v:.2f}" for k, v in report.stage_seconds.items())
              + ")\n")
        print(f"| kind | true pairs | loupe precision | loupe recall | phash <= {BASELINE_BITS} bits precision "
              "| recall |")
        print("|---|---|---|---|---|---|")
        for kind in [kind for kind in truth if truth[kind]] + ["all pairs"]:
            (p, r, n), (bp, br, _) = ours[kind], theirs[kind]
            print(f"| {kind} | {n} | {p:.3f} | {r:.3f} | {bp:.3f} | {br:.3f} |")
        encoder = collection.toolbox.models.image_encoder
        print_store_timings(sizes, scratch, encoder.similar_cosine, encoder.near_duplicate_cosine)


if __name__ == "__main__":
    main()
