"""The layer contract (.importlinter) holds for the code, and it does catch a violation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("loupe", "store", "tools", "agent", "ui", "evals")


def _lint(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["lint-imports", "--config", str(folder / ".importlinter")], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def _copy(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "results"))
    shutil.copyfile(REPO / ".importlinter", target / ".importlinter")
    return target


def test_the_code_keeps_its_layers(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout


def test_a_store_module_importing_the_agent_breaks_the_contract(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    with (copy / "store" / "schema.py").open("a", encoding="utf-8") as handle:
        handle.write("\nimport agent.tools  # a deliberate violation\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert "store is not allowed to import agent" in result.stdout and "store.schema -> agent.tools" in result.stdout


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle anywhere, imports inside functions included (grimp reads them too)."""
    import grimp

    graph = grimp.build_graph(*PACKAGES)
    cycles = [(module, imported) for module in sorted(graph.modules)
              for imported in graph.find_modules_directly_imported_by(module)
              if graph.chain_exists(importer=imported, imported=module)]
    assert cycles == []
