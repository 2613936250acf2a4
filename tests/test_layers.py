"""The layer contract (.importlinter) holds for the code, it does catch a violation, and Loupe installs one name."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier

REPO = Path(__file__).resolve().parents[1]
CARD_FOLDERS = ("store", "tools", "agent", "ui", "evals")  # linked into loupe/, imported as loupe.store, ...


def _lint(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["lint-imports", "--config", str(folder / ".importlinter")], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def _copy(target: Path) -> Path:
    """loupe/ with the card's folders copied in place of its links to them."""
    shutil.copytree(REPO / "loupe", target / "loupe", ignore=shutil.ignore_patterns("__pycache__", "results"))
    shutil.copyfile(REPO / ".importlinter", target / ".importlinter")
    return target


def test_the_code_keeps_its_layers(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout


def test_a_store_module_importing_the_agent_breaks_the_contract(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    with (copy / "loupe" / "store" / "schema.py").open("a", encoding="utf-8") as handle:
        handle.write("\nimport loupe.agent.tools  # a deliberate violation\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert "loupe.store is not allowed to import loupe.agent" in result.stdout
    assert "loupe.store.schema -> loupe.agent.tools" in result.stdout


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle anywhere, imports inside functions included (grimp reads them too)."""
    import grimp

    graph = grimp.build_graph("loupe")
    assert {f"loupe.{folder}" for folder in CARD_FOLDERS} <= graph.modules  # the links are followed
    cycles = [(module, imported) for module in sorted(graph.modules)
              for imported in graph.find_modules_directly_imported_by(module)
              if graph.chain_exists(importer=imported, imported=module)]
    assert cycles == []


def test_the_install_claims_no_generic_top_level_name(tmp_path: Path) -> None:
    """Outside the checkout, `import tools` (or store, agent, ui, evals) cannot reach Loupe's code, so another
    package of that name in the user's environment is left alone."""
    probe = ("import importlib.util; print([str(getattr(importlib.util.find_spec(name), 'origin', '')) "
             f"for name in {CARD_FOLDERS!r}])")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            check=True)
    assert str(REPO) not in result.stdout, result.stdout


def test_no_code_imports_a_bare_card_folder_name() -> None:
    """Every import of Loupe's own code goes through loupe.*: from the checkout, `import tools.x` would also
    work (the current folder is on the path) and load the same file a second time, as another module."""
    bare = []
    for path in REPO.rglob("*.py"):
        parts = path.relative_to(REPO).parts
        if {"results", "__pycache__"} & set(parts) or parts[0] == "loupe" and parts[1] in CARD_FOLDERS:
            continue  # a data folder, or a card folder seen again through its link
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            bare += [f"{path.relative_to(REPO)}: {name}" for name in names if name.split(".")[0] in CARD_FOLDERS]
    assert bare == []
