"""PyTorch image models exported once to ONNX, checked against PyTorch, cached, and run on ONNX Runtime.

On this project's 2-core CPU, ONNX Runtime runs EfficientNet-Lite0 about 8x
faster than PyTorch side by side (evals/bench.py compares the pipelines). The
export is keyed by the weights file's content and the preprocessing, so a
fine-tuned checkpoint gets its own file and a stale export is never used. An
export that does not reproduce PyTorch's output (cosine below PARITY_COSINE on
a fixed test batch) is refused, never cached.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from loupe.errors import ModelNotFoundError

PARITY_COSINE = 0.999
INPUT_NAME = "pixels"


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256: what names its export."""
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


def exported(module, name: str, size: int, output_names: list[str], cache_dir: Path) -> Path:
    """``module`` (eval mode, (n, 3, size, size) floats in) as an ONNX file in ``cache_dir``, made once.

    ``name`` must say what the file holds (architecture, weights digest, pooling): it is the cache key.
    """
    target = cache_dir / f"{name}.onnx"
    if target.is_file():
        return target
    import torch

    cache_dir.mkdir(parents=True, exist_ok=True)
    batch = parity_batch(size)
    sample = torch.from_numpy(batch)
    handle = tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".onnx.tmp", delete=False)
    handle.close()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on constant folding are for its developers
            # dynamo=False: the TorchScript exporter handles EfficientNet's padding ops; the dynamo one does not here.
            torch.onnx.export(module, (sample,), handle.name, input_names=[INPUT_NAME], output_names=output_names,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, **{o: {0: "batch"} for o in output_names}},
                              opset_version=17, dynamo=False)
            expected = [t.numpy() for t in module(sample)]
        got = OnnxModel(Path(handle.name)).run(batch)
        worst = min(float(cosines(e, g).min()) for e, g in zip(expected, got))
        if worst < PARITY_COSINE:
            raise ModelNotFoundError(f"the ONNX export of {name} does not match PyTorch (cosine {worst:.5f} < "
                                     f"{PARITY_COSINE}); set image_runtime = 'torch' and report this")
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
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, pixels: np.ndarray) -> list[np.ndarray]:
        return self._session.run(None, {INPUT_NAME: np.ascontiguousarray(pixels, dtype=np.float32)})
