"""Loupe: a self-hosted image search assistant.

This package holds what every layer shares (configuration, errors) and the
entry points that wire the layers together (the indexer and the CLI). The
layers themselves live beside it: ``store/`` (the LanceDB table), ``tools/``
(models and the four retrieval tools), ``agent/``, ``ui/`` and ``evals/``.
"""

__version__ = "0.1.0"
