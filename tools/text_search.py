"""The text_search tool: records whose printed text, caption or metadata match words.

Several retrievers each rank the collection, and reciprocal-rank fusion
(RRF, k=60) merges them, so a record that several agree on rises:

* ``ocr-semantic`` and ``caption-semantic``: text-embedding cosine against
  the OCR text and the caption/tags, above a floor so unrelated text is dropped;
* ``bm25``: LanceDB full-text search over OCR text, captions, metadata and
  file names;
* ``exact``: the query as a whole phrase, numbers (``42.50``) and quoted
  phrases found verbatim in the OCR text or metadata, since BM25 splits
  ``42.50`` into ``42`` and ``50`` and ``D.I.Y.`` into three letters;
* ``image-text``: the image encoder's text tower against the pixels, when the
  encoder has one (open_clip).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict

from store.image_table import ImageTable
from tools.models import Models
from tools.records import MatchedRecord, MatchLabel, SearchResult, ToolName, attach_thumbnails, record_from_row

RRF_K = 60
PER_RETRIEVER = 50
# all-MiniLM-L6-v2 cosines: paraphrases about 0.6 and up, unrelated text around
# 0.0-0.2. Below the floor a semantic hit is noise, not a match. Tags are a few
# words, so chance similarity runs higher there ("receipt" vs "minibus" 0.34).
SEMANTIC_FLOORS = {"ocr-semantic": 0.30, "caption-semantic": 0.45}
_LITERAL = re.compile(r'"([^"]+)"|\b(\d+[.,]\d+)\b')
_WORD = re.compile(r"\w+", re.UNICODE)


def text_search(table: ImageTable, models: Models, query: str, k: int = 10,
                where: str | None = None) -> SearchResult:
    """Ranked records matching ``query`` by printed text, caption, tags or metadata."""
    start = time.perf_counter()
    query = query.strip()
    if not query:
        return SearchResult(ToolName.TEXT_SEARCH, {"text": query}, [], 0.0, note="empty query")
    rankings = _rankings(table, models, query, where)

    fused: dict[str, float] = defaultdict(float)
    evidence: dict[str, list[str]] = defaultdict(list)
    rows: dict[str, dict] = {}
    for retriever, ranked in rankings.items():
        for rank, (row, detail) in enumerate(ranked):
            fused[row["id"]] += 1.0 / (RRF_K + rank + 1)
            evidence[row["id"]].append(f"{retriever} #{rank + 1}{detail}")
            rows.setdefault(row["id"], row)

    best_possible = len(rankings) / (RRF_K + 1)
    ranked_ids = sorted(fused, key=lambda i: -fused[i])[:k]
    records = [_record(rows[i], fused[i] / best_possible, evidence[i], query) for i in ranked_ids]
    attach_thumbnails(table, records)
    note = "" if records else f"no indexed text, caption or metadata matches {query!r}"
    return SearchResult(tool=ToolName.TEXT_SEARCH, query={"text": query, "k": k, "where": where or ""},
                        records=records, seconds=time.perf_counter() - start, note=note)


def _rankings(table: ImageTable, models: Models, query: str, where: str | None) -> dict[str, list[tuple[dict, str]]]:
    """Each retriever's ranked (row, detail) list; retrievers with no hit are left out."""
    rankings: dict[str, list[tuple[dict, str]]] = {}
    query_vector = models.text_embedder.embed([query])[0]
    for retriever, column in (("ocr-semantic", "ocr_vector"), ("caption-semantic", "caption_vector")):
        hits = [(row, 1.0 - row["_distance"]) for row in
                table.vector_search(column, query_vector, PER_RETRIEVER, where)]
        floor = SEMANTIC_FLOORS[retriever]
        rankings[retriever] = [(row, f" (cosine {c:.2f})") for row, c in hits if c >= floor]

    rankings["bm25"] = [(row, "") for row in table.full_text_search(query, PER_RETRIEVER, where)]

    phrases = literal_phrases(query)
    if phrases:
        contained: dict[str, list[str]] = defaultdict(list)
        found: dict[str, dict] = {}
        for phrase in phrases:
            condition = f"lower(search_text) LIKE {_like(phrase)}" + (f" AND ({where})" if where else "")
            for row in table.find(condition, limit=PER_RETRIEVER):
                contained[row["id"]].append(phrase)
                found.setdefault(row["id"], row)
        ranked = sorted(contained, key=lambda i: -len(contained[i]))
        rankings["exact"] = [(found[i], f" (contains {', '.join(repr(p) for p in contained[i])})") for i in ranked]

    encoder = models.image_encoder
    if encoder.has_text_tower:
        vector = encoder.embed_texts([query])[0]
        hits = [(row, 1.0 - row["_distance"]) for row in table.vector_search("image_vector", vector, PER_RETRIEVER, where)]
        rankings["image-text"] = [(row, f" (cosine {c:.2f})") for row, c in hits if c >= encoder.text_match_cosine]
    return {name: ranked for name, ranked in rankings.items() if ranked}


def literal_phrases(query: str) -> list[str]:
    """Phrases to find verbatim: quoted text, numbers like 42.50, and a multi-word query as a whole."""
    phrases = [quoted or number for quoted, number in _LITERAL.findall(query)]
    whole = query.replace('"', "").strip()
    if len(_WORD.findall(whole)) >= 2 and whole not in phrases:
        phrases.insert(0, whole)
    return phrases


def _like(literal: str) -> str:
    escaped = literal.lower().replace("'", "''").replace("%", r"\%").replace("_", r"\_")
    return f"'%{escaped}%'"


def _record(row: dict, score: float, evidence: list[str], query: str) -> MatchedRecord:
    matched = best_matching_line(row, query)
    return record_from_row(row, score, MatchLabel.TEXT_MATCH, "found by " + "; ".join(evidence), matched_text=matched)


def best_matching_line(row: dict, query: str) -> str:
    """The OCR line, caption or title sharing most words with the query (for highlighting)."""
    words = {w.lower() for w in _WORD.findall(query)}
    literals = literal_phrases(query)
    candidates = [*(row.get("ocr_text") or "").splitlines(), row.get("caption") or "",
                  row.get("title") or "", row.get("description") or ""]
    best, best_score = "", 0.0
    for line in candidates:
        line_words = {w.lower() for w in _WORD.findall(line)}
        score = len(words & line_words) + sum(2 for lit in literals if lit.lower() in line.lower())
        if score > best_score:
            best, best_score = line, score
    return best
