"""Shared helpers for the tests: where the repository is, and how to load an example stack."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"

if str(REPO_ROOT) not in sys.path:  # `import stack` whichever directory pytest starts from
    sys.path.insert(0, str(REPO_ROOT))

from stack import settings  # noqa: E402


def load_example(name: str, *, stack: str = "prod", offline: bool = True) -> settings.Settings:
    """Load examples/<name>(.yaml) the way `settings.from_stack_file` reads a stack file
    (`secure:` values become unknown secrets), with app.path relative to the repository root."""
    path = EXAMPLES / (name if name.endswith(".yaml") else f"{name}.yaml")
    raw = settings.read_stack_file(path)
    return settings.load(raw, stack=stack, project_dir=REPO_ROOT, offline=offline)
