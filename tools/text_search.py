"""The text_search tool: records whose printed text, caption or metadata match words.

Several retrievers each rank the collection, and reciprocal-rank fusion
(RRF, k=60) merges them, so a record that several agree on rises:

* ``ocr-semantic`` and ``caption-semantic``: text-embedding cosine against
  the OCR text and the caption/tags, above a floor so unrelated text is dropped;
* ``bm25``: LanceDB full-text search over OCR text, captions, metadata and
  file names;
* ``exact``: numbers (``42.50``) found verbatim in the OCR text or
  metadata, since BM25 splits ``42.50`` into ``42`` and ``50``;
* ``name``: runs of the query's words found in the folded text however
  they are punctuated, spaced or cased ("DIY", "Mr Diy" and "MR. D.I.Y.";
  "7 Eleven" and "7-ELEVEN"), longest run first; BM25 cannot, as it splits
  ``D.I.Y.`` into three letters. A run found in more than a fifth of the
  collection ("sdn bhd") says nothing about any one record and is skipped;
* ``image-text``: the image encoder's text tower against the pixels, when the
  encoder has one (open_clip);
* ``text-bridge``: for an encoder without one (EfficientNet-Lite0), the query's
  text embedding carried into the image vectors' space by the packaged map
  (tools/models/text_bridge.py) and searched against the pixels' vectors. It is
  left out when the query is about printed words (a number, or a name found in
  a record's text): there the pixels say nothing, and would only reorder receipts;
  and when its best picture is far (BRIDGE_PLACED): the words are none it can
  place. It reorders; it never makes a match by itself.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Literal

from loupe.store.image_table import ImageTable
from loupe.tools.document_fields import (
    KIND_OF_SHOP,
    LEGAL_FORM_WORDS,
    MIN_MISREAD_LETTERS,
    fold,
    misread_name_pattern,
    name_pattern,
)
from loupe.tools.models import Models
from loupe.tools.models.text_bridge import TextBridge, bridge_for
from loupe.tools.records import MatchedRecord, MatchLabel, SearchResult, ToolName, attach_thumbnails, record_from_row

RRF_K = 60
PER_RETRIEVER = 50
# all-MiniLM-L6-v2 cosines: paraphrases about 0.6 and up, unrelated text around
# 0.0-0.2. Below the floor a semantic hit is noise, not a match. Tags are a few
# words, so chance similarity runs higher there ("receipt" vs "minibus" 0.34).
SEMANTIC_FLOORS = {"ocr-semantic": 0.30, "caption-semantic": 0.45}
# A retriever's share of the fusion (1 unless named). The bridge's: two-fold cross-validation over the Flickr8k
# and COCO-mini queries (evals/bridge_eval.py, maps refitted without the query's photo) chose 3 on both halves,
# of 0.5-6; it costs SROIE's printed-name queries one R@5 hit in 200.
BRIDGE = "text-bridge"
RETRIEVER_WEIGHTS = {BRIDGE: 3.0}
# The bridge ranks every picture for any words, nonsense included; it runs only when its best picture reaches
# this cosine. With maps refitted without the query's photo, 2% of Flickr8k's and COCO-mini's captions on one
# half and 1% on the other fall below it, and every made-up string tried ("zxqvbnm qwpzk": best 0.069).
BRIDGE_PLACED = 0.08
# A request of this many subject words with a filter is a story around the filter ("Prior-year audit: I need all
# receipts from February 2017"), not a name ("payslip june", "starbucks receipts from march 2018"). Where no record
# of the whole collection holds a name covering STORY_NAME_SHARE of it, the filter's records are shown, said to
# match the filter only. Both set by hand from agent_unseen4's stories (best shares 0 and 0.13) and a narrowing
# of "Bar Wang Rice, I eat lunch there" (0.45, whose filter leaves none of its receipts): not cross-validated.
STORY_WORDS, STORY_NAME_SHARE = 2, 0.25
STORY_WORD_SHARE = 0.3  # see word_weight
LONG_NAME_LETTERS = 6  # see _is_long_name; both chosen on the halves of evals/text_match_calibration.py (README)
MAX_RUN_WORDS = 6  # the longest run of query words tried as one name
MIN_RUN_LETTERS = 3  # shorter runs ("mr", "99") match by chance
MATCH_SCORE, MATCH_NAME_COVERAGE = 0.73, 0.5  # see is_match; set by evals/text_match_calibration.py
MIN_CORRECTED_LETTERS, CORRECTION_SIMILARITY = 5, 0.85  # see spelled_as_stored
GENERIC_SHARE = 0.2  # a run found in more than this share of the records names none of them
MIN_GENERIC_RECORDS = 3  # ... but in a small collection a name may well be on three records
# Words of talk that name nothing in any collection: hedges, fillers and function words as people speak and type
# them ("whatever i bought ... maybe two things yeah", "that receipt among my things"). The agent's planner counts
# them as no subject too (agent/intents.py).
CHAT_WORDS = frozenset("""
whatever whichever whoever wherever whenever maybe perhaps probably possibly likely yeah yea yep yup nope nah
guess reckon believe suppose recall remembered forgot forget forgotten among amongst several few couple whole
entire mine belongings wait restrict limit grab fetch bring dig locate kindly around somehow sometime earlier
later previously being very really quite basically literally honestly kinda sorta gonna wanna gotta lemme gimme
through nothing else done often gather collect inclusive both
lah la leh lor meh mah aiyo aiyoh aiyah aiya alamak wah eh ya boleh tak ke ni tu apa mana berapa kat dekat saya
nak cari tolong semua kedai belanja beli dah sudah ada
""".split())  # the second line: Manglish, the Malaysian English of SROIE's shoppers ("got resit or not lah")
# Words of a request rather than of a name: a run of them names nothing, and they are not counted when
# judging how much of a request a found name covers. Misspellings of "receipt" are common enough to list.
REQUEST_WORDS = CHAT_WORDS | frozenset("""
a an the my our your this that these those it its i im me we you they them is are was were be been am do does did
have has had can could would will should may might must and or but if of in on at to for from by with about as into
please pls plz kindly thanks thank hey hi hello ok okay so just only also too now then there here where when what
which who why how any anything some something all every each find show get give look search pull see need want
company companies place places
looking trying think sure remember bought buy went go got lost store shop receipt receipts reciept reciepts recipt
recipts receit receits resit resits bill bills invoice invoices photo photos picture pictures pic pics image images
scan scans
one ones last month year week day ago before much many spend spent pay paid cost costs price total amount
everything stuff thing things bunch again already
like i'd id i'll wonder wondering tell kind lovely cool nice great hmm actually whether u ur slip slips claim claims
expense expenses reimbursement d ll ve re m s t
lol lmao haha uh um er w ever somewhere anywhere broken lately recently end ended up buying purchased purchase
ordered came come comes save saved mum mom dad wife husband
retrieve retrieved bearing pertaining regarding corresponding verification verify document documents doc docs
record records file claimant submitted supporting
1
""".split())  # "1": fold() writes "one" as a digit, and "the one with the hotcakes" names no "1"
REQUEST_WORDS |= {word + "s" for word in REQUEST_WORDS if len(word) >= 3 and word.isalpha()}  # "shops", "days"
_LITERAL = re.compile(r'"([^"]+)"|\b(\d+[.,]\d+)\b')
_NUMBER = re.compile(r"(?<![\d.,])\d+[.,]\d+(?!\d)")  # also run into a currency: "RM73.00"
_WORD = re.compile(r"\w+", re.UNICODE)


def text_search(table: ImageTable, models: Models, query: str, k: int = 10,
                where: str | None = None, matches_only: bool = False,
                bridge: TextBridge | None | Literal["packaged"] = "packaged") -> SearchResult:
    """Ranked records matching ``query`` by printed text, caption, tags or metadata.

    ``matches_only`` keeps only records that pass :func:`is_match` (what the agent shows); rankings for
    retrieval metrics keep every candidate. ``bridge``: the packaged map where it fits the models, another
    map (the evals' held-out folds), or None for none.
    """
    start = time.perf_counter()
    query = query.strip()
    if not query:
        return SearchResult(ToolName.TEXT_SEARCH, {"text": query}, [], 0.0, note="empty query")
    rankings, coverage = _rankings(table, models, query, where, bridge)
    scores, evidence, rows = fuse(rankings)
    calibrated = match_scores(rankings)
    subjects = subject_words(query)
    if not subjects:  # "receipts" with a year filter: the words name a kind, the filter chooses
        matches_only = False
    ranked_ids = [i for i in sorted(scores, key=lambda i: _rank_key(scores[i], coverage.get(i, 0.0)))
                  if not matches_only or is_match(calibrated.get(i, 0.0), coverage.get(i, 0.0))][:k]
    rows = full_rows(table, rows, ranked_ids)
    records = [_record(rows[i], scores[i], evidence[i], query) for i in ranked_ids if "path" in rows[i]]
    story = not records and len(subjects) >= STORY_WORDS and max(coverage.values(), default=0.0) < STORY_NAME_SHARE
    if where and len(records) < k and (not subjects or story):
        records += filtered_rest(table, where, {r.id for r in records}, k - len(records))
    attach_thumbnails(table, records)
    note = ""
    if not records:
        note = (f"nothing in the collection matches {query!r} well enough" if scores else
                f"no indexed text, caption or metadata matches {query!r}")
    return SearchResult(tool=ToolName.TEXT_SEARCH, query={"text": query, "k": k, "where": where or ""},
                        records=records, seconds=time.perf_counter() - start, note=note)


def filtered_rest(table: ImageTable, where: str, shown: set[str], limit: int) -> list[MatchedRecord]:
    """The records the filter alone chooses, beyond those the retrievers ranked: "every receipt dated 27 March
    2018" names no subject, and a receipt of that day that prints no word of the request (not even "receipt")
    is as much an answer as one that does; so is one of the day a story names (STORY_WORDS)."""
    rows = [row for row in table.find(where, limit=limit + len(shown)) if row["id"] not in shown][:limit]
    return [record_from_row(row, 0.0, MatchLabel.TEXT_MATCH, "matches the filter; no printed word matches the rest "
                            "of the request") for row in rows]


def full_rows(table: ImageTable, rows: dict[str, dict], ids: list[str]) -> dict[str, dict]:
    """``rows`` with the record's columns for each of ``ids``: the semantic and name retrievers rank ids only,
    and the rows of those returned are read in one query rather than each retriever's fifty."""
    light = [i for i in ids if "path" not in rows[i]]
    return {**rows, **{row["id"]: row for row in table.get(light)}} if light else rows


def subject_words(query: str) -> list[str]:
    """The query's words other than request words: what it asks about ("stooges"), not how ("receipts")."""
    return [word for word in fold(query).split() if word not in REQUEST_WORDS]


def match_scores(rankings: dict[str, list[tuple[dict, str]]]) -> dict[str, float]:
    """The fused scores :func:`is_match` judges, without the bridge: it ranks every picture for any words, so by
    itself it would make a match of the nearest picture to a request the collection cannot answer (the
    agent's held-out "nothing" requests: 1.00 -> 0.07 right when it counted). It only reorders."""
    return fuse({name: ranked for name, ranked in rankings.items() if name != BRIDGE})[0]


def is_match(score: float, name_coverage: float) -> bool:
    """Whether a candidate is a match to show, or only the best of what there is.

    Either several retrievers agree (fused score) or a name found in its text covers most of the request;
    both levels were chosen by cross-validation on the dev query sets (evals/text_match_calibration.py).
    """
    return score >= MATCH_SCORE or name_coverage >= MATCH_NAME_COVERAGE


def _rank_key(score: float, name_coverage: float) -> tuple[float, float]:
    """Records holding most of the request as a name come first (the whole "Perniagaan Zheng Hui" before
    a receipt that only shares "Hui"); the rest by fused score."""
    return (-name_coverage if name_coverage >= MATCH_NAME_COVERAGE else 0.0, -score)


def fuse(rankings: dict[str, list[tuple[dict, str]]], weights: dict[str, float] | None = None,
         ) -> tuple[dict[str, float], dict[str, list[str]], dict[str, dict]]:
    """Reciprocal-rank fusion, each retriever at its weight (RETRIEVER_WEIGHTS): each record's score in 0..1,
    the evidence for it, and its row."""
    weights = RETRIEVER_WEIGHTS if weights is None else weights
    fused: dict[str, float] = defaultdict(float)
    evidence: dict[str, list[str]] = defaultdict(list)
    rows: dict[str, dict] = {}
    for retriever, ranked in rankings.items():
        for rank, (row, detail) in enumerate(ranked):
            fused[row["id"]] += weights.get(retriever, 1.0) / (RRF_K + rank + 1)
            evidence[row["id"]].append(f"{retriever} #{rank + 1}{detail}")
            if row["id"] not in rows or "path" in row:  # a retriever's whole row over another's bare id
                rows[row["id"]] = row
    # Normalised by what a record ranked first by every retriever that ran would get, so a record
    # found by one weak retriever scores low even when no other retriever found anything. The bridge is
    # left out of that: it ranks every picture for any words, and counting it would lower every score the
    # match levels (MATCH_SCORE) were calibrated on; its agreement only adds (capped at 1).
    best_possible = max(sum(1.0 for retriever in rankings if retriever != BRIDGE), 1.0) / (RRF_K + 1)
    return {i: min(1.0, score / best_possible) for i, score in fused.items()}, evidence, rows


def _rankings(table: ImageTable, models: Models, query: str, where: str | None,
              bridge: TextBridge | None | Literal["packaged"] = "packaged",
              ) -> tuple[dict[str, list[tuple[dict, str]]], dict[str, float]]:
    """Each retriever's ranked (row, detail) list (an empty one where it ran and found nothing), and the
    share of the request each record's found name covers."""
    rankings: dict[str, list[tuple[dict, str]]] = {}
    query_vector = models.text_embedder.embed([query])[0]
    for retriever, column in (("ocr-semantic", "ocr_vector"), ("caption-semantic", "caption_vector")):
        hits = [(row, 1.0 - row["_distance"]) for row in
                table.vector_search(column, query_vector, PER_RETRIEVER, where, ids_only=True)]
        floor = SEMANTIC_FLOORS[retriever]
        rankings[retriever] = [(row, f" (cosine {c:.2f})") for row, c in hits if c >= floor]

    rankings["bm25"] = [(row, "") for row in table.full_text_search(query, PER_RETRIEVER, where)]

    numbers = _NUMBER.findall(query)
    if numbers:
        contained: dict[str, list[str]] = defaultdict(list)
        found: dict[str, dict] = {}
        for number in numbers:
            condition = f"lower(search_text) LIKE {_like(number)}" + (f" AND ({where})" if where else "")
            for row in table.find(condition, limit=PER_RETRIEVER):
                contained[row["id"]].append(number)
                found.setdefault(row["id"], row)
        ranked = sorted(contained, key=lambda i: -len(contained[i]))
        rankings["exact"] = [(found[i], f" (contains {', '.join(repr(p) for p in contained[i])})") for i in ranked]

    rankings["name"], coverage = _name_matches(table, query, where)
    if numbers:
        # an amount names a receipt ("the receipt where I paid RM73.00", "an unmatched card line for exactly
        # RM100.90"): a record printing each as a whole amount matches, whatever story is told around it; no
        # "nothing here" request of the agent sets names an amount
        whole = [re.compile(rf"(?<![\d.,]){re.escape(number)}(?!\d)") for number in numbers]  # 9.00, not 19.00
        coverage.update({i: 1.0 for i, row in found.items() if all(p.search(row.get("ocr_text") or "") for p in whole)})

    encoder = models.image_encoder
    if encoder.has_text_tower:
        vector = encoder.embed_texts([query])[0]
        hits = [(row, 1.0 - row["_distance"])
                for row in table.vector_search("image_vector", vector, PER_RETRIEVER, where, ids_only=True)]
        rankings["image-text"] = [(row, f" (cosine {c:.2f})") for row, c in hits if c >= encoder.text_match_cosine]
    elif not numbers and max(coverage.values(), default=0.0) < MATCH_NAME_COVERAGE:
        if bridge == "packaged":
            bridge = bridge_for(encoder.name, models.text_embedder.name, encoder.dim, models.text_embedder.dim)
        if bridge is not None:
            vector = bridge.to_image_space(query_vector[None])[0]
            hits = [(row, 1.0 - row["_distance"]) for row in
                    table.vector_search("image_vector", vector, PER_RETRIEVER, where, ids_only=True)]
            if hits and hits[0][1] >= BRIDGE_PLACED:  # else the words are none the map can place
                rankings[BRIDGE] = [(row, f" (cosine {c:.2f})") for row, c in hits if c >= bridge.floor]
    return rankings, coverage


def name_runs(query: str) -> list[tuple[tuple[str, ...], int, str]]:
    """(words, how many, run) for runs of the query's folded words, most words (then letters) first.

    A run is a stretch of the query that may be a name ("mr diy", "99 speed mart"), its words joined; it
    neither starts nor ends with a request word ("the", "receipt", "please"), and is more than request words.
    """
    words = fold(query).split()
    runs = set()
    for size in range(1, MAX_RUN_WORDS + 1):
        for start in range(len(words) - size + 1):
            part = tuple(words[start:start + size])
            if part[0] in REQUEST_WORDS or part[-1] in REQUEST_WORDS or part[0].isdigit() and size == 1:
                continue
            if len(run := "".join(part)) >= MIN_RUN_LETTERS:
                runs.add((part, size, run))
    return sorted(runs, key=lambda r: (r[1], sum(len(w) for w in r[0] if w not in REQUEST_WORDS)), reverse=True)


def _name_matches(table: ImageTable, query: str, where: str | None) -> tuple[list[tuple[dict, str]], dict[str, float]]:
    """Records whose folded text holds a run of the query's words (a run of more words ranks first), and
    for each the share of the request that run covers, its words weighted by their rarity.

    The share is what tells a name found ("three stooges" in THREE STOOGES) from a word of the request
    that happens to be printed somewhere ("station" of "Caltex station" on a Shell receipt).
    """
    spelled = spelled_as_stored(query, table.folded_words())
    without_kind = " ".join(KIND_OF_SHOP.sub("", word) or word for word in spelled.split())
    if without_kind == spelled or len(subject_words(spelled)) < 2:  # "the bookshop photo" names no shop
        return _runs_found(table, spelled, where)
    # a shop typed with its kind ("popular bookshop" is POPULAR BOOK CO.), read both ways: the reading that
    # covers more of the request ranks first (a photo tagged "bookshop" holds the word as typed)
    (first, first_shares), (second, second_shares) = sorted(
        (_runs_found(table, words, where) for words in (spelled, without_kind)),
        key=lambda reading: -max(reading[1].values(), default=0.0))
    seen = {row["id"] for row, _ in first}
    ranked = first + [(row, detail) for row, detail in second if row["id"] not in seen]
    shares = {**second_shares, **{i: max(share, second_shares.get(i, 0.0)) for i, share in first_shares.items()}}
    return ranked[:PER_RETRIEVER], shares


def _runs_found(table: ImageTable, query: str, where: str | None) -> tuple[list[tuple[dict, str]], dict[str, float]]:
    """:func:`_name_matches` for one reading of the (folded, spelled as stored) query."""
    ids, texts = table.folded_texts()
    limit = max(MIN_GENERIC_RECORDS, GENERIC_SHARE * len(texts))
    runs = name_runs(query)
    best: dict[int, str] = {}  # row index -> the run of most words it holds, for ranking
    held: dict[int, list[tuple[str, ...]]] = defaultdict(list)  # row index -> the runs it holds
    found_in: dict[str, int] = {}  # run -> how many records hold it
    squeezed = [text.replace(" ", "") for text in texts]  # a plain substring test first, the pattern on its hits
    for words, _, run in runs:
        hits = _hits(run, texts, squeezed) or (_hits(singular, texts, squeezed)
                                               if (singular := _singular(run)) != run else [])
        found_in[run] = len(hits)
        for index in hits:
            held[index].append(words)
            if len(hits) <= limit:
                best.setdefault(index, run)
    weight = {w: word_weight(w, found_in.get(w, 0), len(texts)) for w in query.split() if w not in REQUEST_WORDS}
    total = sum(weight.values()) or 1.0
    shares = {ids[i]: min(1.0, _credit(query, runs_held, weight) / total) for i, runs_held in held.items()}
    for index, runs_held in held.items():  # a name of two words and more is no chance print, however long the story
        if any(_is_long_name(run) and found_in["".join(run)] <= limit for run in runs_held):
            shares[ids[index]] = max(shares[ids[index]], MATCH_NAME_COVERAGE)
    order = list(best)[:PER_RETRIEVER]  # insertion order: by the run that found them
    rows = {ids[i]: {"id": ids[i]} for i in order} if where is None else \
        {row["id"]: row for row in table.get([ids[i] for i in order], columns=["id"], where=where)}
    ranked = [(rows[ids[i]], f" (name {best[i]!r}, {shares[ids[i]]:.0%} of the request)")
              for i in order if ids[i] in rows]
    return ranked, shares


def _is_long_name(run: tuple[str, ...]) -> bool:
    """A run of at least two words that are neither request words nor a legal form, with LONG_NAME_LETTERS
    letters: "lian hing", "genting highlands", "popular book"; not "sdn bhd", nor "mr diy" (short, though it
    still matches on its own share)."""
    named = [word for word in run if word not in REQUEST_WORDS and word not in LEGAL_FORM_WORDS]
    return len(named) >= 2 and len("".join(run)) >= LONG_NAME_LETTERS


def word_weight(word: str, records_holding: int, records: int) -> float:
    """How much a word of the request counts when judging the share of it a record covers: its rarity in the
    collection (smoothed inverse document frequency), so "sdn" counts for little and "stooges" for much.

    A word no record holds is either the request's subject (a shop the collection lacks: "petronas") or the
    story told around it ("after the midnight screening marathon we drove up to Genting Highlands"). A common
    English word is far more often the story, so it counts STORY_WORD_SHARE as much (chosen on the halves of
    evals/text_match_calibration.py: see README, Text search).
    """
    weight = math.log(1 + records / (records_holding + 1))
    return weight * STORY_WORD_SHARE if not records_holding and word in common_words() else weight


@functools.cache
def common_words() -> frozenset[str]:
    """The common English words of tools/common_words.txt (about 21,700)."""
    lines = (Path(__file__).parent / "common_words.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def _credit(query: str, runs_held: list[tuple[str, ...]], weight: dict[str, float]) -> float:
    """The weight of the request's words a record holds as names: in each phrase of the request (its words
    between request words of three letters or more) the heaviest run the record holds, so a receipt is credited
    with both subjects of "mcdonalds breakfast, the one with the hotcakes", but not with "world" and "sdn bhd"
    printed apart for the one name "taste of the world sdn bhd". A run across request words ("taste of the
    world") spans phrases; the short ones ("m" of "MR D.I.Y. (M) SDN BHD", "at", "of") break none."""
    words = query.split()
    phrase_of, phrase = [], 0
    for word in words:
        phrase += word in REQUEST_WORDS and len(word) >= 3
        phrase_of.append(phrase)

    def phrases(run: tuple[str, ...]) -> set[int]:
        return {phrase_of[start + k] for start in range(len(words) - len(run) + 1)
                if tuple(words[start:start + len(run)]) == run for k in range(len(run))}

    run_weight = {run: sum(weight.get(w, 0.0) for w in run) for run in runs_held}
    credited: set[int] = set()
    total = 0.0
    for run in sorted(run_weight, key=lambda r: -run_weight[r]):
        if not (spans := phrases(run)) & credited:
            credited |= spans
            total += run_weight[run]
    return total


def _hits(run: str, texts: list[str], squeezed: list[str]) -> list[int]:
    """The records whose folded text holds the run as a name, or, for a long run, with a character misread."""
    pattern = name_pattern(run)
    hits = [index for index, text in enumerate(squeezed) if run in text and pattern.search(texts[index])]
    return hits or (_misread_hits(run, texts, squeezed) if len(run) >= MIN_MISREAD_LETTERS else [])


def _singular(run: str) -> str:
    """The run with its last word's plural ending taken off: receipts print "BATTERY", people ask for batteries."""
    for plural, single in (("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"), ("ses", "s"), ("s", "")):
        if run.endswith(plural) and not run.endswith("ss") and len(run) - len(plural) >= MIN_RUN_LETTERS:
            return run[:-len(plural)] + single
    return run


def _misread_hits(run: str, texts: list[str], squeezed: list[str]) -> list[int]:
    """The records that hold a long run with one character misread or lost, as OCR prints a name ("taste of the
    worid"): one half of the run is then intact, so a plain substring test finds the texts to try; where one of
    them has such a near copy of the run with its spaces taken out, the pattern checks it at word boundaries.
    (The pattern's compilation, 2 alternatives a letter, cost more than the rest of a query's name search.)"""
    half = len(run) // 2
    candidates = [index for index, text in enumerate(squeezed)
                  if (run[:half] in text or run[half:] in text) and _near_copy(run, text)]
    if not candidates:
        return []
    pattern = misread_name_pattern(run)
    return [index for index in candidates if pattern.search(texts[index])]


def _near_copy(run: str, text: str) -> bool:
    """Whether ``text`` holds ``run`` with one character replaced, left out or put in (inside it), around an
    intact half of it."""
    length, half = len(run), len(run) // 2
    for start, intact in ((0, run[:half]), (half, run[half:])):
        found = text.find(intact)
        while found >= 0:
            begin = found - start  # where the run would begin in text
            window = text[max(begin, 0):begin + length]
            if begin >= 0 and len(window) == length and sum(a != b for a, b in zip(window, run)) <= 1:
                return True
            lost_at = range(half, length) if start == 0 else range(half)  # the lost character is in the other half
            first = begin if start == 0 else begin + 1
            shorter = text[first:first + length - 1] if first >= 0 else ""
            if len(shorter) == length - 1 and any(run[:k] + run[k + 1:] == shorter for k in lost_at):
                return True
            put_at = range(half, length) if start == 0 else range(1, half + 1)  # where a character was put in
            first = begin if start == 0 else begin - 1
            longer = text[first:first + length + 1] if first >= 0 else ""
            if len(longer) == length + 1 and any(longer[:k] + longer[k + 1:] == run for k in put_at):
                return True
            found = text.find(intact, found + 1)
    return False


def spelled_as_stored(query: str, vocabulary: set[str]) -> str:
    """The folded query with each long word that no record holds replaced by the stored word it misspells.

    "lightroom galery" becomes "lightroom gallery": people misspell names, and a name that is in the
    collection should still be found. Only words of MIN_CORRECTED_LETTERS or more are corrected, to a stored
    word with the same first letter and a difflib similarity of at least CORRECTION_SIMILARITY.
    """
    words = fold(query).split()
    corrected = []
    for word in words:
        if word in vocabulary or word in REQUEST_WORDS or len(word) < MIN_CORRECTED_LETTERS or word.isdigit():
            corrected.append(word)
            continue
        alike = [w for w in vocabulary if w[0] == word[0] and abs(len(w) - len(word)) <= 2]
        corrected.append(next(iter(difflib.get_close_matches(word, alike, n=1, cutoff=CORRECTION_SIMILARITY)), word))
    return " ".join(corrected)


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
