"""Releases of a heavier app (tests/apps/heavy: ~1 s to import, a slow first request, a
database pool) under load, with each front: no request may fail.

The load mixes what real clients and balancers send: Connection: close GETs, keep-alive GETs
(of / and of /db, through the pool) and keep-alive POSTs, which no front retries. The stack keeps
two releases (deploy.releasesKept 2), so by the third release the health gate has pruned the
release Gunicorn's master started in: the next HUP used to kill the master there ("can't chdir")
and systemd killed every worker mid-request; and while the new workers imported the app, every
request waited (4.3 s at worst), the old ones having stopped at once (docs/zero-downtime-reload.md).
"""

from __future__ import annotations

import time

import pytest

from tests.apps.generate import heavy_app
from tests.hosts.deploying import get, mixed_load, new_stack

pytestmark = pytest.mark.hosts
FRONTS = ("nginx", "haproxy")
RELEASES = 3


@pytest.fixture(scope="module", params=FRONTS)
def heavy(request, testbed, tmp_path_factory):
    hosts = testbed.boot(1, prefix="k" + request.param[0])
    source = heavy_app(tmp_path_factory.mktemp("heavy") / "app")
    stack = new_stack(testbed, hosts, tmp_path_factory, app_dir=source, front=request.param,
                      extra={"app": {"entry": "shop:create_app()"}, "deploy": {"releasesKept": 2}})
    stack.deploy()
    yield stack
    testbed.destroy(*hosts)


def test_the_heavy_app_is_served(heavy):
    host = heavy.hosts[0]
    status, body = get(host, "/")
    assert status == 200 and body.startswith("Shop of 100 parts"), body
    status, body = get(host, "/db")
    assert status == 200 and '"database":"ok"' in body, body


def test_releases_of_the_heavy_app_under_load_fail_no_request(heavy):
    host = heavy.hosts[0]
    since = host.ssh("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    module = heavy.app / "shop" / "__init__.py"
    seconds = []
    with mixed_load(heavy.hosts) as stats:
        time.sleep(1)
        for n in range(RELEASES):
            module.write_text(module.read_text() + f"\n# release {n + 1} under load\n")
            started = time.monotonic()
            outcome = heavy.deploy()
            seconds.append(round(time.monotonic() - started, 1))
            assert any(name.endswith("-release") for name in outcome.ran), outcome.ran
        time.sleep(2)
    print(f"\n{heavy.front}: {RELEASES} releases ({seconds} s) under load: {stats['ok']} served, "
          f"{stats['failed']} failed, slowest {stats['slowest']:.2f} s")
    journal = host.ssh(f"sudo -n journalctl -u app --since '{since}' --no-pager -o cat "
                       "| grep -E \"can't chdir|Main process exited|was sent SIG\" || true").stdout
    front_errors = host.ssh("sudo -n sh -c 'grep -h \"upstream\" /var/log/nginx/error.log "
                            "2>/dev/null || true'").stdout
    assert stats["failed"] == 0 and stats["ok"] > 200, (stats["errors"][:8], journal)
    # No request waited for a new worker to import the app: old workers serve until then.
    assert stats["slowest"] < 2.0, f"a request took {stats['slowest']:.2f} s during a release"
    assert journal.strip() == "", journal
    assert front_errors.strip() == "", front_errors
    assert host.ssh("systemctl show -p NRestarts --value app.service").stdout.strip() == "0"
