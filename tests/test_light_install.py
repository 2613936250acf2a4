"""The light install's promise: the default path runs where torch and the other extras cannot be imported.

Each test runs Python in a subprocess whose import system cannot see torch, torchvision, ultralytics,
open_clip, transformers or sentence-transformers (as on a machine with the default install only), with an
empty model cache, so the ONNX graphs are built there from the weights, as a new user's first run does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import SROIE, holidays_files
from loupe.tools.models import Models

REPO = Path(__file__).resolve().parents[1]
HIDDEN = ("torch", "torchvision", "ultralytics", "open_clip", "transformers", "sentence_transformers", "mcp")
# Modules that belong to an extra: they may not import without it, and nothing in the default path imports them.
EXTRA_ONLY = {"loupe.tools.models.efficientnet_torch", "loupe.tools.models.open_clip_encoder",
              "loupe.tools.training.encoder_training", "loupe.tools.training.clip_training",
              "loupe.tools.training.text_detector_training", "loupe.mcp_server"}
SCRIPTS = {"loupe.ui.app"}  # a Streamlit page: importing it runs it

# Wraps every finder so that the hidden packages are not found, as if not installed: import raises
# ModuleNotFoundError and importlib.util.find_spec returns None (libraries such as lancedb probe for torch).
HIDE = f"""
import sys
HIDDEN = {HIDDEN!r}

class Hiding:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN or not hasattr(self.finder, "find_spec"):
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)

sys.meta_path[:] = [Hiding(finder) for finder in sys.meta_path]
"""

DEFAULT_PATH = HIDE + f"""
import importlib, json, pkgutil, sys
from pathlib import Path
import numpy as np

failed = []
seen = set()
for info in pkgutil.walk_packages(importlib.import_module("loupe").__path__, "loupe."):
    seen.add(info.name)
    if info.name in {EXTRA_ONLY | SCRIPTS!r}:
        continue
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{{info.name}}: {{exc!r}}")
assert not failed, failed
assert {{"loupe.store.image_table", "loupe.agent.graph", "loupe.ui.gallery", "loupe.evals.harness"}} <= seen, seen

from loupe.base.config import load_settings
from loupe.indexer import Indexer
from loupe.store.image_table import ImageTable
from loupe.tools.models import Models
from loupe.tools.toolbox import Toolbox

folder, index = Path(sys.argv[1]), Path(sys.argv[2])
settings = load_settings().with_index_dir(index)
models = Models(settings)
table = ImageTable.open_or_create(index, models.index_info())
report = Indexer(settings, models, table).run([folder])
toolbox = Toolbox(settings, models)
photo = sorted(folder.glob("1*.jpg"))[0]
found = toolbox.image_search(image=photo, k=3).records
texts = toolbox.text_search("total", k=3).records
loaded = sorted(name for name in sys.modules if name.split(".")[0] in HIDDEN)
rows = table.find("true", limit=10, columns=["file_name", "image_vector", "ocr_text"])
print(json.dumps({{"added": report.added, "problems": report.problems, "runtime": models.image_encoder.runtime,
                  "first": found[0].file_name, "first_match": str(found[0].match), "texts": [r.file_name for r in texts],
                  "hidden_loaded": loaded, "query": models.text_embedder.embed(["total 31.00"])[0].tolist(),
                  "rows": {{r["file_name"]: [list(map(float, r["image_vector"])), r["ocr_text"]] for r in rows}}}}))
"""


def _run_hidden(code: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOUPE_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def test_default_path_indexes_and_searches_without_torch(tmp_path: Path, models: Models) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in [*holidays_files(3), SROIE / "images" / "000.jpg"]:
        shutil.copyfile(path, folder / path.name)
    result = _run_hidden(DEFAULT_PATH, str(folder), str(tmp_path / "index"), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["hidden_loaded"] == [] and out["runtime"] == "onnx"
    assert out["added"] == 4 and out["problems"] == []
    assert out["first"] == holidays_files(1)[0].name and out["first_match"] == "identical"
    assert out["texts"][0] == "000.jpg"  # the receipt, by its printed total
    assert len(list((tmp_path / "cache" / "loupe" / "models").glob("*.onnx"))) == 2  # both graphs built here

    # The same vectors as the full install computes (an index built by either opens in the other).
    query = np.asarray(out["query"], np.float32)
    assert float(query @ models.text_embedder.embed(["total 31.00"])[0]) >= 0.9999
    from PIL import Image

    for name, (vector, ocr_text) in out["rows"].items():
        expected = models.image_encoder.embed_images([Image.open(folder / name).convert("RGB")]).vectors[0]
        assert float(np.asarray(vector, np.float32) @ expected) >= 0.999, name
        assert ocr_text == models.ocr.read(Image.open(folder / name).convert("RGB")).text, name


def test_a_command_that_needs_an_extra_says_which_in_one_line(tmp_path: Path) -> None:
    command = HIDE + "import sys\nfrom loupe.cli import app\nsys.argv = ['loupe', *sys.argv[1:]]\napp()\n"
    result = _run_hidden(command, "train-encoder", str(tmp_path), tmp_path=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "[train] extra" in result.stderr and "pip install 'loupe[train]'" in result.stderr
    assert "Traceback" not in result.stderr
