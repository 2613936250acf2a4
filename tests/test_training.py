"""`loupe train-encoder`: the loss by hand, a tiny real fine-tune, and `loupe eval --compare` with the result."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from loupe.cli import app
from loupe.base.errors import LoupeError, ModelNotFoundError
from tests.conftest import HOLIDAYS, holidays_files, load_model
from loupe.tools.models.registry import ModelKind
from loupe.tools.training.encoder_training import focal_loss, labelled_images, train_encoder


def test_focal_loss_by_hand() -> None:
    logits = torch.tensor([[math.log(3.0), 0.0]])  # softmax: p(class 0) = 3/4
    expected = -((1 - 0.75) ** 2) * math.log(0.75)
    assert float(focal_loss(logits, torch.tensor([0]))) == pytest.approx(expected)
    assert float(focal_loss(logits, torch.tensor([0]), gamma=0.0)) == pytest.approx(-math.log(0.75))  # plain CE


def test_classes_are_pictures_or_sub_folders(tmp_path: Path) -> None:
    for name in ("a/1.jpg", "a/2.jpg", "b/3.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    _, labels, unit = labelled_images(tmp_path)
    assert (labels, unit) == ([0, 0, 1], "sub-folder")
    _, labels, unit = labelled_images(tmp_path / "a")
    assert (labels, unit) == ([0, 1], "picture")
    with pytest.raises(LoupeError, match="does not exist"):
        labelled_images(tmp_path / "missing")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Eight Holidays photos and one broken file; one quick epoch at 96 px."""
    folder = tmp_path_factory.mktemp("train")
    for path in holidays_files(8):
        shutil.copyfile(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    checkpoint = folder.parent / "tuned.pt"
    result = CliRunner().invoke(app, ["train-encoder", str(folder), "--out", str(checkpoint), "--epochs", "2",
                                      "--batch-size", "8", "--image-size", "96", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "trained on 8 pictures (8 classes)" in result.output and "skipped" in result.output
    return folder, checkpoint


def test_tuned_checkpoint_loads_as_its_own_encoder(tuned: tuple[Path, Path]) -> None:
    folder, checkpoint = tuned
    base = load_model(ModelKind.IMAGE_ENCODER, "efficientnet-lite0")
    encoder = load_model(ModelKind.IMAGE_ENCODER, "efficientnet-lite0", str(checkpoint))
    assert encoder.name.startswith("efficientnet-lite0-tuned-") and encoder.name != base.name
    assert 0.4 <= encoder.similar_cosine < encoder.near_duplicate_cosine <= 0.97
    image = Image.open(sorted(folder.glob("1*.jpg"))[0])
    tuned_vector, base_vector = encoder.embed_images([image]).vectors[0], base.embed_images([image]).vectors[0]
    assert tuned_vector.shape == (1280,) and np.linalg.norm(tuned_vector) == pytest.approx(1, abs=1e-5)
    assert 0.5 < float(tuned_vector @ base_vector) < 0.9999  # moved, not replaced
    checkpoint_facts = torch.load(checkpoint, weights_only=True)
    assert checkpoint_facts["trained_on"]["images"] == 8


def test_bad_weights_file_says_what_is_wrong(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    with pytest.raises(ModelNotFoundError, match="cannot be read"):
        load_model(ModelKind.IMAGE_ENCODER, "efficientnet-lite0", str(junk))
    torch.save({"not": torch.zeros(1)}, junk)
    with pytest.raises(ModelNotFoundError, match="does not hold EfficientNet-Lite0 weights"):
        load_model(ModelKind.IMAGE_ENCODER, "efficientnet-lite0", str(junk))
    with pytest.raises(LoupeError, match="at least two readable pictures"):
        train_encoder(tmp_path, tmp_path / "out.pt", epochs=1)


def test_eval_compares_the_tuned_encoder_with_the_untuned_one(tuned: tuple[Path, Path], tmp_path: Path) -> None:
    _, checkpoint = tuned
    datasets = tmp_path / "data"
    (datasets / "photos").mkdir(parents=True)
    for path in holidays_files(6):
        shutil.copyfile(path, datasets / "photos" / path.name)
    query_set = tmp_path / "mini.jsonl"
    groundtruth = json.loads((HOLIDAYS / "groundtruth.json").read_text())
    lines = [{"collection": ["photos"]},
             {"id": "scene", "image": "photos/100000.jpg", "exclude_self": True,
              "relevant": {f"photos/{name}": 1 for name in groundtruth["100000.jpg"]}},
             {"id": "copy", "image": "photos/100200.jpg", "relevant": {"photos/100200.jpg": 2}}]
    query_set.write_text("\n".join(json.dumps(line) for line in lines))
    tuned_spec = f"efficientnet-lite0@{checkpoint}"
    result = CliRunner().invoke(app, ["eval", str(query_set), "--datasets", str(datasets), "--out", str(tmp_path / "out"),
                                      "--compare", f"loupe,phash,{tuned_spec}"])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "mini.json").read_text())
    assert list(results["pipelines"]) == ["loupe", "phash", tuned_spec]
    for name, scores in results["pipelines"].items():
        copy = next(q for q in scores["per_query"] if q["id"] == "copy")
        assert copy["top1"] == 1.0, name  # the exact file is first whatever the encoder
    indexes = sorted(p.name for p in (tmp_path / "out" / "index").iterdir())
    assert indexes[0] == "mini" and indexes[1].startswith("mini-efficientnet-lite0-tuned-") and len(indexes) == 2
