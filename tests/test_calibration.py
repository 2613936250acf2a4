"""The encoder's cosine levels: the rule, the procedure a user with other weights runs, and the settings."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from loupe.base.config import load_settings
from loupe.base.errors import ConfigError
from loupe.evals import encoder_calibration
from loupe.tools.models import Models
from loupe.tools.training.thresholds import image_levels, text_level, unrelated_pairs
from tests.conftest import DATASETS, HOLIDAYS
from tests.test_models import tiny_clip  # noqa: F401 - the fixture


@pytest.mark.fast
def test_the_rule_reads_percentiles_of_copies_and_of_unrelated_pairs() -> None:
    copies = np.linspace(0.80, 1.0, 101)  # 10th percentile 0.82
    unrelated = np.linspace(0.0, 0.60, 101)  # 99th percentile 0.594
    assert image_levels(copies, unrelated) == (0.624, 0.8)
    assert text_level(np.linspace(0.0, 0.30, 101)) == round(0.297 + 0.01, 3)
    vectors = np.eye(3, dtype=np.float32)
    assert sorted(unrelated_pairs(vectors, ["a", "a", "b"])) == [0.0] * 4  # a-b pairs only, both ways


@pytest.mark.fast
def test_configured_levels_replace_the_encoders_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "loupe.toml"
    config.write_text("[models]\nimage_encoder = \"efficientnet-lite0\"\nsimilar_cosine = 0.5\n", encoding="utf-8")
    assert load_settings(config).models.similar_cosine == 0.5
    config.write_text("[models]\nsimilar_cosine = \"high\"\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="similar_cosine .* must be a cosine between -1 and 1, got 'high'"):
        load_settings(config)


def _small_datasets(folder: Path) -> Path:
    """Twelve Holidays photos (with their part of the ground truth) and eight Flickr8k photos with captions."""
    holidays = folder / "holidays"
    (holidays / "images").mkdir(parents=True)
    names = sorted(p.name for p in (HOLIDAYS / "images").iterdir())[:12]
    for name in names:
        shutil.copyfile(HOLIDAYS / "images" / name, holidays / "images" / name)
    truth = json.loads((HOLIDAYS / "groundtruth.json").read_text(encoding="utf-8"))
    kept = {q: [r for r in rel if r in names] for q, rel in truth.items() if q in names}
    (holidays / "groundtruth.json").write_text(json.dumps(kept), encoding="utf-8")
    flickr = folder / "flickr8k"
    (flickr / "images").mkdir(parents=True)
    with (DATASETS / "flickr8k" / "captions.csv").open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle)]
    photos = sorted({row["image"] for row in rows})[:8]
    with (flickr / "captions.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["image", "caption"])
        writer.writeheader()
        writer.writerows({"image": r["image"], "caption": r["caption"]} for r in rows if r["image"] in photos)
    for photo in photos:
        shutil.copyfile(DATASETS / "flickr8k" / "images" / photo, flickr / "images" / photo)
    return folder


def test_calibrate_prints_levels_that_the_settings_then_use(tiny_clip: tuple[Path, Path], tmp_path: Path,  # noqa: F811
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The procedure on an encoder with a text tower (a small random open_clip model): all three levels,
    per half and as loupe.toml lines, which load_settings reads back into the encoder."""
    config, weights = tiny_clip
    monkeypatch.setenv("LOUPE_OFFLINE", "1")
    monkeypatch.setenv("LOUPE_IMAGE_ENCODER_CONFIG", str(config))
    monkeypatch.setattr(sys, "argv", ["calibrate", "--encoder", f"open_clip:loupe-tiny-clip@{weights}",
                                      "--datasets", str(_small_datasets(tmp_path / "datasets")), "--sample", "6"])
    encoder_calibration.main()
    printed = capsys.readouterr().out
    assert printed.count("| half 0 |") == 2 and printed.count("| half 1 |") == 2  # image and text tables
    toml = printed[printed.index("[models]"):].split("\n", 2)[2].strip()
    assert [line.split(" = ")[0] for line in toml.splitlines()] == ["similar_cosine", "near_duplicate_cosine",
                                                                     "text_match_cosine"]
    (tmp_path / "loupe.toml").write_text(f"[models]\nimage_encoder = \"open_clip:loupe-tiny-clip\"\n"
                                         f"image_encoder_weights = \"{weights}\"\n{toml}\n", encoding="utf-8")
    encoder = Models(load_settings(tmp_path / "loupe.toml")).image_encoder
    levels = dict(line.split(" = ") for line in toml.splitlines())
    assert encoder.similar_cosine == float(levels["similar_cosine"])
    assert encoder.text_match_cosine == float(levels["text_match_cosine"])
