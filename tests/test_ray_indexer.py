"""Indexing on a real local Ray cluster: a head and a worker node, each its own raylet process on 127.0.0.1.

One run indexes a few Holidays photos and SROIE receipts while its model actors are killed with kill -9 after
the first commit; the tests check that run against the single-process indexer on the same files.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: it comes with the [ray] extra (pip install -e '.[ray]')")

import psutil  # Ray's own dependency; it and the cluster utilities come after the skip
from ray._common.utils import get_default_ray_temp_dir  # private, but where Cluster writes its address
from ray.cluster_utils import Cluster

from loupe.base.config import Settings
from loupe.indexer import Indexer, IndexReport
from loupe.ray_indexer import index_with_ray
from loupe.store.image_table import ImageTable
from loupe.store.location import index_location
from loupe.tools.models import Models
from tests.conftest import S3_BUCKET, SROIE, holidays_files

PHOTOS = 3
RECEIPTS = ("000", "001")
BATCH = 1  # one file per commit: the kill lands with batches still in flight
BROKEN = "truncated.jpg"
REPO = Path(__file__).resolve().parents[1]
COMPARED = ["id", "path", "sha256", "phash", "width", "height", "ocr_text", "ocr_lines", "caption", "search_text",
            "image_vector", "ocr_vector", "caption_vector"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray-collection")
    for path in holidays_files(PHOTOS):
        shutil.copyfile(path, root / path.name)
    for receipt in RECEIPTS:
        shutil.copyfile(SROIE / "images" / f"{receipt}.jpg", root / f"receipt_{receipt}.jpg")
    (root / BROKEN).write_bytes(holidays_files(1)[0].read_bytes()[:2000])  # a truncated JPEG: one problem line
    return root


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head node and one worker node (two raylets, each with its own worker processes), this test's driver
    connected to it. The head has one CPU and the worker two, so the two model actors (a CPU each) cannot both
    run on the head."""
    temp_dir = tempfile.mkdtemp(prefix="loupe-ray-")  # short: Ray's socket paths must fit in 107 bytes
    # Cluster.add_node records the head's address in Ray's default temp folder whatever temp_dir says, and fails
    # on a fresh machine where no Ray has run yet and that folder does not exist
    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": temp_dir,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _model_actor_pids(cluster: Cluster) -> list[int]:
    """The processes of this cluster's model actors: children of its raylets whose title names the actor."""
    raylets = [psutil.Process(node.all_processes["raylet"][0].process.pid) for node in cluster.list_all_nodes()]
    return [child.pid for raylet in raylets for child in raylet.children(recursive=True)
            if "ModelActor" in " ".join(_cmdline(child))]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # it ended meanwhile
        return []


@dataclasses.dataclass
class SingleRun:
    report: IndexReport
    table: ImageTable


@dataclasses.dataclass
class RayRun:
    settings: Settings
    report: IndexReport
    table: ImageTable
    killed: list[int]


@pytest.fixture(scope="module")
def ray_run(cluster: Cluster, folder: Path, models: Models, tmp_path_factory: pytest.TempPathFactory) -> RayRun:
    """The folder indexed on the cluster by two actors, whose processes get kill -9 after the first commit."""
    settings = dataclasses.replace(models.settings, index_dir=tmp_path_factory.mktemp("ray-index"))
    killed: list[int] = []

    def kill_the_actors(done: int, total: int, stage: str) -> None:
        """Every model actor, so the batches still to come were in flight on one of them, or not sent yet."""
        if stage == "write" and 0 < done < total and not killed:
            killed.extend(_model_actor_pids(cluster))
            assert killed, "no model actor process found to kill"
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    report = index_with_ray(settings, [folder], workers=2, batch_size=BATCH, progress=kill_the_actors)
    return RayRun(settings, report, ImageTable.open(settings.index_dir), killed)


