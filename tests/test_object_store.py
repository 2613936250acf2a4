"""An index on object storage: s3:// against moto's S3 server on 127.0.0.1 (no MinIO can be installed here).

The CLI indexes into the bucket, a reader in this process searches and asks, and keeps reading while another
process appends; the local files (thumbnails, conversations, the writer lock) stay on this machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from loupe import object_inputs
from loupe.api import Collection
from loupe.base.config import Settings, load_settings
from loupe.base.errors import LoupeError
from loupe.store.image_table import ImageTable, IndexNotFoundError
from loupe.store.location import OBJECT_STORE_REFRESH, IndexUnreachableError, index_location
from loupe.tools.models import Models
from tests.conftest import HOLIDAYS, S3_BUCKET, SROIE, sroie_key

REPO = Path(__file__).resolve().parents[1]
INDEX = f"s3://{S3_BUCKET}/loupe/index"


def _loupe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loupe.cli", "--index", INDEX, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _receipts(folder: Path, numbers: range) -> list[str]:
    folder.mkdir(parents=True)
    for number in numbers:
        shutil.copyfile(SROIE / "images" / f"{number:03d}.jpg", folder / f"receipt_{number:03d}.jpg")
    return [sroie_key(f"{number:03d}")["company"] for number in numbers]


def test_an_index_on_s3_is_built_searched_asked_and_read_while_another_process_appends(
        aws_env: dict[str, str], models: Models, tmp_path: Path) -> None:
    first = tmp_path / "first"
    shops = _receipts(first / "receipts", range(4))
    photo = sorted((HOLIDAYS / "images").iterdir())[0]
    shutil.copyfile(photo, first / photo.name)
    built = _loupe(aws_env, "index", str(first))
    assert built.returncode == 0, built.stderr

    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1")
            .list_objects_v2(Bucket=S3_BUCKET, Prefix="loupe/index/")["Contents"]]
    assert any(k.startswith("loupe/index/images.lance/data/") for k in keys)
    assert any(k.startswith("loupe/index/loupe_files.lance/") for k in keys)  # models and roots travel too
    settings = Settings(offline=True).with_index_dir(INDEX)
    location = index_location(settings)
    assert location.storage_options["aws_endpoint"] == aws_env["AWS_ENDPOINT_URL"]
    assert settings.index_dir.is_relative_to(Path(aws_env["LOUPE_HOME"]) / "remote")

    reader = Collection(settings)
    reader.toolbox.models = models  # the session's loaded models: the same settings, loaded once
    assert reader.toolbox.table.count() == 5
    found = reader.search(text=shops[2])
    assert found and found[0].file_name == "receipt_002.jpg"
    same = reader.search(image=photo.read_bytes())
    assert same[0].file_name == photo.name and same[0].match == "identical"
    assert Path(same[0].thumbnail_path).is_relative_to(settings.index_dir)  # thumbnails: this machine's cache

    answer = reader.ask(f"receipts from {shops[1]}")
    assert answer.trace[0]["tool"] == "text_search" and answer.records[0].file_name == "receipt_001.jpg"
    assert (settings.index_dir / "conversations.sqlite").is_file()

    # Another process appends while this one holds the table open: its reads see the new rows within
    # OBJECT_STORE_REFRESH (each check for a new commit is a request to the store).
    later = tmp_path / "later"
    new_shops = _receipts(later, range(4, 6))
    appended = _loupe(aws_env, "index", str(later))
    assert appended.returncode == 0, appended.stderr
    deadline = time.monotonic() + OBJECT_STORE_REFRESH.total_seconds() + 5
    while reader.toolbox.table.count() < 7 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert reader.toolbox.table.count() == 7
    assert reader.search(text=new_shops[1])[0].file_name == "receipt_005.jpg"
    assert reader.toolbox.boundary.contains(later / "receipt_004.jpg")  # the roots are read from the bucket

    searched = _loupe(aws_env, "search", shops[0], "--json")
    assert searched.returncode == 0, searched.stderr
    assert json.loads(searched.stdout)[0]["records"][0]["file_name"] == "receipt_000.jpg"


def test_a_missing_or_unreachable_object_store_index_is_one_line(aws_env: dict[str, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(IndexNotFoundError, match=r"no Loupe index at s3://photos/nothing: run `loupe index"):
        ImageTable.open(index_location(Settings().with_index_dir(f"s3://{S3_BUCKET}/nothing")))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(IndexUnreachableError, match=r"cannot read the index at s3://photos/loupe/index: ") as caught:
        ImageTable.open(index_location(Settings().with_index_dir(INDEX)))
    assert isinstance(caught.value, LoupeError) and "\n" not in str(caught.value)


@pytest.mark.fast
def test_the_index_may_be_named_as_a_uri_wherever_a_folder_may(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "loupe.toml"
    config.write_text('index_dir = "s3://shop/catalogue/"\n[storage]\nendpoint_url = "https://s3.example.org"\n',
                      encoding="utf-8")
    monkeypatch.setenv("LOUPE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOUPE_INDEX", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    settings = load_settings(config)
    location = index_location(settings)
    assert (settings.index_uri, settings.index_name, location.remote) == ("s3://shop/catalogue",) * 2 + (True,)
    # The region passed on (Lance would ask the bucket); TLS, so no allow_http.
    assert location.storage_options == {"aws_endpoint": "https://s3.example.org", "aws_region": "eu-west-1"}
    assert settings.index_dir.parent == tmp_path / "home" / "remote"  # this machine's files for that index
    monkeypatch.setenv("LOUPE_INDEX", str(tmp_path / "local"))  # the environment wins, and a folder is a folder
    folder = index_location(load_settings(config))
    assert (folder.remote, folder.uri, folder.local_dir) == (False, str(tmp_path / "local"), tmp_path / "local")


def test_an_s3_prefix_is_indexed_through_its_mirror_and_a_rerun_reads_only_what_changed(
        aws_env: dict[str, str], tmp_path: Path) -> None:
    bucket = boto3.client("s3")  # the environment's endpoint and credentials, as a user's
    photos = sorted((HOLIDAYS / "images").iterdir())[:3]
    for photo in photos:
        bucket.upload_file(str(photo), S3_BUCKET, f"inputs/trip/{photo.name}")
    bucket.put_object(Bucket=S3_BUCKET, Key="inputs/notes.txt", Body=b"not an image")
    index = str(tmp_path / "index")
    first = subprocess.run([sys.executable, "-m", "loupe.cli", "--index", index, "index", f"s3://{S3_BUCKET}/inputs/"],
                           cwd=REPO, env=aws_env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    mirror = Path(aws_env["LOUPE_HOME"]) / "mirrors" / S3_BUCKET / "inputs"
    assert sorted(p.name for p in (mirror / "trip").iterdir()) == sorted(p.name for p in photos)  # no notes.txt
    assert "3 added" in first.stdout

    bucket.delete_object(Bucket=S3_BUCKET, Key=f"inputs/trip/{photos[0].name}")
    kept = (mirror / "trip" / photos[1].name).stat().st_mtime_ns
    again = subprocess.run([sys.executable, "-m", "loupe.cli", "--index", index, "index", f"s3://{S3_BUCKET}/inputs",
                            "--prune"], cwd=REPO, env=aws_env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert (mirror / "trip" / photos[1].name).stat().st_mtime_ns == kept  # unchanged: not copied again
    assert not (mirror / "trip" / photos[0].name).exists()
    paths = [row["path"] for row in ImageTable.open(index).scan(["path"]).to_pylist()]
    assert sorted(Path(p).name for p in paths) == sorted(p.name for p in photos[1:])

    missing = subprocess.run([sys.executable, "-m", "loupe.cli", "--index", index, "index", "s3://no-such-bucket/x"],
                             cwd=REPO, env=aws_env, capture_output=True, text=True, timeout=600)
    assert missing.returncode == 1 and missing.stderr.startswith("error: cannot copy s3://no-such-bucket/x: ")
    assert missing.stderr.strip().count("\n") == 0  # one line


@pytest.mark.fast
def test_an_object_key_cannot_write_outside_its_mirror(tmp_path: Path) -> None:
    assert object_inputs._target(tmp_path, "trip/a.jpg") == (tmp_path / "trip" / "a.jpg").resolve()
    with pytest.raises(object_inputs.MirrorError, match="points outside the mirror folder"):
        object_inputs._target(tmp_path / "mirror", "../../home/.bashrc.jpg")
    with pytest.raises(object_inputs.MirrorError, match="points outside the mirror folder"):
        object_inputs.mirror_prefix("s3://photos/../../../etc", tmp_path)


def test_the_chat_ui_answers_from_an_index_on_s3(aws_env: dict[str, str], models: Models, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    index = f"s3://{S3_BUCKET}/ui-index"
    shops = _receipts(tmp_path / "receipts", range(2))
    settings = Settings(offline=True).with_index_dir(index)
    writer = Collection(settings)
    writer.toolbox.models = models
    assert writer.index([tmp_path / "receipts"]).added == 2
    monkeypatch.setenv("LOUPE_INDEX", index)
    app = AppTest.from_file(str(REPO / "ui" / "app.py"), default_timeout=300)
    app.run()
    assert not app.exception, app.exception
    app.chat_input[0].set_value(f"receipts from {shops[1]}").run()
    assert not app.exception, app.exception
    assert app.session_state.turns[-1]["records"][0].file_name == "receipt_001.jpg"
    assert any(index in caption.value for caption in app.sidebar.caption)  # the sidebar names the index
