"""Fixtures for tests on real test hosts (see tests/hosts/harness.py).

- `testbed` (session): one bridge, one SSH key, the cached image; hosts are booted from it.
- `host` (function): one fresh host, destroyed after the test; on failure its journal is printed.
- `database_url` (session): the testbed's PostgreSQL, started on first use.

Every test collected under tests/hosts is marked `hosts` (deselect with -m "not hosts"). They need
root; without it they are skipped. A missing tool fails them with the apt-get line to install it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hosts.harness import Testbed, TestHost

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.hosts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)  # for fixtures that report on failure
    return report


@pytest.fixture(scope="session")
def testbed():
    if os.geteuid() != 0:
        pytest.skip("test hosts need root (systemd-nspawn, a bridge, overlay mounts)")
    with Testbed() as tb:
        image = tb.image
        how = (f"built in {image.built_seconds:.1f} s" if image.built_seconds is not None
               else f"cached, ready in {image.ready_seconds:.2f} s")
        print(f"\ntestbed: slot {tb.slot.number}, bridge {tb.bridge} {tb.bridge_address}; "
              f"image {image.key} {how}")
        yield tb


@pytest.fixture
def host(testbed: Testbed, request) -> TestHost:
    (booted,) = testbed.boot(1)
    yield booted
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and booted.running:
        print(f"\n--- journal of {booted.name} after the failure\n{booted.journal(lines=80)}")
    testbed.destroy(booted)


@pytest.fixture(scope="session")
def database_url(testbed: Testbed) -> str:
    return testbed.postgres()
