"""The text bridge measured: caption -> photo search with and without it, on photos the map never saw.

    python -m loupe.evals.bridge_eval [--datasets ../shared/datasets]

The packaged map (tools/models/text_bridge.py) is trained on every Flickr8k and COCO-mini photo, so it
cannot be judged on them. Here each photo's query is answered by a map refitted (tools/training/bridge.py,
the packaged map's settings) on the other folds' photos, the same k folds ``loupe train-bridge`` reports,
from the vectors already in the evals' indexes (no model run but the text embedder). Side by side:

* ``loupe (no bridge)``: text search as before the bridge (tags, BM25, names...);
* ``zero-shot``: the bridge retriever alone with the untrained classifier prior (no pairs);
* ``learned``: the bridge retriever alone with the held-out fold's map;
* ``fused w=...``: text search with the held-out fold's map in the fusion at weight w.

The fusion weight is chosen by two-fold cross-validation over the queries (halves by a hash of the id:
pick on one, report on the other), on Flickr8k's and COCO-mini's queries together; SROIE's text queries
(printed names and totals) are run with the packaged map at every weight, as the check that the bridge
does not move receipts. Latencies are of whole text searches (fused) or of one vector search (alone).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from loupe.evals.harness import Pipeline, Query, QuerySet, build_pipelines, load_query_set, markdown, summarise
from loupe.evals.metrics import ndcg_at
from loupe.evals.paths import DATASETS, QUERY_SETS, RESULTS
from loupe.base.config import load_settings
from loupe.tools import text_search as search
from loupe.tools.models.text_bridge import TextBridge, packaged_bridge
from loupe.tools.process import configure_process
from loupe.tools.training.bridge import Pairs, fit_map, folds_of, read_pairs, zero_shot_map

CAPTIONED = ("flickr8k", "coco_mini")
WEIGHTS = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0)


def pairs_from_index(pipelines: dict[str, Pipeline], datasets: Path) -> tuple[Pairs, list[str]]:
    """The captioned sets' pairs in ``loupe train-bridge``'s order (folder, then sorted path), with the
    stored image vectors; and each photo's dataset-relative path."""
    vectors, paths, texts, owner, group = [], [], [], [], []
    embedder = next(iter(pipelines.values())).toolbox.models.text_embedder
    for number, name in enumerate(CAPTIONED):
        table = pipelines[name].toolbox.table
        stored = {Path(r["path"]).resolve(): r["image_vector"] for r in
                  table.find("true", limit=table.count(), columns=["path", "image_vector"])}
        by_photo: dict[Path, list[str]] = {}
        for path, caption in read_pairs(datasets / name):
            by_photo.setdefault(path.resolve(), []).append(caption)
        for path in sorted(by_photo):
            owner.extend([len(paths)] * len(by_photo[path]))
            texts.extend(by_photo[path])
            vectors.append(stored[path])
            paths.append(path.relative_to(datasets.resolve()).as_posix())
            group.append(number)
    return Pairs(np.array(vectors, np.float32), embedder.embed(texts), np.array(owner), np.array(group)), paths


def fold_maps(pairs: Pairs, prior: np.ndarray, shipped: TextBridge) -> list[TextBridge]:
    """One map per fold, trained on the other folds with the shipped map's settings."""
    fold = folds_of(len(pairs.images))
    lam, weight = shipped.provenance["ridge_lambda"], shipped.provenance["prior_weight"]
    maps = []
    for k in range(int(fold.max()) + 1):
        train = np.isin(pairs.owner, np.where(fold != k)[0])
        matrix = fit_map(pairs.texts[train], pairs.images[pairs.owner[train]], prior, lam, weight)
        maps.append(TextBridge(matrix, shipped.image_encoder, shipped.text_embedder, shipped.floor))
    return maps


def alone(pipeline: Pipeline, query: Query, bridge: TextBridge, datasets: Path) -> tuple[list[str], float]:
    """The collection ranked by the bridge retriever alone, and the seconds it took."""
    start = time.perf_counter()
    toolbox = pipeline.toolbox
    vector = bridge.to_image_space(toolbox.models.text_embedder.embed([query.text]))[0]
    rows = toolbox.table.vector_search("image_vector", vector, search.PER_RETRIEVER)
    return [_relative(r["path"], datasets) for r in rows], time.perf_counter() - start


