"""all-MiniLM-L6-v2 written as an ONNX graph straight from its weights, run on ONNX Runtime with no PyTorch.

The default install embeds OCR text, captions and queries with the packaged
sentence-transformers model, and the install without torch cannot run it
through sentence-transformers. So the BERT encoder is built here node by node
from ``model.safetensors`` and ``config.json`` (embeddings, self-attention and
feed-forward layers, exact erf GELU), followed by the sentence-transformers
head the folder asks for: mean pooling over the real tokens and L2
normalisation. The graph is written once to a cache folder, named for the
weights' digest, and the tokenizer is the folder's own ``tokenizer.json``
with sentence-transformers' truncation and padding, so the vectors match
``SentenceTransformer.encode(..., normalize_embeddings=True)``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from loupe.tools.models.onnx_files import cached_onnx, cosines, file_digest
from loupe.tools.models.onnx_graph import FLOAT, INT64, GraphBuilder
from loupe.tools.models.resolver import default_cache_dir

if TYPE_CHECKING:
    import onnx

INPUT_NAMES = ["input_ids", "attention_mask"]
OUTPUT_NAME = "embedding"
GRAPH_VERSION = 1  # raised when the graph written here changes, so a cached file of the old one is not used
BATCH_SIZE = 32  # sentence-transformers' default encode batch
# The additive attention mask of padded keys: transformers uses float32's minimum, which softmax turns into 0
# (older BERT code's -1e4 gives the same vectors to float32 precision here).
MASK_VALUE = float(np.finfo(np.float32).min)
# Floors from sentence-transformers: the mean pooling's token count and F.normalize's vector length.
MIN_TOKEN_COUNT = 1e-9
MIN_NORM = 1e-12
# Prefixes the encoder's weights may carry: none in a sentence-transformers folder, "bert." in a
# BertFor... checkpoint, "0." in a state dict saved from the whole SentenceTransformer.
WEIGHT_PREFIXES = ["", "bert.", "0.", "0.auto_model."]
FILE_STEM = "all-MiniLM-L6-v2"
# What the first build is checked on where sentence-transformers is installed: short, long, numbers, accents.
PARITY_TEXTS = ["minibus", "a dog running on a beach", "TOTAL 31.00 RM CASH 50.00 CHANGE 19.00",
                "Café crème brûlée, 12,50 €", " ".join(["receipt line 12.90"] * 80)]


class _BertGraph(GraphBuilder):
    """The graph builder with BERT's three layer kinds."""

    def linear(self, x: str, prefix: str) -> str:
        """``nn.Linear``: x @ weight.T + bias, the weight stored transposed so MatMul needs no Transpose."""
        weight = self.constant(self.state[f"{prefix}.weight"].T.astype(np.float32), f"{prefix}.w")
        bias = self.constant(self.state[f"{prefix}.bias"].astype(np.float32), f"{prefix}.b")
        return self.node("Add", [self.node("MatMul", [x, weight], prefix), bias], f"{prefix}.add")

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        scale = self.constant(self.state[f"{prefix}.weight"].astype(np.float32), f"{prefix}.g")
        bias = self.constant(self.state[f"{prefix}.bias"].astype(np.float32), f"{prefix}.b")
        return self.node("LayerNormalization", [x, scale, bias], prefix, axis=-1, epsilon=eps)

    def gelu(self, x: str) -> str:
        """Exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))), as BERT's "gelu" is."""
        erf = self.node("Erf", [self.node("Mul", [x, self.scalar(1 / math.sqrt(2), "inv_sqrt2")], "gelu.scale")],
                        "gelu.erf")
        plus_one = self.node("Add", [erf, self.scalar(1.0, "one")], "gelu.plus_one")
        return self.node("Mul", [self.node("Mul", [x, plus_one], "gelu.mul"), self.scalar(0.5, "half")], "gelu")


def _encoder_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """The BERT weights of ``model.safetensors`` with whatever prefix the file gives them taken off."""
    state = load_file(model_dir / "model.safetensors")
    for prefix in WEIGHT_PREFIXES:
        if f"{prefix}embeddings.word_embeddings.weight" in state:
            return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    raise ValueError(f"{model_dir / 'model.safetensors'} holds no BERT embeddings.word_embeddings.weight")


