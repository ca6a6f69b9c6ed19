"""The whole serving path of one host, for real: the rendered Nginx config on a loopback port in
front of a real Gunicorn run from the rendered gunicorn.conf.py, serving the generated WSGI entry
(the default app wrapped in ProxyFix) on a unix socket. Requests go over real HTTP, from chosen
loopback source addresses, so "the client", "the load balancer" and "a spoofer" are different
peers as far as Nginx can tell.

Only paths move (tests/support/hostfs.py): every directive that decides who the app believes is
exactly what a host receives. Nginx workers run unprivileged (nobody: the `user` line is dropped
and the test runs as root), so static files and the socket are reached as on a host.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stack import inventory, render, settings
from tests.support import hostfs

pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parent.parent
APP_DIR = ROOT / "app"
CLIENT = "127.0.0.5"  # a visitor talking to Nginx directly
LB = "127.0.0.2"  # the load balancer, in trustedProxies
STRANGER = "127.0.0.3"  # outside trustedProxies: must not be believed
SPOOFED = "6.6.6.6"
REAL_CLIENT = "198.51.100.7"
START_TIMEOUT = 15.0


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    if not found:
        pytest.fail("nginx is not installed; these tests run a real Nginx: apt-get install nginx")
    return found


def base_config(**extra) -> dict:
    raw = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]}, "ssh": {"user": "deploy"}}
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return raw


# --- HTTP from a chosen source address ------------------------------------------------------------

@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def request(port: int, path: str, *, host: str = "127.0.0.1", source: str = CLIENT,
            headers: list[tuple[str, str]] | None = None) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in headers or []:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


# --- processes ------------------------------------------------------------------------------------

def started(ready, proc: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT) -> bool:
    """Poll until ready() holds (True) or proc exits (False); a timeout fails the test."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            if ready():
                return True
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    pytest.fail(f"{' '.join(map(str, proc.args[:4]))} was not ready after {timeout:.0f} s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({path}: {exc})"


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop a process this module started (and its process group, which it leads)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # any worker left behind by its master


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_answers(path: Path) -> bool:
    """Gunicorn's workers have loaded the app: /healthz answers 200 on the socket itself."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(str(path))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return s.makefile("rb").readline().startswith(b"HTTP/1.1 200 ")


def accepts_tcp(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def process_tree(pid: int) -> set[int]:
    """pid and its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat_line = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat_line.rsplit(")", 1)[1].split()[1])
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    return tree