@pytest.fixture(scope="module")
def single_process(folder: Path, models: Models, tmp_path_factory: pytest.TempPathFactory) -> SingleRun:
    settings = dataclasses.replace(models.settings, index_dir=tmp_path_factory.mktemp("single-index"))
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    report = Indexer(settings, models, table, batch_size=BATCH).run([folder])
    assert report.added == PHOTOS + len(RECEIPTS)
    return SingleRun(report, table)


def _rows(table: ImageTable) -> dict[str, dict]:
    return {row["id"]: row for row in table.scan(COMPARED).to_pylist()}


def test_a_worker_killed_mid_run_leaves_every_image_exactly_once(ray_run: RayRun, folder: Path) -> None:
    assert ray_run.killed  # every model actor then: the files after the first batch needed restarted actors
    paths = [row["path"] for row in ray_run.table.scan(["path"]).to_pylist()]
    images = [str(path.resolve()) for path in folder.iterdir() if path.name != BROKEN]
    assert sorted(paths) == sorted(images)  # each once, none missing
    assert ray_run.report.added == len(paths)
    assert len(ray_run.report.problems) == 1 and BROKEN in ray_run.report.problems[0]


def test_the_cluster_writes_the_rows_the_single_process_indexer_writes(ray_run: RayRun,
                                                                     single_process: SingleRun) -> None:
    assert ray_run.report.problems == single_process.report.problems
    expected, written = _rows(single_process.table), _rows(ray_run.table)
    assert written.keys() == expected.keys()
    assert any(row["ocr_text"] for row in expected.values())  # the receipts were read
    for record_id, row in expected.items():
        for column in COMPARED:
            if column.endswith("_vector"):
                np.testing.assert_allclose(written[record_id][column], row[column], atol=1e-5, err_msg=column)
            else:
                assert written[record_id][column] == row[column], column


def test_a_rerun_on_the_cluster_adds_nothing(ray_run: RayRun, folder: Path) -> None:
    count = ray_run.table.count()
    report = index_with_ray(ray_run.settings, [folder], workers=1, batch_size=BATCH)
    assert (report.added, report.updated, report.unchanged) == (0, 0, count)
    assert report.problems == ray_run.report.problems  # the truncated file is tried again, and named again
    assert ImageTable.open(ray_run.settings.index_dir).count() == count


def test_loupe_index_engine_ray_uses_the_cluster(cluster: Cluster, folder: Path, tmp_path: Path) -> None:
    """The command line's --engine ray, against this test's cluster: the same rows, the problem named, and the
    image encoder in use said first."""
    env = {**os.environ, "LOUPE_OFFLINE": "1"}
    command = [sys.executable, "-m", "loupe.cli", "--index", str(tmp_path / "index"), "index", str(folder),
               "--engine", "ray", "--ray-address", cluster.address, "--workers", "1", "--batch-size", str(BATCH)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 3, result.stderr[-2000:]  # finished, one file skipped (the truncated JPEG)
    assert result.stdout.startswith("image encoder: ") and f"{PHOTOS + len(RECEIPTS)} added" in result.stdout
    assert BROKEN in result.stdout + result.stderr


def test_the_cluster_indexes_into_an_index_on_s3(cluster: Cluster, folder: Path, single_process: SingleRun,
                                                 aws_env: dict[str, str], models: Models) -> None:
    """The actors only analyse; the driver commits each batch to the bucket (moto's S3 server, tests/conftest.py)."""
    settings = models.settings.with_index_dir(f"s3://{S3_BUCKET}/ray-index")
    report = index_with_ray(settings, [folder], workers=1, batch_size=2)
    assert report.added == PHOTOS + len(RECEIPTS) and len(report.problems) == 1
    table = ImageTable.open(index_location(settings))
    written, expected = _rows(table), _rows(single_process.table)
    assert written.keys() == expected.keys()
    assert all(written[key]["ocr_text"] == row["ocr_text"] for key, row in expected.items())