def _embeddings(graph: _BertGraph, config: dict) -> str:
    """Word + position (0..seq-1) + token-type-0 embeddings, layer-normalised: (batch, seq, hidden)."""
    words = graph.node("Gather", [graph.constant(graph.state["embeddings.word_embeddings.weight"], "word_table"),
                                  INPUT_NAMES[0]], "word_embeddings")
    # Rows 0..seq-1 of the position table. A Slice, not Gather(table, Range(0, seq)): ONNX Runtime 1.32's
    # GatherToSliceFusion rewrites that Gather into a Slice and gets it wrong here ("Starts must be a 1-D array").
    seq_len = graph.node("Shape", [INPUT_NAMES[0]], "seq_len", start=1, end=2)
    position_table = graph.constant(graph.state["embeddings.position_embeddings.weight"], "position_table")
    placed = graph.node("Slice", [position_table, graph.ints([0], "first_position"), seq_len, graph.ints([0], "rows")],
                        "position_embeddings")
    token_type = graph.constant(graph.state["embeddings.token_type_embeddings.weight"][0], "token_type_0")
    summed = graph.node("Add", [graph.node("Add", [words, placed], "add_positions"), token_type], "add_token_type")
    return graph.layer_norm(summed, "embeddings.LayerNorm", config["layer_norm_eps"])


def _split_heads(graph: _BertGraph, x: str, heads: int, head_dim: int, perm: list[int], hint: str) -> str:
    """(batch, seq, hidden) to (batch, heads, seq, head_dim), or to (batch, heads, head_dim, seq) for the keys."""
    split = graph.node("Reshape", [x, graph.ints([0, 0, heads, head_dim], "heads_shape")], f"{hint}.split")
    return graph.node("Transpose", [split], f"{hint}.heads", perm=perm)


def _attention(graph: _BertGraph, x: str, mask_bias: str, prefix: str, config: dict) -> str:
    """BERT self-attention with its output projection, residual and layer norm."""
    heads = config["num_attention_heads"]
    head_dim = config["hidden_size"] // heads
    query = _split_heads(graph, graph.linear(x, f"{prefix}.self.query"), heads, head_dim, [0, 2, 1, 3], "query")
    key = _split_heads(graph, graph.linear(x, f"{prefix}.self.key"), heads, head_dim, [0, 2, 3, 1], "key")
    value = _split_heads(graph, graph.linear(x, f"{prefix}.self.value"), heads, head_dim, [0, 2, 1, 3], "value")
    scores = graph.node("Mul", [graph.node("MatMul", [query, key], "scores"),
                                graph.scalar(1 / math.sqrt(head_dim), "inv_sqrt_head_dim")], "scaled")
    probabilities = graph.node("Softmax", [graph.node("Add", [scores, mask_bias], "masked")], "softmax", axis=-1)
    context = graph.node("Transpose", [graph.node("MatMul", [probabilities, value], "context")], "context.seq",
                         perm=[0, 2, 1, 3])
    merged = graph.node("Reshape", [context, graph.ints([0, 0, config["hidden_size"]], "hidden_shape")], "merged")
    projected = graph.linear(merged, f"{prefix}.output.dense")
    residual = graph.node("Add", [projected, x], f"{prefix}.residual")
    return graph.layer_norm(residual, f"{prefix}.output.LayerNorm", config["layer_norm_eps"])


def _layer(graph: _BertGraph, x: str, mask_bias: str, index: int, config: dict) -> str:
    """One encoder layer: self-attention, then the GELU feed-forward with its residual and layer norm."""
    prefix = f"encoder.layer.{index}"
    attended = _attention(graph, x, mask_bias, f"{prefix}.attention", config)
    hidden = graph.gelu(graph.linear(attended, f"{prefix}.intermediate.dense"))
    residual = graph.node("Add", [graph.linear(hidden, f"{prefix}.output.dense"), attended], f"{prefix}.residual")
    return graph.layer_norm(residual, f"{prefix}.output.LayerNorm", config["layer_norm_eps"])


def _mask_bias(graph: _BertGraph, mask: str) -> str:
    """(1 - mask) * MASK_VALUE as (batch, 1, 1, seq), added to the scores so padded keys get no attention."""
    inverted = graph.node("Sub", [graph.scalar(1.0, "one"), mask], "inverted_mask")
    bias = graph.node("Mul", [inverted, graph.scalar(MASK_VALUE, "mask_value")], "mask_bias")
    return graph.node("Unsqueeze", [bias, graph.ints([1, 2], "mask_axes")], "mask_bias.4d")


