"""The Heroku archive (stack/dyno.py), run as Heroku runs it: unpacked, installed into a fresh
venv with `pip install -r requirements.txt` from PyPI (the buildpack's step) for the Python its
.python-version names, its Procfile read with honcho, the `release:` line run once through a
shell against a real PostgreSQL, then the `web:` line started with PORT set, behind a stand-in for
Heroku's router (tests/support/router.py). The app is tests/apps/bookshelf: an app factory, a
blueprint, static files in the package, psycopg on DATABASE_URL, `flask --app shelf init-db` as
the release command.

The web line gets the environment the Python buildpack's profile script exports on a dyno
(WEB_CONCURRENCY, FORWARDED_ALLOW_IPS='*', GUNICORN_CMD_ARGS='--access-logfile -'), so the test
also shows that the generated config, not those, decides how Gunicorn runs.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import honcho.environ
import pytest

from stack import dyno
from tests.hosts.postgres import Postgres, bindir, free_port
from tests.support.heroku import dyno_settings
from tests.support.router import ROUTER_ADDRESS, Router

pytestmark = pytest.mark.tools  # Gunicorn and PostgreSQL, for real, on this machine

APP = Path(__file__).resolve().parent / "apps" / "bookshelf"
CLIENT = "127.0.0.3"  # where the test's requests come from: neither the router nor the dyno
DOMAIN = "shelf.example"
# What the classic Python buildpack's .profile.d/python.gunicorn.sh and WEB_CONCURRENCY.sh export
# on a dyno (heroku/heroku-buildpack-python, vendor/).
BUILDPACK_ENV = {"WEB_CONCURRENCY": "2", "FORWARDED_ALLOW_IPS": "*",
                 "GUNICORN_CMD_ARGS": "--access-logfile -"}


def _skip_unless_runnable(python: str) -> str:
    if os.geteuid() != 0:
        pytest.skip("runs PostgreSQL as the postgres user: needs root")
    try:
        bindir()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    interpreter = shutil.which(f"python{python}")
    if interpreter is None:
        pytest.skip(f".python-version says {python}, and this machine has no python{python} to "
                    f"make the venv with (the test stacks set hosts.python to a Python it has)")
    try:
        urllib.request.urlopen("https://pypi.org/simple/flask/", timeout=10).close()  # noqa: S310
    except OSError as exc:
        pytest.skip(f"pip installs from PyPI as the buildpack does, and PyPI is out of reach: {exc}")
    return interpreter


class Dyno:
    """The unpacked release, its venv, the database, the web process and the router."""

    def __init__(self, root: Path):
        self.root = root
        self.app = root / "app"
        self.venv = root / "venv"
        self.procfile: dict[str, str] = {}
        self.release_output = ""
        self.web: subprocess.Popen | None = None
        self.web_log = root / "web.log"
        self.port = 0
        self.router: Router | None = None

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": f"{self.venv}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.root),
                "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", **extra}

    def ask(self, scheme: str, method: str, path: str, *, host: str = DOMAIN,
            headers: dict[str, str] | None = None, body: bytes | None = None) -> http.client.HTTPResponse:
        """One request to the router's https or http side, from CLIENT; the answer read whole."""
        assert self.router is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.router.port(scheme), timeout=30,
                                          source_address=(CLIENT, 0))
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        answer = conn.getresponse()
        answer.data = answer.read()  # type: ignore[attr-defined]
        conn.close()
        return answer


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(APP, project / "app")
    config = dyno_settings(project, {"path": "app", "entry": "shelf:create_app()",
                                     "releaseCommand": "flask --app shelf init-db"},
                           domain={"name": DOMAIN, "wwwRedirect": True})
    rel = dyno.build(config, project / ".cache")
    box = Dyno(tmp_path_factory.mktemp("dyno"))
    with tarfile.open(rel.archive) as tar:
        tar.extractall(box.app, filter="data")
    python = (box.app / ".python-version").read_text().strip()
    interpreter = _skip_unless_runnable(python)

    # The buildpack's build: a Python of that version, then pip install -r requirements.txt.
    subprocess.run([interpreter, "-m", "venv", str(box.venv)], check=True, timeout=120)
    pip = subprocess.run([str(box.venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                          "-r", "requirements.txt"], cwd=box.app, env=box.env(), capture_output=True,
                         text=True, timeout=300, check=False)
    assert pip.returncode == 0, pip.stderr[-3000:]
    box.procfile = dict(honcho.environ.parse_procfile((box.app / "Procfile").read_text()).processes)

    pg = Postgres(Path("/var/tmp") / f"flask-stack-dyno-pg-{secrets.token_hex(4)}")
    try:
        # As Heroku Postgres writes it: postgres://, no sslmode (docs/heroku.md, "The database URL").
        url = pg.start().replace("postgresql://", "postgres://", 1)
        # The release phase: the release line, once, in the app's directory, with its config vars.
        released = subprocess.run(["/bin/bash", "-c", box.procfile["release"]], cwd=box.app,
                                  env=box.env(DATABASE_URL=url), capture_output=True, text=True,
                                  timeout=120, check=False)
        assert released.returncode == 0, released.stdout + released.stderr
        box.release_output = released.stdout
        box.port = free_port(["0.0.0.0"])  # noqa: S104 - where a dyno listens
        with box.web_log.open("w") as log:
            box.web = subprocess.Popen(["/bin/bash", "-c", box.procfile["web"]], cwd=box.app,
                                       env=box.env(DATABASE_URL=url, PORT=str(box.port), **BUILDPACK_ENV),
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for_port(box)
        with Router(box.port) as router:
            box.router = router
            yield box
    finally:
        if box.web is not None and box.web.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(box.web.pid, signal.SIGKILL)
            box.web.wait(timeout=30)
        pg.stop()


def _wait_for_port(box: Dyno) -> None:
    deadline = time.monotonic() + 60  # Heroku gives a web dyno 60 s to bind $PORT (R10)
    while time.monotonic() < deadline:
        assert box.web is not None
        if box.web.poll() is not None:
            pytest.fail(f"the web line exited ({box.web.returncode}):\n{box.web_log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", box.port), timeout=1):
            return
        time.sleep(0.1)
    pytest.fail(f"nothing listened on PORT {box.port} within 60 s:\n{box.web_log.read_text()[-3000:]}")


def test_the_procfile_runs_gunicorn_with_the_generated_config_and_the_release_command(running):
    assert running.procfile == {"web": "GUNICORN_CMD_ARGS= gunicorn --config .flaskstack/gunicorn.conf.py",
                                "release": "flask --app shelf init-db"}
    assert "init-db: the shelf is ready" in running.release_output


def test_a_request_reaches_the_app_which_reads_what_the_release_command_wrote(running):
    answer = running.ask("https", "GET", "/", headers={"Accept": "application/json"})
    assert answer.status == 200, answer.data
    assert json.loads(answer.data) == {"books": [{"title": "Release notes",
                                                  "added_by": "the release command"}]}
    page = running.ask("https", "GET", "/")
    assert b'href="/static/shelf.css"' in page.data


def test_the_app_sees_the_client_and_https_not_the_router(running):
    seen = json.loads(running.ask("https", "GET", "/whoami").data)
    assert seen["remote_addr"] == CLIENT != ROUTER_ADDRESS
    assert seen["scheme"] == "https"
    assert seen["url"] == f"https://{DOMAIN}/whoami"
    assert seen["stylesheet"] == f"https://{DOMAIN}/static/shelf.css"


def test_a_forwarded_for_the_client_sends_does_not_become_its_address(running):
    answer = running.ask("https", "GET", "/whoami", headers={"X-Forwarded-For": "6.6.6.6"})
    assert json.loads(answer.data)["remote_addr"] == CLIENT
    assert running.router.seen[-1]["X-Forwarded-For"] == f"6.6.6.6, {CLIENT}"  # as Heroku's router


def test_a_post_over_https_is_the_apps(running):
    answer = running.ask("https", "POST", "/books", body=b"title=Dune",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 201
    books = json.loads(running.ask("https", "GET", "/", headers={"Accept": "application/json"}).data)
    assert {"title": "Dune", "added_by": CLIENT} in books["books"]


@pytest.mark.parametrize(("method", "status"), [("GET", 301), ("HEAD", 301), ("POST", 308)])
def test_plain_http_is_sent_to_https(running, method, status):
    answer = running.ask("http", method, "/books?shelf=2", body=b"title=x" if method == "POST" else None)
    assert answer.status == status
    assert answer.getheader("Location") == f"https://{DOMAIN}/books?shelf=2"
    assert answer.getheader("Strict-Transport-Security") is None  # HSTS is for HTTPS answers


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_www_goes_to_the_bare_domain_over_https(running, scheme):
    answer = running.ask(scheme, "GET", "/whoami?x=1", host=f"www.{DOMAIN}")
    assert answer.status == 301
    assert answer.getheader("Location") == f"https://{DOMAIN}/whoami?x=1"


def test_https_answers_carry_hsts(running):
    assert running.ask("https", "GET", "/whoami").getheader("Strict-Transport-Security") == \
        "max-age=63072000"


def test_the_health_path_answers_200(running):
    answer = running.ask("https", "GET", "/healthz")
    assert (answer.status, answer.data) == (200, b"ok\n")


def test_static_files_come_with_a_long_max_age_and_gzip_when_asked(running):
    css = (APP / "shelf" / "static" / "shelf.css").read_bytes()
    plain = running.ask("https", "GET", "/static/shelf.css")
    assert plain.status == 200 and plain.data == css
    assert plain.getheader("Cache-Control") == "max-age=604800, public"
    assert plain.getheader("Content-Type").startswith("text/css")
    assert plain.getheader("Vary") == "Accept-Encoding"
    zipped = running.ask("https", "GET", "/static/shelf.css", headers={"Accept-Encoding": "gzip"})
    assert zipped.getheader("Content-Encoding") == "gzip"
    assert len(zipped.data) < len(css) and gzip.decompress(zipped.data) == css
    assert zipped.getheader("Cache-Control") == "max-age=604800, public"
    again = running.ask("https", "GET", "/static/shelf.css",
                        headers={"If-None-Match": plain.getheader("ETag")})
    assert again.status == 304
    small = running.ask("https", "GET", "/static/logo.svg", headers={"Accept-Encoding": "gzip"})
    assert small.status == 200 and small.getheader("Content-Encoding") is None  # under 1 KiB


def test_gunicorn_runs_as_configured_not_as_the_buildpack_environment_says(running):
    running.ask("https", "GET", "/whoami")
    log = running.web_log.read_text()
    assert "GET /whoami" not in log  # no access log despite GUNICORN_CMD_ARGS="--access-logfile -"
    assert f"Listening at: http://0.0.0.0:{running.port}" in log
    assert log.count("Booting worker with pid") == 2  # WEB_CONCURRENCY


def test_the_web_process_stops_cleanly_on_sigterm(running):
    """Last (pytest runs a module's tests in order): the dyno manager's SIGTERM."""
    os.killpg(running.web.pid, signal.SIGTERM)
    assert running.web.wait(timeout=dyno.SHUTDOWN_SECONDS) == 0
    assert "Shutting down: Master" in running.web_log.read_text()