def socket_inodes(pids: set[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(int(target[8:-1]))
    return inodes


def tcp_listening_inodes() -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":  # TCP_LISTEN
                    inodes.add(int(cols[9]))
    return inodes


def unix_listening_inodes(path: Path) -> set[int]:
    inodes = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        cols = line.split()
        # Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is __SO_ACCEPTCON (listening)
        if len(cols) >= 8 and cols[7] == str(path) and int(cols[3], 16) & 0x10000:
            inodes.add(int(cols[6]))
    return inodes


@dataclass
class Served:
    """One host's front and app server, running from the rendered files under `root`."""

    root: Path
    port: int
    socket: Path
    files: dict[str, str]
    gunicorn: subprocess.Popen
    nginx: subprocess.Popen
    logs: dict[str, Path] = field(default_factory=dict)

    def get(self, path: str, **kwargs) -> Response:
        return request(self.port, path, **kwargs)

    def whoami(self, **kwargs) -> dict:
        resp = self.get("/whoami", **kwargs)
        assert resp.status == 200, (resp.status, resp.body, self.diagnostics())
        return resp.json()

    def diagnostics(self) -> str:
        return "\n".join(f"--- {name}\n{tail(path)}" for name, path in self.logs.items())


@contextlib.contextmanager
def serving(raw: dict) -> Iterator[Served]:
    nginx = nginx_binary()
    config = settings.load(raw, stack="test", project_dir=ROOT, offline=True)
    files = render.render_host(config, inventory.Host("web-0"))
    # Not under pytest's tmp dir: that one is 0700 and Nginx's workers run as nobody.
    root = Path(tempfile.mkdtemp(prefix="fs-e2e-", dir="/tmp"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, root, ignore_errors=True)
        root.chmod(0o755)
        sock = root / "run" / "app" / "gunicorn.sock"
        assert len(str(sock)) < 100, sock  # sun_path limit
        upstream = f"unix:{sock}"

        conf = hostfs.gunicorn_prefix(files, root, app_dir=APP_DIR, socket=upstream)
        gunicorn_log = root / "gunicorn.log"
        with gunicorn_log.open("wb") as out:
            gunicorn = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", upstream, "--workers", "2"],
                cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        cleanup.callback(stop, gunicorn)
        if not started(lambda: app_answers(sock), gunicorn, gunicorn_log):
            pytest.fail(f"gunicorn exited with {gunicorn.returncode}:\n{tail(gunicorn_log)}")

        error_log = root / "var" / "log" / "nginx" / "error.log"
        error_log.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # a free port can be taken between choosing and binding it
            port = free_port()
            nginx_conf = hostfs.nginx_prefix(files, root, port=port, socket=upstream)
            cmd = [nginx, "-p", f"{nginx_conf.parent}/", "-e", str(error_log), "-c", str(nginx_conf)]
            check = subprocess.run([*cmd, "-t"], capture_output=True, text=True, timeout=30)
            assert check.returncode == 0, check.stderr
            proc = subprocess.Popen([*cmd, "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            cleanup.callback(stop, proc)
            if started(lambda port=port: accepts_tcp(port), proc, error_log):
                break
            if "Address already in use" not in tail(error_log):
                pytest.fail(f"nginx exited with {proc.returncode}:\n{tail(error_log)}")
        else:
            pytest.fail(f"nginx could not bind a free port:\n{tail(error_log)}")

        yield Served(root=root, port=port, socket=sock, files=files, gunicorn=gunicorn, nginx=proc,
                     logs={"nginx error.log": error_log, "gunicorn": gunicorn_log,
                           "nginx access.log": root / "var" / "log" / "nginx" / "access.log"})


@pytest.fixture(scope="module")
def public():
    """platform existing, no load balancer: Nginx faces the internet itself."""
    with serving(base_config()) as served:
        yield served


@pytest.fixture(scope="module")
def behind_lb():
    """A load balancer at 127.0.0.2 in front of Nginx."""
    with serving(base_config(hosts={"trustedProxies": [f"{LB}/32"]})) as served:
        yield served


@pytest.fixture(scope="module")
def with_domain():
    """domain example.com (with the www redirect), behind the same load balancer."""
    raw = base_config(hosts={"trustedProxies": [f"{LB}/32"]}, domain={"name": "example.com"})
    with serving(raw) as served:
        yield served


# --- Nginx facing the internet itself -------------------------------------------------------------

def test_the_app_answers_through_nginx_and_gunicorn(public):
    resp = public.get("/")
    assert resp.status == 200, public.diagnostics()
    assert resp.body == b"Hello World!"
    assert public.get("/healthz").status == 200
    assert public.get("/healthz").body == b"ok"


def test_nginx_keeps_its_pid_and_logs_under_the_scratch_root(public):
    assert int((public.root / "run" / "nginx.pid").read_text()) == public.nginx.pid
    public.get("/")
    # The access log is buffered: the line lands within its flush interval (1 s).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not public.logs["nginx access.log"].stat().st_size:
        time.sleep(0.05)
    assert public.logs["nginx access.log"].stat().st_size > 0
    assert public.logs["nginx error.log"].exists()


def test_the_app_sees_the_real_client_address_and_scheme(public):
    assert public.whoami(source=CLIENT) == {"remote_addr": CLIENT, "scheme": "http", "host": "127.0.0.1"}
    # Not a fixed value: a second client is told apart.
    assert public.whoami(source="127.0.0.9")["remote_addr"] == "127.0.0.9"


def test_the_host_header_reaches_the_app(public):
    assert public.whoami(host="shop.example.test")["host"] == "shop.example.test"


@pytest.mark.parametrize("headers", [
    [("X-Forwarded-For", SPOOFED)],
    [("X-Forwarded-Proto", "https")],
    [("X-Real-IP", SPOOFED)],
    [("X-Forwarded-Ssl", "on")],
    [("X-Forwarded-Protocol", "ssl")],
    [("X-Url-Scheme", "https")],
    [("Forwarded", f"for={SPOOFED};proto=https")],
    [("X-Forwarded-For", SPOOFED), ("X-Forwarded-For", f"{SPOOFED}, {REAL_CLIENT}")],
    [("X-Forwarded-For", SPOOFED), ("X-Forwarded-Proto", "https"), ("X-Real-IP", SPOOFED),
     ("X-Forwarded-Ssl", "on"), ("X-Forwarded-Protocol", "ssl"), ("X-Forwarded-Host", "evil.test")],
], ids=["xff", "xfp", "x-real-ip", "x-forwarded-ssl", "x-forwarded-protocol", "x-url-scheme",
        "forwarded", "xff-twice", "all"])
def test_forwarded_headers_from_a_client_change_nothing(public, headers):
    seen = public.whoami(source=CLIENT, host="app.example.test", headers=headers)
    assert seen == {"remote_addr": CLIENT, "scheme": "http", "host": "app.example.test"}


def test_static_files_come_from_disk_with_cache_headers(public):
    resp = public.get("/static/site.css")
    assert resp.status == 200
    assert resp.body == (APP_DIR / "static" / "site.css").read_bytes()
    assert resp.headers["content-type"].startswith("text/css")
    assert resp.headers["cache-control"] == "max-age=604800"
    assert "expires" in resp.headers
    assert public.get("/static/missing.css").status == 404


def test_gunicorn_listens_on_its_unix_socket_only(public):
    rendered = public.files["/etc/app/gunicorn.conf.py"]
    assert 'bind = ["unix:/run/app/gunicorn.sock"]' in rendered
    assert stat.S_ISSOCK(public.socket.stat().st_mode)
    pids = process_tree(public.gunicorn.pid)
    assert len(pids) >= 3, pids  # the master and its two workers
    inodes = socket_inodes(pids)
    assert inodes & unix_listening_inodes(public.socket), "gunicorn does not hold its unix socket"
    assert not inodes & tcp_listening_inodes(), "gunicorn listens on a TCP port"


def test_static_files_are_served_while_gunicorn_is_down():
    with serving(base_config()) as served:
        assert served.get("/").status == 200
        stop(served.gunicorn)
        assert served.gunicorn.returncode is not None
        assert not served.socket.exists()
        # The app is really gone: anything proxied fails...
        assert served.get("/").status == 502
        assert served.get("/healthz").status == 502
        # ...and the static file is still there, from Nginx alone.
        resp = served.get("/static/site.css")
        assert resp.status == 200, served.diagnostics()
        assert resp.body == (APP_DIR / "static" / "site.css").read_bytes()
        assert resp.headers["cache-control"] == "max-age=604800"
        assert "expires" in resp.headers


# --- behind a load balancer -----------------------------------------------------------------------

def test_the_load_balancer_reports_the_client_and_scheme(behind_lb):
    seen = behind_lb.whoami(source=LB, host="app.example.test",
                            headers=[("X-Forwarded-For", REAL_CLIENT), ("X-Forwarded-Proto", "https")])
    assert seen == {"remote_addr": REAL_CLIENT, "scheme": "https", "host": "app.example.test"}


def test_a_request_from_the_load_balancer_without_headers_is_its_own(behind_lb):
    assert behind_lb.whoami(source=LB) == {"remote_addr": LB, "scheme": "http", "host": "127.0.0.1"}


def test_the_same_headers_from_outside_the_trusted_network_are_ignored(behind_lb):
    seen = behind_lb.whoami(source=STRANGER,
                            headers=[("X-Forwarded-For", REAL_CLIENT), ("X-Forwarded-Proto", "https")])
    assert seen == {"remote_addr": STRANGER, "scheme": "http", "host": "127.0.0.1"}


def test_an_address_spoofed_in_front_of_the_chain_is_ignored(behind_lb):
    seen = behind_lb.whoami(source=LB, headers=[("X-Forwarded-For", f"{SPOOFED}, {REAL_CLIENT}"),
                                                ("X-Forwarded-Proto", "https")])
    assert seen == {"remote_addr": REAL_CLIENT, "scheme": "https", "host": "127.0.0.1"}


def test_trusted_hops_inside_the_chain_are_skipped(behind_lb):
    # Another balancer in the trusted network (one in front of the other): its address is passed
    # over, the first untrusted address from the right is the client (real_ip_recursive).
    seen = behind_lb.whoami(source=LB, headers=[("X-Forwarded-For", f"{SPOOFED}, {REAL_CLIENT}, {LB}")])
    assert seen["remote_addr"] == REAL_CLIENT


@pytest.mark.parametrize("proto", ["http", "gopher", "https, http", ""])
def test_only_https_or_http_from_the_load_balancer_sets_the_scheme(behind_lb, proto):
    headers = [("X-Forwarded-For", REAL_CLIENT), ("X-Forwarded-Proto", proto)]
    seen = behind_lb.whoami(source=LB, headers=headers)
    assert seen["scheme"] == "http"
    assert seen["remote_addr"] == REAL_CLIENT


def test_other_scheme_headers_from_the_load_balancer_are_ignored(behind_lb):
    seen = behind_lb.whoami(source=LB, headers=[("X-Forwarded-For", REAL_CLIENT), ("X-Forwarded-Ssl", "on"),
                                                ("X-Forwarded-Protocol", "ssl")])
    assert seen["scheme"] == "http"


# --- a domain ---------------------------------------------------------------------------------------

def test_the_domain_is_served(with_domain):
    assert with_domain.get("/", host="example.com").body == b"Hello World!"
    assert with_domain.whoami(host="example.com", source=CLIENT) == {
        "remote_addr": CLIENT, "scheme": "http", "host": "example.com"}
    assert with_domain.get("/static/site.css", host="example.com").status == 200


@pytest.mark.parametrize("path", ["/", "/whoami", "/static/site.css"])
def test_an_unknown_host_gets_no_answer(with_domain, path):
    marker = f"{path}?probe={time.monotonic_ns()}"
    # Closed before a status line: a reset, since nginx.conf has reset_timedout_connection on
    # (which covers 444 too), or a plain close.
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        with_domain.get(marker, host="evil.test")
    access_log = with_domain.logs["nginx access.log"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and marker not in access_log.read_text():
        time.sleep(0.02)
    line = next(ln for ln in access_log.read_text().splitlines() if marker in ln)
    assert '" 444 ' in line, line


def test_www_is_redirected_to_the_bare_domain(with_domain):
    resp = with_domain.get("/some/page?x=1", host="www.example.com")
    assert resp.status == 301
    assert resp.headers["location"] == "http://example.com/some/page?x=1"
    # A visitor's own X-Forwarded-Proto does not choose the scheme of the redirect...
    spoofed = with_domain.get("/p", host="www.example.com", source=STRANGER,
                              headers=[("X-Forwarded-Proto", "https")])
    assert spoofed.headers["location"] == "http://example.com/p"
    # ...the load balancer's does (it terminated TLS).
    via_lb = with_domain.get("/p", host="www.example.com", source=LB,
                             headers=[("X-Forwarded-Proto", "https")])
    assert via_lb.headers["location"] == "https://example.com/p"


@pytest.mark.parametrize("host", ["203.0.113.10", "127.0.0.1", "evil.test"])
def test_the_health_check_answers_for_any_host(with_domain, host):
    resp = with_domain.get("/healthz", host=host, source=LB)
    assert resp.status == 200, with_domain.diagnostics()
    assert resp.body == b"ok"
