"""The text bridge: captions find Flickr8k photos through the image vectors, with the real models and table."""

from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from loupe.base.errors import LoupeError
from loupe.indexer import Indexer
from loupe.store.image_table import ImageTable
from tests.conftest import DATASETS
from loupe.tools.models import Models
from loupe.tools.models.text_bridge import PACKAGED_BRIDGE, bridge_for, load_bridge, packaged_bridge
from loupe.tools.text_search import text_search
from loupe.tools.training.bridge import FOLDS, train_bridge

FLICKR = DATASETS / "flickr8k"
PHOTOS = 12


def _captions() -> dict[str, list[str]]:
    by_photo: dict[str, list[str]] = {}
    with (FLICKR / "captions.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            by_photo.setdefault(row["image"], []).append(row["caption"].strip())
    return dict(sorted(by_photo.items())[:PHOTOS])


@pytest.fixture(scope="module")
def pairs_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve Flickr8k photos and their five captions each, in train-bridge's layout."""
    folder = tmp_path_factory.mktemp("pairs")
    (folder / "images").mkdir()
    with (folder / "captions.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption"])
        for image, captions in _captions().items():
            shutil.copyfile(FLICKR / "images" / image, folder / "images" / image)
            writer.writerows([image, caption] for caption in captions)
    return folder


def test_training_on_a_tiny_real_set_writes_a_map_that_loads(models: Models, pairs_folder: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "bridge.npz"
    report = train_bridge([pairs_folder], out, models, offline=True, max_pixels=models.settings.max_pixels)
    assert (report.photos, report.captions) == (PHOTOS, PHOTOS * 5)
    bridge = load_bridge(out)
    assert bridge.matrix.shape == (models.text_embedder.dim, models.image_encoder.dim)
    assert bridge.joins(models.image_encoder.name, models.text_embedder.name)
    assert bridge.provenance["photos"] == PHOTOS and bridge.provenance["held_out_recall"] == report.held_out_recall
    assert 0.0 <= report.held_out_recall["R@1"] <= report.held_out_recall["R@10"] <= 1.0
    assert report.skipped == [] and PHOTOS >= 2 * FOLDS


def test_packaged_map_fits_the_default_models(models: Models) -> None:
    bridge = bridge_for(models.image_encoder.name, models.text_embedder.name, models.image_encoder.dim,
                        models.text_embedder.dim)
    assert bridge is packaged_bridge()
    assert PACKAGED_BRIDGE.stat().st_size < 3_000_000
    assert {"flickr8k", "coco_mini"} <= set(bridge.provenance["folders"])
    mapped = bridge.to_image_space(models.text_embedder.embed(["a dog running on a beach"]))
    assert mapped.shape == (1, models.image_encoder.dim)
    assert np.isclose(np.linalg.norm(mapped), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def table(models: Models, pairs_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> ImageTable:
    """The twelve photos indexed in a real table."""
    settings = dataclasses.replace(models.settings, index_dir=tmp_path_factory.mktemp("index"))
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    Indexer(settings, models, table).run([pairs_folder / "images"])
    return table


def test_a_caption_ranks_its_photo_higher_with_the_bridge(models: Models, table: ImageTable) -> None:
    captions = _captions()

    def rank(image: str, caption: str, bridge: object) -> int:
        found = [Path(r.path).name for r in text_search(table, models, caption, k=PHOTOS, bridge=bridge).records]
        return found.index(image) if image in found else PHOTOS

    tags_only = [rank(image, texts[0], None) for image, texts in captions.items()]
    bridged = [rank(image, texts[0], "packaged") for image, texts in captions.items()]
    assert sum(bridged) < sum(tags_only), (bridged, tags_only)
    assert sum(r < 3 for r in bridged) > sum(r < 3 for r in tags_only)


def test_the_bridge_reorders_but_never_makes_a_match(models: Models, table: ImageTable) -> None:
    """What the agent shows (matches only) is the same set with and without the bridge: for a request nothing
    in the collection answers, the bridge's nearest pictures stay out."""
    for request in ("a red sports car parked in the snow", "a bowl of soup on a wooden table",
                    _captions()[sorted(_captions())[0]][0]):
        shown = {bridge: {r.id for r in text_search(table, models, request, k=PHOTOS, matches_only=True,
                                                    bridge=bridge).records} for bridge in (None, "packaged")}
        assert shown["packaged"] == shown[None], request
    caption = _captions()[sorted(_captions())[0]][0]
    ranked = text_search(table, models, caption, k=PHOTOS, bridge="packaged")
    assert any("text-bridge" in r.why for r in ranked.records)  # it did run and rank
    nonsense = text_search(table, models, "zxqvbnm qwpzk", k=PHOTOS, bridge="packaged")
    assert nonsense.records == []  # words the map cannot place bring no pictures (BRIDGE_PLACED)


@pytest.mark.fast
def test_a_missing_or_corrupt_map_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LoupeError, match="does not exist") as missing:
        load_bridge(tmp_path / "absent.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(LoupeError, match="unreadable") as unreadable:
        load_bridge(corrupt)
    other = tmp_path / "other.npz"
    np.savez(other, matrix=np.zeros((2, 2)))
    with pytest.raises(LoupeError, match="unreadable"):
        load_bridge(other)
    assert all("\n" not in str(error.value) for error in (missing, unreadable))
