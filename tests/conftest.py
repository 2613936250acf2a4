"""Shared fixtures: real models, real data from ../shared/datasets, real indexes on disk."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loupe.evals import paths
from loupe.base.config import ModelSettings, Settings
from loupe.indexer import Indexer
from loupe.metadata import load_metadata
from loupe.store.image_table import ImageTable
from loupe.tools.models import Models
from loupe.tools.models.registry import ModelKind, load, parse
from loupe.tools.process import configure_process
from loupe.tools.toolbox import Toolbox

DATASETS = paths.DATASETS
HOLIDAYS = DATASETS / "holidays"
SROIE = DATASETS / "sroie"
SMVS = DATASETS / "smvs_dvd"

HOLIDAYS_SAMPLE = 24
SROIE_SAMPLE = 12
SMVS_SAMPLE = 8
S3_BUCKET = "photos"  # made on the S3 server of the object-store tests (s3_endpoint)


def pytest_configure(config: pytest.Config) -> None:
    configure_process()
    if not DATASETS.is_dir():
        raise pytest.UsageError(f"the shared datasets are missing: expected them at {DATASETS}")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(index_dir=tmp_path_factory.mktemp("index"), offline=True)


@pytest.fixture(scope="session")
def models(settings: Settings) -> Models:
    return Models(settings)


def load_model(kind: ModelKind, text: str, weights: str = "", config: str = "") -> object:
    """One model through the registry, as the configuration would name it, offline."""
    settings = Settings(offline=True, models=ModelSettings(image_encoder_config=config))
    return load(parse(kind, text, weights), settings)


def holidays_files(count: int = HOLIDAYS_SAMPLE) -> list[Path]:
    return sorted((HOLIDAYS / "images").iterdir())[:count]


def sroie_ids(count: int = SROIE_SAMPLE) -> list[str]:
    return [p.stem for p in sorted((SROIE / "images").iterdir())[:count]]


def sroie_key(receipt_id: str) -> dict:
    return json.loads((SROIE / "key" / f"{receipt_id}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mixed collection: Holidays photos, SROIE receipts and SMVS catalogue covers."""
    root = tmp_path_factory.mktemp("collection")
    for sub in ("holidays", "sroie", "smvs"):
        (root / sub).mkdir()
    for path in holidays_files():
        shutil.copyfile(path, root / "holidays" / path.name)
    for receipt in sroie_ids():
        shutil.copyfile(SROIE / "images" / f"{receipt}.jpg", root / "sroie" / f"receipt_{receipt}.jpg")
    for path in sorted((SMVS / "reference").iterdir())[:SMVS_SAMPLE]:
        shutil.copyfile(path, root / "smvs" / f"dvd_{path.name}")
    return root


@pytest.fixture(scope="session")
def indexed(settings: Settings, models: Models, collection: Path) -> Toolbox:
    """The collection indexed once for the whole session (about a minute on 2 cores)."""
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    report = Indexer(settings, models, table, batch_size=8).run([collection])
    assert report.problems == []
    assert report.added == HOLIDAYS_SAMPLE + SROIE_SAMPLE + SMVS_SAMPLE
    return Toolbox(settings, models)


@pytest.fixture(scope="session")
def receipts_index(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Eight SROIE receipts with their key as metadata (date -> year, total -> price)."""
    root = tmp_path_factory.mktemp("receipts")
    folder = root / "receipts"
    folder.mkdir()
    lines = []
    for number in range(8):
        receipt = f"{number:03d}"
        shutil.copyfile(SROIE / "images" / f"{receipt}.jpg", folder / f"{receipt}.jpg")
        key = sroie_key(receipt)
        lines.append(json.dumps({"file": f"{receipt}.jpg", "title": key["company"], "date": key["date"],
                                 "price": key["total"]}))
    (root / "meta.jsonl").write_text("\n".join(lines), encoding="utf-8")
    settings = dataclasses.replace(models.settings, index_dir=root / "index")
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    Indexer(settings, models, table).run([folder], metadata=load_metadata(root / "meta.jsonl"))
    return settings


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (no MinIO can be installed here): its URL, with the bucket made."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=S3_BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def aws_env(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The usual AWS settings, as a user of an S3-compatible store sets them; LOUPE_HOME holds the local files.
    Returns the environment for a subprocess."""
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": s3_endpoint, "LOUPE_HOME": str(tmp_path / "home"), "LOUPE_OFFLINE": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **env}
