"""One indexing run over good photos beside every kind of bad file (evals/hostile_corpus.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from loupe.evals.hostile_corpus import build_hostile_corpus
from loupe.indexer import Indexer
from loupe.store.image_table import ImageTable
from tests.conftest import holidays_files
from loupe.tools.models import Models


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    return build_hostile_corpus(tmp_path_factory.mktemp("hostile"), holidays_files(3))


def test_every_good_image_once_every_bad_file_one_line(corpus, models: Models, tmp_path: Path) -> None:
    assert len(corpus.good) + len(corpus.bad) >= 40
    settings = dataclasses.replace(models.settings, index_dir=tmp_path / "index")
    table = ImageTable.open_or_create(settings.index_dir, models.index_info())
    report = Indexer(settings, models, table, batch_size=8).run([corpus.root])  # no exception escapes
    names = [row["file_name"] for row in table.find("true", limit=1000, columns=["file_name"])]
    assert sorted(names) == sorted(corpus.good)
    for name, word in corpus.bad.items():
        lines = corpus.lines_about(name, report.problems)
        assert len(lines) == 1 and word in lines[0], (name, lines)
    assert len(report.problems) == len(corpus.bad), report.problems
    assert not any(str(corpus.outside) in row["path"] for row in table.find("true", columns=["path"]))

    again = Indexer(settings, models, table, batch_size=8).run([corpus.root])
    assert again.added == again.updated == 0 and table.count() == len(corpus.good)  # nothing lost or doubled
