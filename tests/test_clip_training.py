"""`loupe train-clip`: a real contrastive fine-tune of a small open_clip model on Flickr8k pairs, on CPU."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loupe.cli import app
from loupe.base.errors import LoupeError
from tests.conftest import DATASETS, load_model
from tests.test_models import TINY_CLIP
from loupe.tools.models.registry import ModelKind
from loupe.tools.training.clip_training import read_pairs, train_clip

FLICKR = DATASETS / "flickr8k"


def _first_pairs(path: Path, images: int) -> Path:
    """The first caption of the first ``images`` Flickr8k images."""
    with (FLICKR / "captions.csv").open(encoding="utf-8", newline="") as handle:
        seen: dict[str, str] = {}
        for row in csv.DictReader(handle):
            seen.setdefault(row["image"], row["caption"])
            if len(seen) == images:
                break
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption"])
        writer.writerows(seen.items())
    return path


def test_malformed_caption_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("file,text\na.jpg,hello\n")
    with pytest.raises(LoupeError, match="'image' and 'caption' columns"):
        read_pairs(bad, tmp_path)
    with pytest.raises(LoupeError, match="does not exist"):
        read_pairs(tmp_path / "missing.csv", tmp_path)
    good = tmp_path / "one.csv"
    good.write_text("image,caption\nmissing.jpg,a dog\n")
    with pytest.raises(LoupeError, match="at least two readable images"):
        train_clip(good, tmp_path, tmp_path / "out.pt", config=str(_tiny_config(tmp_path)), epochs=1)


def _tiny_config(folder: Path) -> Path:
    config = folder / "loupe-tiny-clip-train.json"
    config.write_text(json.dumps(TINY_CLIP), encoding="utf-8")
    return config


def test_contrastive_training_learns_the_pairs_and_the_encoder_loads_it(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path)
    pairs = _first_pairs(tmp_path / "pairs.csv", 24)
    weights = tmp_path / "clip.pt"
    report = train_clip(pairs, FLICKR / "images", weights, config=str(config), epochs=12, batch_size=12,
                        learning_rate=1e-3, device="cpu", progress=lambda _: None)
    assert report.images + report.held_out_images == 24 and report.held_out_images == 2
    assert report.loss_per_epoch[-1] < report.loss_per_epoch[0] * 0.7  # the pairs are being learnt
    encoder = load_model(ModelKind.IMAGE_ENCODER, "open_clip:loupe-tiny-clip-train", str(weights), str(config))
    assert encoder.has_text_tower and encoder.dim == 32


def test_cli_reports_recall_and_how_to_use_the_weights(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path)
    pairs = _first_pairs(tmp_path / "pairs.csv", 12)
    result = CliRunner().invoke(app, ["train-clip", str(pairs), "--images", str(FLICKR / "images"), "--out",
                                      str(tmp_path / "clip.pt"), "--config", str(config), "--epochs", "1",
                                      "--batch-size", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "held-out images: before {'R@1'" in result.output
    assert 'image_encoder = "open_clip:loupe-tiny-clip-train"' in result.output
