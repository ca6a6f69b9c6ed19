"""What the deploy tests on real hosts share: a stack of test hosts the program is replayed onto,
HTTP(S) from chosen source addresses, a load generator that counts failed requests, polling.

`Stack.deploy()` runs the real program under the mocks with the stack's config and replays the
remote steps it declared onto the hosts (tests/support/replay.py), keeping state between deploys
the way `pulumi up` does.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.mocks import run_program
from tests.support.replay import Replayer, workdir

ROOT = Path(__file__).resolve().parents[2]
APP_SECRET = "s3cret-value-for-the-app"


@dataclass
class Stack:
    testbed: object
    hosts: list
    app: Path
    database_url: str
    replayer: Replayer
    extra: dict = field(default_factory=dict)
    front: str = "nginx"

    def config(self) -> dict:
        cfg = {
            "platform": "existing",
            "front": self.front,
            "hosts": {"addresses": [h.address for h in self.hosts],
                      "hostKeys": {h.address: self.testbed.host_key(h) for h in self.hosts}},
            "ssh": {"user": "deploy", "privateKey": self.testbed.private_key},
            "database": {"url": self.database_url},
            "app": {"path": str(self.app), "secretEnv": {"SECRET_KEY": APP_SECRET},
                    "env": {"GREETING": "hello"}},
            # 12 s: the test apps answer within 2 s of a start; a failing gate waits it all out.
            "deploy": {"batchSize": 1, "healthTimeout": 12},
        }
        for key, value in self.extra.items():
            cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
        return cfg

    def deploy_changed_config(self, change: dict, **kwargs):
        for key, value in change.items():
            self.extra[key] = {**self.extra.get(key, {}), **value}
        return self.deploy(**kwargs)

    def deploy(self, *, expect_failure: bool = False):
        run = run_program(self.config(), stack="hosts", secret_keys=("ssh", "database", "app"))
        outcome = self.replayer.replay(run)
        if expect_failure:
            assert outcome.failed is not None, f"the deploy should have failed; ran {outcome.ran}"
        else:
            assert outcome.failed is None, str(outcome.failed)
        return outcome


def new_stack(testbed, hosts: list, tmp_path_factory, *, app_dir: Path | None = None,
              **kwargs) -> Stack:
    """A stack of `hosts` deploying a fresh copy of `app_dir` (the default app unless given;
    tests change the copy)."""
    app = tmp_path_factory.mktemp("deploy") / "app"
    shutil.copytree(app_dir or ROOT / "app", app, ignore=shutil.ignore_patterns("__pycache__"))
    return Stack(testbed=testbed, hosts=hosts, app=app, database_url=testbed.postgres(),
                 replayer=Replayer(workdir()), **kwargs)


def get(host, path: str = "/", headers: dict | None = None, timeout: float = 5, *,
        source: str | None = None) -> tuple[int, str]:
    """A GET over plain HTTP to the host's port 80 (or its `port`, for the stand-in balancer),
    from `source` if given (an address of this machine on the testbed's bridge)."""
    conn = http.client.HTTPConnection(host.address, getattr(host, "port", 80), timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def get_response(host, path: str = "/", *, https: bool = False, server_name: str | None = None,
                 context: ssl.SSLContext | None = None, headers: dict | None = None,
                 timeout: float = 5) -> http.client.HTTPResponse:
    """One GET, HTTP or HTTPS (SNI and Host `server_name`), with the body read; keeps headers."""
    if https:
        conn: http.client.HTTPConnection = HTTPSTo(host.address, server_name, context=context,
                                                   timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host.address, 80, timeout=timeout)
    try:
        all_headers = {"Host": server_name} if server_name else {}
        all_headers.update(headers or {})
        conn.request("GET", path, headers=all_headers)
        response = conn.getresponse()
        response.body = response.read()
        return response
    finally:
        conn.close()


class HTTPSTo(http.client.HTTPSConnection):
    """HTTPS to an address, with SNI and certificate checks for a name (no DNS needed)."""

    def __init__(self, address: str, server_name: str | None, **kwargs):
        super().__init__(address, 443, **kwargs)
        self.server_name = server_name or address

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)


def wait_for(predicate, timeout: float = 30, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            value = None
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


@contextmanager
def load(hosts, path: str = "/", *, request=None) -> Iterator[dict]:
    """Non-keep-alive requests to every host until the block ends; counts what failed.
    `request(host)` -> status replaces the plain HTTP GET of `path` (e.g. HTTPS)."""
    stats = {"ok": 0, "failed": 0, "errors": []}
    stop = threading.Event()

    def worker(host):
        while not stop.is_set():
            try:
                if request is not None:
                    status = request(host)
                else:
                    status, _ = get(host, path, headers={"Connection": "close"}, timeout=10)
                if status == 200:
                    stats["ok"] += 1
                else:
                    stats["failed"] += 1
                    stats["errors"].append(f"{host.name}: HTTP {status}")
            except (OSError, http.client.HTTPException) as exc:
                stats["failed"] += 1
                stats["errors"].append(f"{host.name}: {exc!r}")
            time.sleep(0.02)

    threads = [threading.Thread(target=worker, args=(h,), daemon=True) for h in hosts for _ in range(2)]
    with running(threads, stop, join_timeout=15):
        yield stats


@contextmanager
def running(threads: list[threading.Thread], stop: threading.Event, *, join_timeout: float):
    """The load threads, started for the block and stopped (and waited for) after it."""
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=join_timeout)


# What mixed_load() runs per host: (method, path, keep-alive, clients).
MIX = (("GET", "/", False, 2), ("GET", "/", True, 2), ("GET", "/db", True, 1),
       ("POST", "/orders", True, 1))


@contextmanager
def mixed_load(hosts, mix=MIX) -> Iterator[dict]:
    """Like load(), with what a balancer in front sends too: keep-alive clients, and a POST
    (never retried by a front, so a reset it gets is a failed request). 2xx counts as served."""
    stats = {"ok": 0, "failed": 0, "errors": [], "slowest": 0.0}
    stop = threading.Event()
    lock = threading.Lock()

    def worker(host, method, path, keepalive):
        conn = None
        while not stop.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host.address, getattr(host, "port", 80), timeout=15)
                body = b"order=1&item=42" if method == "POST" else None
                headers = {} if keepalive else {"Connection": "close"}
                if body:
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = 200 <= response.status < 300
                with lock:
                    stats["ok" if ok else "failed"] += 1
                    stats["slowest"] = max(stats["slowest"], time.monotonic() - started)
                    if not ok:
                        stats["errors"].append(f"{host.name}: {method} {path}: HTTP {response.status}")
                if not keepalive or response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    stats["failed"] += 1
                    stats["errors"].append(f"{host.name}: {method} {path}: {exc!r}")
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.01)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(h, method, path, keepalive), daemon=True)
               for h in hosts for method, path, keepalive, n in mix for _ in range(n)]
    with running(threads, stop, join_timeout=20):
        yield stats