def _mean_pool_normalised(graph: _BertGraph, tokens: str, mask: str) -> str:
    """sentence-transformers' head: the mean of the real tokens' vectors, scaled to unit length."""
    token_mask = graph.node("Unsqueeze", [mask, graph.ints([-1], "last_axis")], "token_mask")
    seq_axis = graph.ints([1], "seq_axis")
    summed = graph.node("ReduceSum", [graph.node("Mul", [tokens, token_mask], "masked_tokens"), seq_axis], "summed",
                        keepdims=0)
    count = graph.node("ReduceSum", [token_mask, seq_axis], "count", keepdims=0)
    floored = graph.node("Max", [count, graph.scalar(MIN_TOKEN_COUNT, "min_count")], "count.floor")
    mean = graph.node("Div", [summed, floored], "mean")
    norm = graph.node("ReduceL2", [mean], "norm", axes=[1], keepdims=1)
    norm = graph.node("Max", [norm, graph.scalar(MIN_NORM, "min_norm")], "norm.floor")
    return graph.node("Div", [mean, norm], "normalised")


def build_minilm_graph(model_dir: Path) -> onnx.ModelProto:
    """The graph: token ids and attention mask (batch, seq) in; unit sentence vectors (batch, hidden) out."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    graph = _BertGraph(_encoder_weights(model_dir))
    mask = graph.node("Cast", [INPUT_NAMES[1]], "mask", to=FLOAT)
    mask_bias = _mask_bias(graph, mask)
    x = _embeddings(graph, config)
    for index in range(config["num_hidden_layers"]):
        x = _layer(graph, x, mask_bias, index, config)
    inputs = [(name, INT64, ["batch", "seq"]) for name in INPUT_NAMES]
    return graph.model(FILE_STEM, inputs,
                       [(_mean_pool_normalised(graph, x, mask), OUTPUT_NAME, FLOAT, ["batch", config["hidden_size"]])])


def minilm_onnx_file(model_dir: Path, cache_dir: Path) -> Path:
    """The graph's file in ``cache_dir``, named for the weights' digest, built (and checked) on first use only."""
    name = f"{FILE_STEM}-{file_digest(model_dir / 'model.safetensors')}-graph{GRAPH_VERSION}"
    return cached_onnx(name, lambda: build_minilm_graph(model_dir),
                       lambda file: _check_against_sentence_transformers(file, model_dir), cache_dir)


def _check_against_sentence_transformers(onnx_file: Path, model_dir: Path) -> float | None:
    """The worst cosine with sentence-transformers' vectors on a few texts; None where it is not installed
    (the default install: the tests compare the two wherever the ``[transformers]`` extra is)."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return None
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(str(model_dir), device="cpu").encode(PARITY_TEXTS, normalize_embeddings=True)
    got = OnnxSentenceEmbedder(model_dir, onnx_file=onnx_file).embed(PARITY_TEXTS)
    return float(cosines(expected, got).min())


def _tokenizer(model_dir: Path, config: dict) -> Tokenizer:
    """The folder's tokenizer, truncating and padding as sentence-transformers does.

    ``tokenizer.json`` pads and truncates to a fixed 128; sentence-transformers instead truncates to the
    folder's ``max_seq_length`` ([CLS] and [SEP] included) and pads each batch to its longest text.
    """
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    st_config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
    tokenizer.enable_truncation(max_length=min(st_config["max_seq_length"], config["max_position_embeddings"]))
    pad_id = config.get("pad_token_id", 0)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=tokenizer.id_to_token(pad_id))
    return tokenizer


class OnnxSentenceEmbedder:
    """all-MiniLM-L6-v2 sentence vectors from ONNX Runtime: the same as sentence-transformers', with no torch."""

    def __init__(self, model_dir: Path, cache_dir: Path | None = None, threads: int = 0,
                 onnx_file: Path | None = None) -> None:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self.dim = int(config["hidden_size"])
        self._tokenizer = _tokenizer(model_dir, config)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one thread per core
        options.log_severity_level = 3  # errors only
        options.enable_mem_pattern = False  # its planned buffers cost memory and here no speed (evals: 394 vs 446 MB)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as OnnxModel's: idle threads sleep
        path = onnx_file or minilm_onnx_file(model_dir, cache_dir or default_cache_dir())
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors (n, dim) in the order of ``texts``; batches of similar length waste little on padding."""
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            vectors[batch] = self._embed_batch([texts[i] for i in batch])
        return vectors

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        feed = {INPUT_NAMES[0]: np.array([e.ids for e in encodings], dtype=np.int64),
                INPUT_NAMES[1]: np.array([e.attention_mask for e in encodings], dtype=np.int64)}
        return self._session.run([OUTPUT_NAME], feed)[0]
