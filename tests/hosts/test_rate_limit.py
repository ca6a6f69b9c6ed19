"""The per-client rate limit (rateLimit.*) at each front, on a real host.

This machine takes a few more addresses on the testbed's bridge, so the host sees several
clients: one floods and must get 429 once over its burst, while another, under the limit at the
same time, keeps getting 200. The health path and the ACME path are never limited; the limit is
not a ban (a client that slows down is served again); behind a trusted proxy the limit keys on
the real client the proxy names, not on the proxy.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from tests.hosts.deploying import bridge_addresses, get, new_stack, wait_for

pytestmark = pytest.mark.hosts
RATE, BURST = 2, 5  # requests per second, and the burst above it


@pytest.fixture(scope="module", params=("nginx", "haproxy"))
def limited(request, testbed, tmp_path_factory):
    (host,) = testbed.boot(1, prefix=f"r{request.param[0]}")
    stack = new_stack(testbed, [host], tmp_path_factory, front=request.param,
                      extra={"rateLimit": {"enabled": True, "requestsPerSecond": RATE, "burst": BURST}})
    with bridge_addresses(testbed, 3) as clients:
        stack.deploy()
        yield stack, host, clients
    testbed.destroy(host)


def flood(host, source: str, path: str = "/", count: int = 60) -> Counter:
    """`count` requests back to back from `source`; the statuses seen."""
    return Counter(get(host, path, headers={"Connection": "close"}, source=source)[0] for _ in range(count))


def test_a_flooding_client_gets_429_while_a_client_under_the_limit_keeps_getting_200(limited):
    stack, host, (flooder, polite, _) = limited
    polite_statuses: list[int] = []
    stop = threading.Event()

    def politely():  # one request a second: under RATE for Nginx and HAProxy alike
        while not stop.is_set():
            polite_statuses.append(get(host, "/", source=polite)[0])
            stop.wait(1.0)

    thread = threading.Thread(target=politely, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        seen = flood(host, flooder)
        time.sleep(1.5)
    finally:
        stop.set()
        thread.join(10)
    assert seen[429] > 0, f"{stack.front}: never limited: {seen}"
    assert seen[200] >= BURST, f"{stack.front}: the burst was not allowed: {seen}"
    assert set(seen) <= {200, 429}, seen
    assert len(polite_statuses) >= 2 and set(polite_statuses) == {200}, polite_statuses


def test_the_limit_is_not_a_ban(limited):
    stack, host, (flooder, _, _) = limited
    flood(host, flooder, count=40)
    assert get(host, "/", source=flooder)[0] == 429
    # Nginx lets a request through every 1/RATE s; HAProxy once the 10 s window has slowed down.
    assert wait_for(lambda: get(host, "/", source=flooder)[0] == 200, timeout=25, interval=1)


def test_the_health_and_acme_paths_are_never_limited(limited):
    stack, host, (_, _, other) = limited
    health = flood(host, other, "/healthz")
    assert health == Counter({200: 60}), health
    acme = flood(host, other, "/.well-known/acme-challenge/no-such-token", count=30)
    assert 429 not in acme, acme
    # The same client is limited on the app's own paths.
    assert 429 in flood(host, other, "/"), f"{stack.front}: the control flood was not limited"


def test_behind_a_trusted_proxy_the_limit_keys_on_the_real_client(limited, testbed):
    stack, host, (proxy, _, _) = limited
    stack.deploy_changed_config({"hosts": {"trustedProxies": [f"{proxy}/32"]}})
    try:
        # Let whatever earlier tests counted against the proxy's address pass.
        wait_for(lambda: get(host, "/", source=proxy)[0] == 200, timeout=25, interval=1)
        through = Counter(get(host, "/", headers={"X-Forwarded-For": "198.51.100.7", "Connection": "close"},
                              source=proxy)[0] for _ in range(60))
        assert through[429] > 0, through  # one real client, flooding through the proxy
        # Another client behind the same proxy is not held responsible.
        assert get(host, "/", headers={"X-Forwarded-For": "198.51.100.8"}, source=proxy)[0] == 200
        # A client that is not the proxy cannot pick its own identity with the header.
        spoofer = testbed.bridge_address
        wait_for(lambda: get(host, "/", source=spoofer)[0] == 200, timeout=25, interval=1)
        spoofed = Counter(get(host, "/", source=spoofer,
                              headers={"X-Forwarded-For": f"198.51.100.{i}", "Connection": "close"})[0]
                          for i in range(60))
        assert spoofed[429] > 0, spoofed
    finally:
        stack.extra["hosts"].pop("trustedProxies")
