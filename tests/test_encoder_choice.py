"""image_encoder = "auto": the best encoder the machine can have, never silently, never mixed in one index."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from loupe.base.config import ModelSettings, Settings
from loupe.indexer import Indexer
from loupe.store.image_table import ImageTable
from loupe.store.schema import IndexInfo
from loupe.tools.models import Models, encoder_choice
from loupe.tools.models.encoder_choice import BEST_ARCH, BEST_TAG, OFFLINE_ENCODER, choose_image_encoder
from tests.conftest import holidays_files
from tests.test_models import TINY_CLIP

TINY_REPO = "loupe-test/tiny-clip"


@pytest.fixture()
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache of this test's own (the real lookup code reads it)."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _index_built_with(folder: Path, encoder: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    IndexInfo(encoder, 32, "all-MiniLM-L6-v2", 384, "rapidocr", "tags").save(folder)
    return folder


@pytest.fixture()
def listening() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections, as a reachable hub would."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.mark.fast
def test_a_configured_encoder_or_weights_file_is_used_as_given(tmp_path: Path) -> None:
    assert choose_image_encoder("open_clip:ViT-B-32", "clip.bin", tmp_path, offline=True) == \
        encoder_choice.EncoderChoice("open_clip:ViT-B-32", "clip.bin", "configured (image_encoder)")
    tuned = choose_image_encoder("auto", "tuned.pt", tmp_path, offline=True)
    assert (tuned.setting, tuned.weights) == (OFFLINE_ENCODER, "tuned.pt")


@pytest.mark.fast
def test_offline_without_cached_weights_says_why_it_uses_the_offline_encoder(hub_cache: Path,
                                                                            tmp_path: Path) -> None:
    choice = choose_image_encoder("auto", "", tmp_path / "new-index", offline=True)
    assert choice.setting == OFFLINE_ENCODER
    assert "offline" in choice.reason and "text-to-image search is limited" in choice.reason


@pytest.mark.fast
def test_online_the_hub_is_probed_and_a_reachable_one_means_clip(hub_cache: Path, tmp_path: Path, listening: int,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listening}")
    reachable = choose_image_encoder("auto", "", tmp_path, offline=False)
    assert (reachable.setting, reachable.weights) == (f"open_clip:{BEST_ARCH}", BEST_TAG)
    assert "downloaded once" in reachable.reason
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        unreachable = choose_image_encoder("auto", "", tmp_path, offline=False)
    assert unreachable.setting == OFFLINE_ENCODER and "cannot be reached" in unreachable.reason


@pytest.mark.fast
def test_an_index_keeps_the_encoder_it_was_built_with(hub_cache: Path, tmp_path: Path, listening: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listening}")  # CLIP would be chosen for a new index
    old = choose_image_encoder("auto", "", _index_built_with(tmp_path / "old", OFFLINE_ENCODER), offline=False)
    assert old.setting == OFFLINE_ENCODER and "was built with it" in old.reason
    clip_index = _index_built_with(tmp_path / "clip", f"open_clip:{BEST_ARCH}")
    offline_clip = choose_image_encoder("auto", "", clip_index, offline=True)  # no weights, offline: still CLIP
    assert (offline_clip.setting, offline_clip.weights) == (f"open_clip:{BEST_ARCH}", BEST_TAG)


@pytest.mark.fast
def test_without_open_clip_installed_it_says_which_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = encoder_choice.importlib.util.find_spec
    monkeypatch.setattr(encoder_choice.importlib.util, "find_spec",
                        lambda name, *args: None if name == "open_clip" else real(name, *args))
    choice = choose_image_encoder("auto", "", tmp_path, offline=False)
    assert choice.setting == OFFLINE_ENCODER and "pip install 'loupe[clip]'" in choice.reason


def test_clip_weights_in_the_hub_cache_are_found_loaded_and_indexed_with(
        hub_cache: Path, tmp_path: Path, models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small randomly initialised open_clip model laid out as the hub's cache holds a download; "auto" finds
    it offline, loads it through the registry, indexes with it, and the index then keeps it."""
    import open_clip
    import torch

    config = tmp_path / "loupe-tiny-auto-clip.json"
    config.write_text(json.dumps(TINY_CLIP), encoding="utf-8")
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    snapshot = hub_cache / f"models--{TINY_REPO.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40, encoding="utf-8")
    torch.save(open_clip.create_model("loupe-tiny-auto-clip", pretrained=None).state_dict(),
               snapshot / encoder_choice.BEST_HUB_FILE)
    monkeypatch.setattr(encoder_choice, "BEST_ARCH", "loupe-tiny-auto-clip")
    monkeypatch.setattr(encoder_choice, "BEST_HUB_REPO", TINY_REPO)

    settings = Settings(index_dir=tmp_path / "index", offline=True,
                        models=ModelSettings(image_encoder_config=str(config)))
    clip_models = Models(settings)
    clip_models.__dict__["text_embedder"] = models.text_embedder  # reuse the loaded MiniLM and PP-OCR
    clip_models.__dict__["ocr"] = models.ocr
    assert clip_models.encoder_choice.weights == str(snapshot / encoder_choice.BEST_HUB_FILE)
    assert "Hugging Face cache" in clip_models.encoder_choice.reason
    encoder = clip_models.image_encoder
    assert encoder.name == "open_clip:loupe-tiny-auto-clip" and encoder.has_text_tower and encoder.dim == 32

    folder = tmp_path / "photos"
    folder.mkdir()
    for path in holidays_files(2):
        shutil.copyfile(path, folder / path.name)
    table = ImageTable.open_or_create(settings.index_dir, clip_models.index_info())
    assert Indexer(settings, clip_models, table).run([folder]).added == 2
    shutil.rmtree(snapshot.parents[1])  # the weights gone: the index still asks for CLIP, never the other encoder
    again = Models(dataclasses.replace(settings)).encoder_choice
    assert again.setting == "open_clip:loupe-tiny-auto-clip" and "was built with it" in again.reason
