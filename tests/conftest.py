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


import datetime  # noqa: E402

import pytest  # noqa: E402

# The review stacks the tests run expire at a fixed time (tests/support/mocks.py REVIEW_EXPIRY,
# in the resource snapshots too); the program refuses an expiry in the past, so in the tests
# "now" is a week before it. Session-wide, so that module fixtures that run the program see it
# too; a test of the refusal sets its own (monkeypatch).
TESTS_NOW = datetime.datetime(2026, 11, 24, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True, scope="session")
def _review_stacks_have_not_expired():
    from unittest import mock

    from stack.settings import lifecycle

    with mock.patch.object(lifecycle, "now", lambda: TESTS_NOW):
        yield
