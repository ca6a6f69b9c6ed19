"""The remote steps' scripts: pinned output, shellcheck, and quoting.

Pinned output: every step's script for host web-0 of the dev stack, every example and two
variants, made with a fixed release and address, is compared byte for byte with
tests/golden-scripts/<name>/<step>.sh (a tree of its own: tests/golden/<name>/ holds exactly the
files a host receives). After an intended change to a script template, regenerate and review:

    UPDATE_GOLDEN=1 python -m pytest tests/test_scripts.py -k golden   # rewrites, then FAILS
    git diff tests/golden-scripts                                      # review every change
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from stack import inventory, render, scripts
from stack.paths import Paths
from stack.release import Release
from tests.support import stacks

GOLDEN = Path(__file__).resolve().parent / "golden-scripts"
UPDATE = os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")
ADDRESS = "203.0.113.10"
RELEASE = Release(
    id="0123456789abcdef0123", sha256="0123456789abcdef0123" + "4" * 44,
    archive=Path("/nonexistent/release.tar.gz"), files=("app.py",),
    wheels=("flask-3.1.3-py3-none-any.whl", "gunicorn-27.0.1-py3-none-any.whl"),
    python="3.11.2", requirements=("flask==3.1.3", "gunicorn==27.0.1"))


def golden_cases() -> list[stacks.Case]:
    return [*stacks.stack_file_cases(), *stacks.example_cases(),
            stacks.case("variant:complete"), stacks.case("variant:haproxy-tls-private-acme")]


def golden_name(case: stacks.Case) -> str:
    kind, name = case.id.split(":", 1)
    return name if kind in ("stack", "example") else f"{kind}-{name}"


def step_scripts(case: stacks.Case, host_name: str = "web-0", address: str = ADDRESS,
                 config=None) -> dict[str, str]:
    """{step: script text} of every step one host runs."""
    config = config or case.load()
    host = inventory.Host(host_name, address)
    files = render.render_host(config, host)
    paths = Paths(config.app.name)
    made = {
        "bootstrap": scripts.bootstrap(config, host_name),
        "database": scripts.database(config, host_name, "appdb", "appuser"),
        "env": scripts.env(config, host_name, files[paths.env_file], address),
        "release": scripts.release(config, host_name, RELEASE, release_command=True,
                                   address=address, wsgi=files[paths.wsgi]),
        "configure": scripts.configure(config, host_name, files, address),
        "gate": scripts.gate(config, host_name, address),
    }
    if config.tls.enabled:
        made["certificate"] = scripts.certificate(config, host_name, files, address)
    return {step: script.text() for step, script in made.items()}


# -- pinned output ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", golden_cases(), ids=[c.id for c in golden_cases()])
def test_golden(case):
    made = step_scripts(case)
    directory = GOLDEN / golden_name(case)
    if UPDATE:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for step, text in made.items():
            (directory / f"{step}.sh").write_bytes(text.encode())
        pytest.fail(f"UPDATE_GOLDEN is set: rewrote {directory.relative_to(GOLDEN.parent.parent)}; "
                    "review `git diff tests/golden-scripts`, then run again without UPDATE_GOLDEN")
    if not directory.is_dir():
        pytest.fail(f"no golden scripts for {case.id} in {directory}; create them with "
                    "UPDATE_GOLDEN=1 python -m pytest tests/test_scripts.py -k golden")
    pinned = {f.name.removesuffix(".sh"): f.read_bytes().decode() for f in sorted(directory.glob("*.sh"))}
    assert sorted(pinned) == sorted(made), "the set of steps changed"
    for step, text in made.items():
        assert text == pinned[step], f"{step} differs from {directory / (step + '.sh')}"
