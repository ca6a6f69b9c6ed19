"""Hostile and mistaken stack configs, run the way a user runs them: a `Pulumi.<stack>.yaml`
beside a copy of the app, then `python -m stack check` (in-process).

Every refused case asserts exit 2, no traceback, and an error line that starts with the exact
key path (`flask-stack:app.env.LD_PRELOAD:`) and says what the case is about. Every accepted
case asserts exit 0 and what the value became. A case changes the known-good config of one
platform (tests/test_settings.py `good`) in one place, so the key an error must name is known.

The cases are grouped by the part of the issue they close; each group is one table.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT
from test_settings import DELETE, PREFIX, changed, good

from stack import cli, settings
from stack.settings import Secret

DO, AWS, EXISTING = "digitalocean", "aws", "existing"
STACK = "t"


@dataclass(frozen=True)
class Refused:
    """`changes` to the good config of `platform` must be refused at `key` with `says` in the
    message."""

    id: str
    platform: str
    changes: dict[str, Any]
    key: str
    says: str = ""
    stack: str = STACK


@dataclass(frozen=True)
class Accepted:
    """`changes` to the good config of `platform` load, and `then(settings)` holds."""

    id: str
    platform: str
    changes: dict[str, Any]
    then: Callable[[settings.Settings], Any] = field(default=lambda s: True)
    stack: str = STACK


def as_stack_file(raw: dict[str, Any]) -> str:
    """The YAML a user would commit: every top-level key under config: with the project's
    prefix, secrets as `secure:` ciphertext (which an offline check cannot decrypt)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Secret):
            return {"secure": "v1:AAAABBBBCCCCDDDD"}
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    config = {f"{PREFIX}{key}": plain(value) for key, value in raw.items()}
    return yaml.safe_dump({"config": config}, sort_keys=False, allow_unicode=True)


def project(tmp_path: Path, raw: dict[str, Any], stack: str = STACK) -> Path:
    """A project directory holding the stack file and a copy of the repository's own app."""
    shutil.copytree(REPO_ROOT / "app", tmp_path / "app")
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(as_stack_file(raw))
    return tmp_path


def check(directory: Path, stack: str = STACK) -> tuple[int, str]:
    """`python -m stack check <stack> --dir <directory>`: its exit code and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        code = cli.main(["check", stack, "--dir", str(directory)])
    return code, out.getvalue()


def assert_refused(case: Refused, tmp_path: Path) -> None:
    raw = changed(good(case.platform), case.changes)
    code, output = check(project(tmp_path, raw, case.stack), case.stack)
    assert "Traceback" not in output, output
    assert code == 2, f"exit {code}, expected 2:\n{output}"
    head = f"  - {PREFIX}{case.key}:"
    named = [line for line in output.splitlines() if line.startswith(head)]
    assert named, f"no error names {PREFIX}{case.key}:\n{output}"
    assert any(case.says in line for line in named), (
        f"no error at {case.key} says {case.says!r}:\n" + "\n".join(named))


def assert_accepted(case: Accepted, tmp_path: Path) -> None:
    raw = changed(good(case.platform), case.changes)
    directory = project(tmp_path, raw, case.stack)
    code, output = check(directory, case.stack)
    assert code == 0, f"exit {code}:\n{output}"
    loaded = settings.from_stack_file(case.stack, directory)
    assert case.then(loaded), f"{case.id}: loaded, but not as expected: {loaded}"


# -- the tables -------------------------------------------------------------------------------
# Values that would replace something of the host's, or reach outside the release.
NAMES_AND_PATHS: list[Refused | Accepted] = []

# The environment: names Gunicorn, Python, the loader or systemd interpret, secrets in plain text.
ENVIRONMENT: list[Refused | Accepted] = []

# Sizes: nothing a user sets may make a step's command exceed one exec argument.
LIMITS: list[Refused | Accepted] = []

# Ranges, addresses, regions, names of the cloud, the web keys' collisions, lifecycle.
NETWORK_AND_WEB: list[Refused | Accepted] = []

CASES = [*NAMES_AND_PATHS, *ENVIRONMENT, *LIMITS, *NETWORK_AND_WEB]


@pytest.mark.parametrize("case", [c for c in CASES if isinstance(c, Refused)], ids=lambda c: c.id)
def test_refused(case: Refused, tmp_path: Path) -> None:
    assert_refused(case, tmp_path)


@pytest.mark.parametrize("case", [c for c in CASES if isinstance(c, Accepted)], ids=lambda c: c.id)
def test_accepted(case: Accepted, tmp_path: Path) -> None:
    assert_accepted(case, tmp_path)


def test_the_good_configs_pass_check(tmp_path: Path) -> None:
    """The base every case changes passes as it is, on each platform."""
    for platform in (DO, AWS, EXISTING):
        directory = tmp_path / platform
        directory.mkdir()
        code, output = check(project(directory, good(platform)))
        assert code == 0, f"{platform}: exit {code}\n{output}"


def test_the_catalogue_is_large_and_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len([c for c in CASES if isinstance(c, Refused)]) >= 80
    assert {c.platform for c in CASES} == {DO, AWS, EXISTING}


_ = DELETE  # cases remove keys with DELETE
