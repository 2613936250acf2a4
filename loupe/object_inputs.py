"""An object-store prefix as what an indexing run reads: its images copied to a folder on this machine first.

Loupe indexes files by path, and a record's path is what its answers show and its local features were read
from. So ``loupe index s3://bucket/photos/`` copies the images under the prefix that are new or changed since
the last run (by size and ETag) into ``~/.loupe/mirrors/<bucket>/<prefix>/`` and indexes that folder: a
re-run downloads and reads only what changed, and an object deleted from the bucket is deleted from the mirror,
so ``--prune`` drops its row. Credentials, region and endpoint are the usual AWS settings (boto3, the ``[aws]``
extra). With ``--engine ray`` the workers read the mirror by its path: put ``LOUPE_HOME`` on a disk they share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loupe.base.config import is_object_store, loupe_home
from loupe.base.errors import LoupeError, MissingExtraError, first_line
from loupe.tools.image_file import SUPPORTED_SUFFIXES

MANIFEST = ".loupe-mirror.json"  # key -> [size, ETag] of every object copied, for the next run


class MirrorError(LoupeError):
    """An object-store prefix that could not be listed or copied."""


def local_roots(paths: list[str | Path], endpoint_url: str = "",
                progress: Callable[[int, int, str], None] | None = None) -> list[Path]:
    """The folders and files to index: each s3:// prefix mirrored first, every other path as it is."""
    return [mirror_prefix(str(path), loupe_home(), endpoint_url, progress) if is_object_store(str(path))
            else Path(path).expanduser() for path in paths]


def mirror_prefix(uri: str, home: Path, endpoint_url: str = "",
                  progress: Callable[[int, int, str], None] | None = None) -> Path:
    """The mirror folder of ``uri`` (``s3://bucket/prefix``), brought up to date with the bucket; ``endpoint_url``
    for an S3-compatible store (default: boto3's own settings, such as $AWS_ENDPOINT_URL). ``progress`` gets
    (objects checked, objects listed, "download") as the indexer's progress bar does."""
    if not uri.startswith("s3://"):
        raise MirrorError(f"{uri[:120]}: only s3:// prefixes can be indexed directly; copy the files to a folder")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise MirrorError(f"{uri[:120]}: no bucket named")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    folder = _target(home / "mirrors", f"{bucket}/{prefix}")  # "s3://b/../../x" stays under the mirrors too
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST
    copied: dict[str, list] = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    client = _client(endpoint_url)
    try:
        listed = {item["Key"]: [item["Size"], item["ETag"]] for page in client.get_paginator("list_objects_v2")
                  .paginate(Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])
                  if Path(item["Key"]).suffix.lower() in SUPPORTED_SUFFIXES and not item["Key"].endswith("/")}
        for done, (key, state) in enumerate(listed.items()):
            if progress:
                progress(done, len(listed), "download")
            target = _target(folder, key.removeprefix(prefix))
            if copied.get(key) != state or not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                client.download_file(bucket, key, str(partial))
                os.replace(partial, target)  # a crash leaves the old copy or none, never half a file
                copied[key] = state
                manifest_path.write_text(json.dumps(copied), encoding="utf-8")
    except Exception as exc:  # botocore's errors: no such bucket, refused credentials, no endpoint
        if isinstance(exc, LoupeError):
            raise
        raise MirrorError(f"cannot copy {uri[:120]}: {first_line(exc)}") from exc
    for key in [key for key in copied if key not in listed]:  # gone from the bucket: gone from the mirror
        _target(folder, key.removeprefix(prefix)).unlink(missing_ok=True)
        del copied[key]
    manifest_path.write_text(json.dumps(copied), encoding="utf-8")
    return folder


def _target(folder: Path, relative: str) -> Path:
    """The mirror file of an object (or a prefix's folder); a key that would climb out ("../x") is refused."""
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise MirrorError(f"refused the object key {relative[:120]!r}: it points outside the mirror folder")
    return target


def _client(endpoint_url: str) -> Any:
    try:
        import boto3
    except ImportError:
        raise MissingExtraError("indexing an s3:// prefix needs boto3: pip install 'loupe[aws]'") from None
    return boto3.client("s3", endpoint_url=endpoint_url or None)
