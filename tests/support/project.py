"""A scratch copy of parts of this repository, for tests that run the project's own commands."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def copy_project(into: Path, names: tuple[str, ...]) -> Path:
    """Copies the files and folders `names` (relative to the repository) into a new folder
    `into`, without bytecode caches; returns `into`."""
    into.mkdir()
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, into / name)
    return into
