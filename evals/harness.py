"""``loupe eval``: run a query set, score it, and compare pipelines side by side.

A query set (see evals/querysets/build.py) names the collection to index and the
queries with their relevant files (a list, or {file: grade} for graded
relevance). Each pipeline ranks the whole collection per query:

* ``loupe`` - image_search (with its thresholds and verification) or
  text_search, with the configured models;
* ``<image encoder>[@<weights>]`` - the same, with another image encoder, e.g.
  ``efficientnet-lite0@tuned.pt`` (from ``loupe train-encoder``) or
  ``open_clip:ViT-B-32@clip.bin``; each gets its own index, built once;
* ``phash`` - a baseline that needs no model: files ranked by perceptual-hash
  distance to the query image (image queries only).

Output: a table on the terminal, and ``<out>/<set>.json``, ``<set>.md``,
``<set>-pr.png`` (interpolated precision-recall curve) and ``<set>-ap.png``
(per-query AP histogram).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
from loupe.evals.query_files import read_query_file
from loupe.base.config import Settings
from loupe.base.errors import ConfigError, LoupeError
from loupe.indexer import Indexer
from loupe.store.image_table import ImageTable
from loupe.tools.boundary import ChosenFile
from loupe.tools.image_file import hamming_distances, read_image
from loupe.tools.models import Models
from loupe.tools.models.registry import ModelKind, parse
from loupe.tools.toolbox import Toolbox

RECALL_POINTS = np.linspace(0, 1, 11)


@dataclass
class Query:
    id: str
    grades: dict[str, float]  # relevant file -> grade (1 for a plain list); grade 0 is not relevant
    image: str = ""
    text: str = ""
    exclude_self: bool = False

    @property
    def relevant(self) -> set[str]:
        return {path for path, grade in self.grades.items() if grade > 0}


@dataclass
class QuerySet:
    name: str
    collection: list[str]
    queries: list[Query] = field(default_factory=list)


def load_query_set(path: Path) -> QuerySet:
    """Parse and check a retrieval query set; a bad line is an error naming the line."""
    header, entries = read_query_file(path)
    if header["task"] != "retrieval":
        raise LoupeError(f"{path} is a {header['task']} query set, not a retrieval one")
    query_set = QuerySet(name=path.stem, collection=list(header["collection"]))
    for entry in entries:
        number = entry["_line"]
        try:
            relevant = entry["relevant"]
            grades = ({str(k): float(v) for k, v in relevant.items()} if isinstance(relevant, dict)
                      else {str(path): 1.0 for path in relevant})
            query = Query(id=str(entry["id"]), grades=grades, image=entry.get("image", ""),
                          text=entry.get("text", ""), exclude_self=bool(entry.get("exclude_self", False)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LoupeError(f"{path}:{number}: a query needs id, relevant and image or text ({exc})") from exc
        if bool(query.image) == bool(query.text):
            raise LoupeError(f"{path}:{number}: give exactly one of image or text")
        query_set.queries.append(query)
    return query_set


def _relative(path: str, datasets: Path) -> str:
    try:
        return Path(path).resolve().relative_to(datasets.resolve()).as_posix()
    except ValueError:
        return path


@dataclass
class Pipeline:
    """One way of ranking the collection: Loupe with some models, or the hash baseline."""

    name: str
    toolbox: Toolbox
    hash_baseline: bool = False


def check_specs(specs: list[str], settings: Settings) -> None:
    for spec in specs:
        pipeline_settings(spec, settings)


def pipeline_settings(spec: str, settings: Settings) -> Settings:
    """The settings a ``--compare`` entry names: ``loupe`` as configured, else another image encoder."""
    if spec in ("loupe", "phash"):
        return settings
    try:
        encoder = parse(ModelKind.IMAGE_ENCODER, spec)
    except ConfigError as exc:
        raise LoupeError(f"unknown pipeline {spec!r}: use loupe, phash or an image encoder ({exc})") from exc
    models = dataclasses.replace(settings.models, image_encoder=encoder.named, image_encoder_weights=encoder.weights)
    return dataclasses.replace(settings, models=models)


def index_folder_name(spec: str) -> str:
    """A folder name for one pipeline's index: the encoder, the weights file's name and a hash of its path."""
    encoder, weights = spec, ""
    if spec not in ("loupe", "phash"):
        parsed = parse(ModelKind.IMAGE_ENCODER, spec)
        encoder, weights = parsed.named, parsed.weights
    name = f"{encoder}-{Path(weights).stem}-{hashlib.sha1(weights.encode()).hexdigest()[:6]}" if weights else encoder
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def build_pipelines(specs: list[str], settings: Settings, query_set: QuerySet, datasets: Path,
                    index_root: Path) -> list[Pipeline]:
    """Index the collection once per distinct model set and wrap each as a pipeline."""
    folders = [datasets / c for c in query_set.collection]
    toolboxes: dict[str, Toolbox] = {}
    pipelines = []
    for spec in specs:
        spec_settings = pipeline_settings(spec, settings)
        key = "loupe" if spec_settings is settings else spec
        if key not in toolboxes:
            folder = index_root / query_set.name if key == "loupe" else index_root / (
                f"{query_set.name}-{index_folder_name(spec)}")
            toolboxes[key] = indexed_toolbox(spec_settings, Models(spec_settings), query_set.name, folders, folder)
        pipelines.append(Pipeline(name=spec, toolbox=toolboxes[key], hash_baseline=spec == "phash"))
    return pipelines


def indexed_toolbox(settings: Settings, models: Models, name: str, folders: list[Path], index_dir: Path) -> Toolbox:
    """A toolbox over ``folders`` indexed into ``index_dir`` (incremental, so cheap to reuse)."""
    index_settings = dataclasses.replace(settings, index_dir=index_dir)
    table = ImageTable.open_or_create(index_settings.index_dir, models.index_info())
    start = time.perf_counter()
    report = Indexer(index_settings, models, table).run(folders)
    if report.indexed:
        print(f"  indexed {report.indexed} {name} images with {models.image_encoder.name} "
              f"in {time.perf_counter() - start:.0f}s")
    return Toolbox(index_settings, models)


def rank(pipeline: Pipeline, query: Query, datasets: Path) -> list[str]:
    """The collection ranked for one query, as dataset-relative paths."""
    toolbox = pipeline.toolbox
    if pipeline.hash_baseline:
        if not query.image:
            return []
        paths, values = _hashes(toolbox, datasets)
        distances = hamming_distances(read_image(datasets / query.image, toolbox.settings.max_pixels).phash, values)
        return [paths[i] for i in np.argsort(distances, kind="stable")]
    if query.image:
        records = toolbox.image_search(image=ChosenFile(datasets / query.image), k=toolbox.table.count()).records
    else:
        records = toolbox.text_search(query.text, k=100).records
    return [_relative(r.path, datasets) for r in records]


@functools.lru_cache(maxsize=4)
def _hashes(toolbox: Toolbox, datasets: Path) -> tuple[list[str], np.ndarray]:
    rows = toolbox.table.find("true", limit=toolbox.table.count() or 1, columns=["path", "phash"])
    return [_relative(r["path"], datasets) for r in rows], np.array([r["phash"] for r in rows], np.int64)


def evaluate(query_set: QuerySet, pipelines: list[Pipeline], datasets: Path) -> dict:
    results: dict = {"task": "retrieval", "query_set": query_set.name, "queries": len(query_set.queries),
                     "collection": pipelines[0].toolbox.table.count(), "pipelines": {}}
    for pipeline in pipelines:
        runs, seconds, per_query, ndcgs = [], [], [], []
        for query in query_set.queries:
            start = time.perf_counter()
            ranked = rank(pipeline, query, datasets)
            seconds.append(time.perf_counter() - start)
            if query.exclude_self and query.image:
                ranked = [p for p in ranked if p != query.image]
            runs.append((ranked, query.relevant))
            ndcgs.append(ndcg_at(ranked, query.grades, 10))
            per_query.append({"id": query.id, "ap": average_precision(ranked, query.relevant),
                              "top1": top1(ranked, query.relevant), "r5": recall_at(ranked, query.relevant, 5)})
        results["pipelines"][pipeline.name] = {**summarise(runs, seconds, ndcgs), "per_query": per_query,
                                               "pr_curve": pr_curve(runs)}
    return results


def summarise(runs: list[tuple[list[str], set[str]]], seconds: list[float], ndcgs: list[float | None]) -> dict:
    def mean(values: list) -> float:
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else 0.0

    return {
        "mAP": mean_average_precision(runs),
        "top1": mean([top1(r, rel) for r, rel in runs]),
        "MRR": mean([reciprocal_rank(r, rel) for r, rel in runs]),
        "R@1": mean([recall_at(r, rel, 1) for r, rel in runs]),
        "R@5": mean([recall_at(r, rel, 5) for r, rel in runs]),
        "R@10": mean([recall_at(r, rel, 10) for r, rel in runs]),
        "P@10": mean([precision_at(r, rel, 10) for r, rel in runs]),
        "F1@10": mean([f1_at(r, rel, 10) for r, rel in runs]),
        "nDCG@10": mean(ndcgs),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p95_ms": percentile(seconds, 95) * 1000,
    }


def pr_curve(runs: list[tuple[list[str], set[str]]]) -> list[float]:
    """Mean interpolated precision at recall 0, 0.1, ..., 1 (11-point, as in PASCAL VOC)."""
    curves = []
    for ranked, relevant in runs:
        if not relevant:
            continue
        hits, points = 0, []
        for position, item in enumerate(ranked, start=1):
            if item in relevant:
                hits += 1
                points.append((hits / len(relevant), hits / position))
        curves.append([max((p for r, p in points if r >= level), default=0.0) for level in RECALL_POINTS])
    return [float(v) for v in np.mean(curves, axis=0)] if curves else [0.0] * len(RECALL_POINTS)


METRICS = ("mAP", "top1", "MRR", "R@1", "R@5", "R@10", "P@10", "F1@10", "nDCG@10", "p50_ms", "p95_ms")


def markdown(results: dict) -> str:
    lines = [f"## {results['query_set']}: {results['queries']} queries over {results['collection']} images", "",
             "| pipeline | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, scores in results["pipelines"].items():
        lines.append(f"| {name} | " + " | ".join(f"{scores[m]:.3f}" if "ms" not in m else f"{scores[m]:.0f}"
                                                 for m in METRICS) + " |")
    return "\n".join(lines) + "\n"


def run_query_file(path: Path, header: dict, entries: list[dict], specs: list[str] | None, settings: Settings,
                   datasets: Path, index_root: Path) -> dict:
    """The retrieval task's runner (see evals/tasks.py): ``specs`` None means loupe against phash."""
    query_set = load_query_set(path)
    pipelines = build_pipelines(specs or ["loupe", "phash"], settings, query_set, datasets, index_root)
    return evaluate(query_set, pipelines, datasets)


def write_plots(results: dict, folder: Path) -> list[Path]:
    """The precision-recall curve and the per-query AP histogram of a retrieval run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = results["query_set"]
    written = [folder / f"{name}-pr.png", folder / f"{name}-ap.png"]
    figure, axes = plt.subplots(figsize=(5, 4))
    for pipeline, scores in results["pipelines"].items():
        axes.plot(RECALL_POINTS, scores["pr_curve"], marker="o", label=f"{pipeline} (mAP {scores['mAP']:.3f})")
    axes.set(xlabel="recall", ylabel="interpolated precision", title=f"{name}: precision-recall", ylim=(0, 1.05))
    axes.legend()
    figure.tight_layout()
    figure.savefig(written[0], dpi=100)
    figure, axes = plt.subplots(figsize=(5, 4))
    for pipeline, scores in results["pipelines"].items():
        aps = [q["ap"] for q in scores["per_query"] if q["ap"] is not None]
        axes.hist(aps, bins=10, range=(0, 1), alpha=0.6, label=pipeline)
    axes.set(xlabel="average precision", ylabel="queries", title=f"{name}: AP per query")
    axes.legend()
    figure.tight_layout()
    figure.savefig(written[1], dpi=100)
    plt.close("all")
    return written
