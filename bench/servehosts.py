"""The test hosts bench/serve measures, deployed by the program, plus the comparison setups.

Host `a` gets the bench app (bench/app) deployed by the program with its defaults: the rendered
stack, Nginx on port 80 in front of Gunicorn on a unix socket. Once it serves, four more setups
are started on the same host, from the same release, so all share one host and one run:

- naive, port 8001: the classic recipe's starting point. Gunicorn with its own defaults (one sync
  worker) on 127.0.0.1:8000, started as `gunicorn --bind 127.0.0.1:8000 bench_app:app`, behind an
  Nginx server block holding only `proxy_pass http://127.0.0.1:8000;` (HTTP/1.0 to Gunicorn, a
  new connection per request); static files go through Flask.
- gunicorn, port 8002: Gunicorn alone with the stack's own rendered gunicorn.conf.py (same
  workers, worker class, threads, keep-alive, logging), bound to the host's address with
  `--bind 0.0.0.0:8002`; no Nginx. Static files go through Flask.
- gunicorn-log, port 8004: the same as `gunicorn` plus an access log to the journal
  (`--access-logfile -`), which the rendered config had before: what that log costs.
- nginx, port 8003: Nginx alone, the ceiling: `return 200 "Hello World!"` for `/` and the
  static folder straight from disk (`alias`) with the same open-file cache as the stack's static
  location (without it Nginx alone is ~20% slower, and would be no ceiling), no access log, none
  of the stack's extras (expiry headers, pre-compressed lookups, ACME and health locations).

The two Gunicorns run as transient units (`systemd-run`) as the app's user with its environment.
The Nginx server blocks live in /etc/nginx/sites-enabled/bench.conf, under the rendered
nginx.conf (so the same worker and connection settings). Further hosts (`b`, ...) get the same
app deployed with other settings (the I/O-bound recommendations) and nothing else.
"""

from __future__ import annotations

import random
import shutil
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.mocks import run_program
from tests.support.replay import Replayer, workdir

ROOT = Path(__file__).resolve().parent.parent
STATIC_FILE = "50k.bin"
STATIC_BYTES = 50 * 1024
PORTS = {"stack": 80, "naive": 8001, "gunicorn": 8002, "nginx": 8003, "gunicorn-log": 8004}

EXTRAS = r"""
set -euo pipefail
cur=/srv/app/current
run() {  # run UNIT ARGS...: a transient service as the app's user, in the release, with its env
  local unit=$1; shift
  systemctl stop "$unit" 2>/dev/null || true
  systemctl reset-failed "$unit" 2>/dev/null || true
  systemd-run --quiet --unit="$unit" --uid=app --gid=app --working-directory="$cur" \
    --property=EnvironmentFile=-/etc/app/app.env "$cur/venv/bin/python" -m gunicorn "$@"
}
# The classic recipe: Gunicorn's defaults (1 sync worker), TCP on loopback.
run bench-naive --bind 127.0.0.1:8000 --no-control-socket bench_app:app
# Gunicorn alone: the stack's own config, bound to the host's address.
run bench-gunicorn --config /etc/app/gunicorn.conf.py --bind 0.0.0.0:8002
# The same with an access log to the journal, as the stack had before (what it costs).
run bench-gunicorn-log --config /etc/app/gunicorn.conf.py --bind 0.0.0.0:8004 --access-logfile -
cat > /etc/nginx/sites-enabled/bench.conf <<'EOF'
# bench/serve: the comparison setups (see bench/servehosts.py)
server {
    listen 8001;
    location / {
        proxy_pass http://127.0.0.1:8000;
    }
}
server {
    listen 8003;
    access_log off;
    location = / {
        default_type text/html;
        return 200 "Hello World!";
    }
    location /static/ {
        alias /srv/app/current/static/;
        open_file_cache max=1000 inactive=60s;
        open_file_cache_valid 10s;
        open_file_cache_errors on;
    }
}
EOF
nginx -t -q
systemctl reload nginx
"""


@dataclass
class Deployed:
    name: str
    host: object  # tests.hosts.harness.TestHost
    app: dict  # the app settings it was deployed with (beyond the bench app's path and entry)
    seconds: float = 0.0
    ports: dict[str, int] = field(default_factory=dict)

    def url(self, port: int, path: str) -> str:
        return f"http://{self.host.address}:{port}{path}"


def bench_app(into: Path) -> Path:
    """A copy of bench/app with its 50 KB static file (fixed pseudo-random bytes)."""
    app = into / "app"
    shutil.copytree(ROOT / "bench" / "app", app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "static" / STATIC_FILE).write_bytes(random.Random(8).randbytes(STATIC_BYTES))  # noqa: S311 - test data
    return app


def config(testbed, host, app: Path, extra_app: dict, extra: dict | None = None) -> dict:
    return {
        "platform": "existing",
        "hosts": {"addresses": [host.address], "hostKeys": {host.address: testbed.host_key(host)}},
        "ssh": {"user": "deploy", "privateKey": testbed.private_key},
        "app": {"path": str(app), "entry": "bench_app:app", **extra_app}, **(extra or {}),
    }


def deploy(testbed, host, app: Path, name: str, extra_app: dict, extra: dict | None = None) -> Deployed:
    """The bench app on `host` with `extra_app` (app settings) and `extra` (top-level ones)."""
    started = time.monotonic()
    run = run_program(config(testbed, host, app, extra_app, extra), stack=f"bench-{name}",
                      secret_keys=("ssh",))
    outcome = Replayer(workdir()).replay(run)
    if outcome.failed:
        raise SystemExit(f"deploying {name} on {host.name} failed: {outcome.failed}")
    return Deployed(name=name, host=host, app=extra_app, seconds=time.monotonic() - started,
                    ports={"stack": 80})


def deploy_all(testbed, setups: dict[str, tuple[dict, dict]], prefix: str, scratch: Path,
               log) -> dict[str, Deployed]:
    """One fresh test host per setup (name: (app settings, top-level settings)), each with the
    bench app deployed."""
    hosts = testbed.boot(len(setups), prefix=prefix)
    app = bench_app(scratch)
    deployed = {}
    for (name, (extra_app, extra)), host in zip(setups.items(), hosts, strict=True):
        deployed[name] = deploy(testbed, host, app, name, extra_app, extra)
        log(f"deployed {name} ({extra_app or extra or 'defaults'}) on {host.name} in "
            f"{deployed[name].seconds:.1f} s")
    return deployed


def start_extras(deployed: Deployed) -> None:
    deployed.host.ssh("sudo -n bash -s", input=EXTRAS, timeout=120)
    deployed.ports = dict(PORTS)
    for what, port in PORTS.items():
        wait_ok(deployed.url(port, "/"), what)


def wait_ok(url: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own test host
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise SystemExit(f"{what} at {url} does not answer 200 after {timeout:.0f} s: {last}")
