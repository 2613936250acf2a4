"""ONNX models built once, checked, cached by content, and run on ONNX Runtime.

On this project's 2-core CPU, ONNX Runtime runs EfficientNet-Lite0 about 8x
faster than PyTorch side by side (evals/bench.py compares the pipelines), and
it needs no torch. A model file is named for what it holds (the weights
file's content digest, the preprocessing, the graph builder's version), so a
fine-tuned checkpoint gets its own file and a stale one is never used. A build
whose outputs do not reproduce the reference (cosine below PARITY_COSINE on a
fixed test batch) is refused, never cached.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from loupe.base.errors import ModelNotFoundError

if TYPE_CHECKING:
    import onnx

PARITY_COSINE = 0.999
INPUT_NAME = "pixels"
CHUNK = 4  # images per run of the graph (OnnxModel.run says why)


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256: what names its ONNX file."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


def parity_batch(size: int) -> np.ndarray:
    """A fixed batch of two scaled pictures (smooth gradients and noise), the same on every machine."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    smooth = np.stack([np.add.outer(ramp, ramp) / 2, np.outer(ramp, ramp), np.add.outer(-ramp, ramp) / 2])
    noise = rng.uniform(-1, 1, (3, size, size)).astype(np.float32)
    return np.stack([smooth, noise]).astype(np.float32)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (n, d) arrays."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def cached_onnx(name: str, build: Callable[[], onnx.ModelProto], check: Callable[[Path], float | None],
                cache_dir: Path) -> Path:
    """The ONNX file ``name`` in ``cache_dir``, built by ``build`` the first time.

    ``check`` gives the new file's worst cosine with its reference model (None where no reference can run);
    below PARITY_COSINE the file is deleted and the load refused. The file appears only when complete.
    """
    target = cache_dir / f"{name}.onnx"
    if target.is_file():
        return target
    import onnx  # only to write a new file: the import takes a second

    cache_dir.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".onnx.tmp", delete=False)
    handle.close()
    try:
        onnx.save(build(), handle.name)
        worst = check(Path(handle.name))
        if worst is not None and worst < PARITY_COSINE:
            raise ModelNotFoundError(f"the ONNX graph {name} does not match its reference model (cosine "
                                     f"{worst:.5f} < {PARITY_COSINE}): please report this, with `pip list`")
        os.replace(handle.name, target)
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
    return target


class OnnxModel:
    """An ONNX file on ONNX Runtime's CPU provider: float pixels in, the model's outputs as arrays out."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        options.log_severity_level = 3
        options.enable_mem_pattern = False  # its planned buffers cost memory and here no speed (evals: 394 vs 446 MB)
        # Its threads sleep when idle: spinning after each embedding took the cores from the local-feature
        # matching that follows it in an image query (Holidays p50 81 -> 70 ms with this alone).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, pixels: np.ndarray) -> list[np.ndarray]:
        """The outputs for every row of ``pixels``, run CHUNK rows at a time (each output row is its input row's).

        ONNX Runtime's memory arena keeps the largest run's buffers for the session's life: at 320 px, runs of
        16 images kept 286 MB and were no faster per image than runs of 4, which keep 84 MB.
        """
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        parts = [self._session.run(None, {INPUT_NAME: pixels[start:start + CHUNK]})
                 for start in range(0, max(len(pixels), 1), CHUNK)]  # an empty batch runs once, as before
        return [np.concatenate(outputs) for outputs in zip(*parts)]
