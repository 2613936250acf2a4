"""Error types that carry a message meant for the user, not a traceback.

The CLI prints ``str(error)`` of these and exits non-zero; anything else is a
bug and keeps its traceback.
"""


class LoupeError(Exception):
    """Base class: an error whose message tells the user what to do."""


class ModelNotFoundError(LoupeError):
    """A configured model could not be found locally nor fetched."""


class ImageRejected(LoupeError):
    """An image file that cannot be indexed or used as a query."""


class IndexMismatchError(LoupeError):
    """The index on disk was built with other models than the ones configured."""


class ConfigError(LoupeError):
    """A configuration file or value that cannot be used."""


class MissingExtraError(LoupeError):
    """A command or backend needs a pip extra (``[train]``, ``[clip]``...) that is not installed."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """A foreign library's error as the tail of a one-line message: its first line, or its type's name when it
    has no text (storage libraries often raise a page of context)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
