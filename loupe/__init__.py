"""Loupe: a self-hosted image search assistant.

This package holds what every layer shares (configuration, errors) and the
entry points that wire the layers together (the indexer, the Python API, the
CLI and the MCP server). The layers themselves live beside it: ``store/`` (the
LanceDB table), ``tools/`` (models and the four retrieval tools), ``agent/``,
``ui/`` and ``evals/``.

``loupe.open(index)`` is the Python API (:mod:`loupe.api`); it is imported on
first use, so ``import loupe.base.config`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Collection", "open"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from loupe import api

        return getattr(api, name)
    raise AttributeError(f"module 'loupe' has no attribute {name!r}")