def host_state(host, app: str = "app") -> dict:
    """What a replay must leave alone: file checksums, service PIDs, the current release."""
    out = host.ssh(
        f"sudo -n sh -c 'sha256sum /etc/{app}/* /etc/nginx/nginx.conf /etc/nginx/sites-available/{app}.conf "
        f"/etc/haproxy/haproxy.cfg /etc/systemd/system/{app}.service /etc/systemd/system/{app}.socket "
        f"2>/dev/null; systemctl show -p MainPID --value {app}.service; "
        f"systemctl show -p MainPID --value nginx.service haproxy.service; "
        f"pgrep -d, -u haproxy haproxy; pgrep -d, -u www-data nginx; readlink /srv/{app}/current'").stdout
    return {"raw": out}


@contextlib.contextmanager
def bridge_addresses(testbed, count: int, *, first: int = 240) -> Iterator[list[str]]:
    """`count` more addresses of this machine on the testbed's bridge (.240, .241, ...), so
    tests can be several clients the hosts tell apart; removed afterwards."""
    network = ipaddress.ip_network(testbed.subnet)
    addresses = [str(network.network_address + first + i) for i in range(count)]
    added = []
    try:
        for address in addresses:
            subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", testbed.bridge],
                           check=True, capture_output=True, text=True)
            added.append(address)
        yield addresses
    finally:
        for address in added:
            subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", testbed.bridge],
                           check=False, capture_output=True)
