"""The OpenAI client for model backends, or an error that says which setting is missing."""

from __future__ import annotations

import os

from loupe.base.errors import ModelNotFoundError


def openai_client(what: str, alternative: str):
    """An ``openai.OpenAI`` client (key from OPENAI_API_KEY, server from OPENAI_BASE_URL)."""
    import openai

    if not os.environ.get("OPENAI_API_KEY"):
        raise ModelNotFoundError(f"{what} needs an API key: set OPENAI_API_KEY (and OPENAI_BASE_URL for a "
                                 f"compatible server), or {alternative}")
    return openai.OpenAI()
