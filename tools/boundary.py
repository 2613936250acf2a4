"""The collection boundary: the one check every tool makes before reading a file by path.

A tool gets an image in one of three ways: the user's upload (bytes), a record
id (read from the index, no file at all), or a path. A path is read only when
it resolves, symlinks followed, to a file inside one of the indexed roots and
not inside the index folder. Anything else, ``/etc/passwd`` written by a model
that obeyed text printed in a photo included, is refused with one message that
does not say whether the file exists.

The person at a terminal is not a model: ``loupe search --image FILE`` wraps
the path in :class:`ChosenFile`, which the tools accept as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loupe.base.errors import LoupeError
from loupe.store.location import IndexLocation, as_location
from loupe.store.roots import load_roots


class PathRefused(LoupeError):
    """A path outside the collection; the message is the same whether or not the file exists."""


@dataclass(frozen=True)
class ChosenFile:
    """A file the person at the terminal (or a Python caller) chose: read without the boundary check."""

    path: Path


ImageInput = bytes | ChosenFile | str | Path | None


@dataclass(frozen=True)
class CollectionBoundary:
    roots: tuple[Path, ...]
    index_dir: Path

    @classmethod
    def of_index(cls, index: IndexLocation | Path) -> CollectionBoundary:
        location = as_location(index)
        return cls(tuple(load_roots(location)), Path(os.path.realpath(location.local_dir)))

    def contains(self, path: str | Path) -> bool:
        """True when ``path`` resolves inside an indexed root (or is an indexed single file)."""
        return self._inside(_real(path))

    def resolve(self, path: str | Path) -> Path:
        """The real path of a file inside the collection, or :class:`PathRefused`."""
        resolved = _real(path)
        if not self._inside(resolved):
            shown = str(path)[:120]
            raise PathRefused(f"refused {shown!r}: Loupe reads only the attached image, indexed records, and files "
                              "inside the indexed folders")
        return resolved

    def _inside(self, resolved: Path | None) -> bool:
        if resolved is None or resolved.is_relative_to(self.index_dir):
            return False
        return any(resolved.is_relative_to(root) for root in self.roots)  # a single-file root: equal is relative


def _real(path: str | Path) -> Path | None:
    """The path with every symlink resolved; None for text that cannot be a path (NUL bytes, loops)."""
    text = str(path)
    if not text or "\x00" in text or len(text) > 4096:
        return None
    try:
        return Path(os.path.realpath(Path(text).expanduser()))
    except (OSError, RuntimeError, ValueError):
        return None
