"""Where an index lives: a folder on this machine, or a prefix on object storage (``s3://bucket/prefix``).

LanceDB reads and writes the table at either. Beside the table an index keeps a few small records of its own
(which models built it, the collection's roots): in a folder index they are JSON files next to the table, and on
object storage they are rows of a small ``loupe_files`` Lance table next to it, so that every machine that reads
the table reads them too. What must be a real local file (the conversations' SQLite file, thumbnails the UI
serves, the writer lock) lives in the index folder, or for an object-store index in a cache folder on this
machine (``Settings.index_dir``: ``~/.loupe/remote/<hash of the URI>``).

Credentials, region and profile come from the usual AWS settings, read by Lance itself (``AWS_ACCESS_KEY_ID``,
``AWS_PROFILE``, ``~/.aws/...``); an S3-compatible store's endpoint from ``AWS_ENDPOINT_URL`` or loupe.toml's
``[storage] endpoint_url``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import lancedb
import pyarrow as pa

from loupe.base.config import Settings, is_object_store
from loupe.base.errors import LoupeError, first_line

# Each check for new commits is a LIST request on object storage. On the emulator (evals/object_store_bench.py,
# 12 photos and 4 receipts) checking on every read made a text query 265 ms at p50, checking every 5 s 124 ms
# (a folder: 38-50 ms); a real bucket adds its round trip to every check.
OBJECT_STORE_REFRESH = timedelta(seconds=5)
FILES_TABLE = "loupe_files"  # the small records of an object-store index (name -> text)
_FILES_SCHEMA = pa.schema([pa.field("name", pa.string()), pa.field("text", pa.string())])


class IndexUnreachableError(LoupeError):
    """An index on object storage that cannot be read (its endpoint, bucket or credentials)."""


@dataclass(frozen=True)
class IndexLocation:
    uri: str  # what LanceDB connects to: the folder's path, or the object-store URI
    local_dir: Path  # this machine's folder for the index's local files (the index folder itself when local)
    storage_options: dict[str, str] = field(default_factory=dict)

    @property
    def remote(self) -> bool:
        return is_object_store(self.uri)

    def __str__(self) -> str:
        return self.uri

    def connect(self) -> lancedb.DBConnection:
        """Reads check for a newer table version, so a long-lived process (the UI, an MCP server) sees rows
        that another process, on this machine or another, indexed since it opened the table: a folder's on
        every read, an object store's at most every OBJECT_STORE_REFRESH."""
        self.local_dir.mkdir(parents=True, exist_ok=True)
        return lancedb.connect(self.uri, storage_options=self.storage_options or None,
                               read_consistency_interval=OBJECT_STORE_REFRESH if self.remote else timedelta(0))

    def read_text(self, name: str) -> str | None:
        """One of the index's small records, or None if it has none of that name."""
        if not self.remote:
            path = self.local_dir / name
            return path.read_text(encoding="utf-8") if path.is_file() else None
        try:
            db = self.connect()
            if FILES_TABLE not in db.list_tables().tables:
                return None
            rows = db.open_table(FILES_TABLE).search().where(f"name = '{_checked(name)}'").limit(1).to_list()
        except (OSError, RuntimeError, ValueError) as exc:  # the first read of a run: say why, in one line
            raise IndexUnreachableError(f"cannot read the index at {self.uri}: {first_line(exc)}") from exc
        return rows[0]["text"] if rows else None

    def write_text(self, name: str, text: str) -> None:
        """Replace one small record, atomically: a crash leaves the old text or the new one."""
        if not self.remote:
            self.local_dir.mkdir(parents=True, exist_ok=True)
            target = self.local_dir / name
            temporary = target.with_name(target.name + ".tmp")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(target)
            return
        db = self.connect()
        row = pa.table({"name": [_checked(name)], "text": [text]}, schema=_FILES_SCHEMA)
        if FILES_TABLE not in db.list_tables().tables:
            db.create_table(FILES_TABLE, schema=_FILES_SCHEMA)
        table = db.open_table(FILES_TABLE)
        table.merge_insert("name").when_matched_update_all().when_not_matched_insert_all().execute(row)


def index_location(settings: Settings) -> IndexLocation:
    """The configured index: its folder, or its object-store URI with what Lance needs to reach it."""
    if not settings.index_uri:
        return IndexLocation(str(settings.index_dir), settings.index_dir)
    options: dict[str, str] = {}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:  # Lance otherwise asks the bucket for its region, which an S3-compatible store may not answer
        options["aws_region"] = region
    endpoint = settings.storage_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") \
        or os.environ.get("AWS_ENDPOINT_URL", "")
    if endpoint:
        options["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"  # a store on this network without TLS, such as an emulator
    return IndexLocation(settings.index_uri, settings.index_dir, options)


def as_location(where: IndexLocation | str | Path) -> IndexLocation:
    """A location from a plain folder too (what callers and tests that know only a folder pass)."""
    if isinstance(where, IndexLocation):
        return where
    return index_location(Settings().with_index_dir(where))


def _checked(name: str) -> str:
    """Record names are Loupe's own constants; refuse anything that would not be one inside a filter."""
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"not a record name: {name!r}")
    return name