def fused_runs(pipeline: Pipeline, query: Query, bridge: TextBridge | None,
               datasets: Path) -> tuple[dict[float, list[str]], float]:
    """Text search's ranking at each fusion weight (one set of retrievals, fused once per weight), and the
    seconds of one whole search at the code's weight."""
    start = time.perf_counter()
    search.text_search(pipeline.toolbox.table, pipeline.toolbox.models, query.text, k=100, bridge=bridge)
    seconds = time.perf_counter() - start
    rankings, coverage = search._rankings(pipeline.toolbox.table, pipeline.toolbox.models, query.text, None, bridge)
    ranked = {}
    for weight in WEIGHTS:
        scores, _, rows = search.fuse(rankings, {**search.RETRIEVER_WEIGHTS, "text-bridge": weight})
        order = sorted(scores, key=lambda i: search._rank_key(scores[i], coverage.get(i, 0.0)))
        rows = search.full_rows(pipeline.toolbox.table, rows, order)
        ranked[weight] = [_relative(rows[i]["path"], datasets) for i in order]
    return ranked, seconds


def _relative(path: str, datasets: Path) -> str:
    return Path(path).resolve().relative_to(datasets.resolve()).as_posix()


def _half(query: Query) -> int:
    return int(hashlib.sha256(query.id.encode()).hexdigest(), 16) % 2


def _result(name: str, variants: dict[str, list[tuple[list[str], set[str], float]]], count: int) -> dict:
    return {"query_set": name, "queries": len(next(iter(variants.values()))), "collection": count,
            "pipelines": {variant: summarise([(r, rel) for r, rel, _ in runs], [s for _, _, s in runs],
                                             [ndcg_at(r, {p: 1.0 for p in rel}, 10) for r, rel, _ in runs])
                          for variant, runs in variants.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    datasets = parser.parse_args().datasets.resolve()
    configure_process()
    settings = load_settings()
    sets: dict[str, QuerySet] = {name: load_query_set(QUERY_SETS / f"{name}.jsonl") for name in (*CAPTIONED, "sroie")}
    pipelines = {name: build_pipelines(["loupe"], settings, query_set, datasets, RESULTS / "index")[0]
                 for name, query_set in sets.items()}
    models = pipelines["flickr8k"].toolbox.models
    shipped = packaged_bridge()
    prior = zero_shot_map(models, settings.offline)
    zero_shot = TextBridge(prior, shipped.image_encoder, shipped.text_embedder, floor=-1.0)
    pairs, photo_paths = pairs_from_index({n: pipelines[n] for n in CAPTIONED}, datasets)
    maps, fold = fold_maps(pairs, prior, shipped), folds_of(len(photo_paths))
    held_out = dict(zip(photo_paths, (maps[f] for f in fold)))
    tables, per_weight = [], {}
    for name, query_set in sets.items():
        variants: dict[str, list] = {"loupe (no bridge)": [], "zero-shot": [], "learned": []}
        variants |= {f"fused w={w:g}": [] for w in WEIGHTS}
        halves = []
        for query in query_set.queries:
            relevant = query.relevant
            bridge = held_out[next(iter(relevant))] if name in CAPTIONED else shipped
            start = time.perf_counter()
            plain = search.text_search(pipelines[name].toolbox.table, models, query.text, k=100, bridge=None)
            variants["loupe (no bridge)"].append(([_relative(r.path, datasets) for r in plain.records], relevant,
                                                  time.perf_counter() - start))
            for variant, used in (("zero-shot", zero_shot), ("learned", bridge)):
                ranked, seconds = alone(pipelines[name], query, used, datasets)
                variants[variant].append((ranked, relevant, seconds))
            ranked_by_weight, seconds = fused_runs(pipelines[name], query, bridge, datasets)
            for weight, ranked in ranked_by_weight.items():
                variants[f"fused w={weight:g}"].append((ranked, relevant, seconds))
            halves.append(_half(query))
        per_weight[name] = (variants, halves)
        tables.append(markdown(_result(name, variants, pipelines[name].toolbox.table.count())))
    tables.append(choose_weight(per_weight))
    tables.append(f"shipped map: {shipped.provenance}")
    text = "\n".join(tables)
    (RESULTS / "bridge.md").write_text(text, encoding="utf-8")
    print(text)


def choose_weight(per_weight: dict[str, tuple[dict, list[int]]]) -> str:
    """Two-fold cross-validation of the fusion weight on the captioned sets' queries: the weight with the
    best R@10 on one half, scored on the other."""
    lines = ["## fusion weight, two-fold over the captioned queries", "",
             "| chosen on half | weight | R@10 on the other half (flickr8k + coco_mini) |", "|---|---|---|"]
    for tune in (0, 1):
        def r10(weight: float, half: int) -> float:
            hits = [float(ranked[:10].count(next(iter(rel))) > 0)
                    for name in CAPTIONED for (ranked, rel, _), h in
                    zip(per_weight[name][0][f"fused w={weight:g}"], per_weight[name][1]) if h == half]
            return sum(hits) / max(len(hits), 1)
        best = max(WEIGHTS, key=lambda w: r10(w, tune))
        lines.append(f"| {tune} | {best:g} | {r10(best, 1 - tune):.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
