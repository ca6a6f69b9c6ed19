"""The release step's preflight (stack/preflight.py), run here as the host runs it: a separate
Python with Gunicorn, the host's rendered Gunicorn config and WSGI entry in one directory, the
new release in another, and the config's `chdir` still naming a `current` that is elsewhere."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from stack import inventory, render, settings
from stack.paths import Paths
from stack.scripts.steps import PREFLIGHT

APPS = Path(__file__).resolve().parent / "apps"
RAW = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]}, "ssh": {"user": "deploy"}}


def preflight(tmp_path: Path, source: Path | dict[str, str], entry: str, *, worker_class: str = "gthread",
              health_path: str = "/healthz") -> subprocess.CompletedProcess:
    """Run the preflight for an app (a shape's folder, or {file name: text}) given as `entry`."""
    release = tmp_path / "release"
    if isinstance(source, Path):
        shutil.copytree(source, release)
    else:
        release.mkdir()
        for name, text in {"requirements.txt": "flask\n", **source}.items():
            (release / name).write_text(text)
    raw = {**RAW, "app": {"path": "release", "entry": entry, "workerClass": worker_class},
           "deploy": {"healthPath": health_path}}
    config = settings.load(raw, stack="dev", project_dir=tmp_path, offline=True)
    files = render.render_host(config, inventory.Host("web-0"))
    paths = Paths(config.app.name)
    etc = tmp_path / "etc"
    etc.mkdir()
    conf = etc / "gunicorn.conf.py"
    conf.write_text(files[paths.gunicorn_conf])
    (etc / Path(paths.wsgi).name).write_text(files[paths.wsgi])
    assert 'chdir = "/srv/app/current"' in conf.read_text()  # not this release: the override must win
    return subprocess.run([sys.executable, str(PREFLIGHT), str(conf), str(release), health_path],
                          cwd=release, capture_output=True, text=True, timeout=60, check=False)


ROCKET = Path(__file__).resolve().parent.parent / "app"


def test_a_release_that_loads_and_answers_passes(tmp_path):
    done = preflight(tmp_path, ROCKET, "rocket:app")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_a_release_that_cannot_import_fails_with_its_traceback(tmp_path):
    broken = (ROCKET / "rocket.py").read_text() + "\nimport a_module_that_does_not_exist\n"
    done = preflight(tmp_path, {"rocket.py": broken}, "rocket:app")
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'" in done.stderr
    assert "the new release's app did not load" in done.stderr


def test_an_entry_naming_a_missing_attribute_fails(tmp_path):
    done = preflight(tmp_path, ROCKET, "rocket:application")
    assert done.returncode == 1
    assert "application" in done.stderr and "did not load" in done.stderr


SERVICE = """\
import flask

app = flask.Flask(__name__)


@app.get("/healthz")
def health():
    {body}


@app.get("/")
def index():
    return "ok"
"""


def test_an_own_health_route_that_fails_is_reported_with_its_status_and_body(tmp_path):
    source = SERVICE.format(body='return "database down", 503')
    done = preflight(tmp_path, {"service.py": source}, "service:app")
    assert done.returncode == 1
    assert "GET /healthz answered 503 SERVICE UNAVAILABLE in the new release: 'database down'" in done.stderr


def test_an_own_health_route_that_raises_is_reported_with_its_traceback(tmp_path):
    source = SERVICE.format(body='raise LookupError("no such table: posts")')
    # Flask turns the exception into a 500 (and logs the traceback) unless it propagates.
    done = preflight(tmp_path, {"service.py": source.replace("app = flask.Flask(__name__)",
                                                             "app = flask.Flask(__name__)\n"
                                                             "app.config['PROPAGATE_EXCEPTIONS'] = True")},
                     "service:app")
    assert done.returncode == 1
    assert "LookupError: no such table: posts" in done.stderr
    assert "GET /healthz raised in the new release" in done.stderr


def test_the_health_request_is_the_gates_as_the_front_passes_it_on(tmp_path):
    """Host localhost, from 127.0.0.1 through one trusted proxy hop, over plain HTTP: an app
    that checks any of these sees what it will see from the gate."""
    body = ('r = flask.request\n'
            '    ok = (r.host, r.remote_addr, r.scheme) == ("localhost", "127.0.0.1", "http")\n'
            '    return ("seen", 200) if ok else (f"{r.host} {r.remote_addr} {r.scheme}", 500)')
    done = preflight(tmp_path, {"service.py": SERVICE.format(body=body)}, "service:app")
    assert done.returncode == 0, done.stderr


def test_a_custom_health_path_without_a_route_is_answered_by_the_entry(tmp_path):
    done = preflight(tmp_path, {"service.py": SERVICE.format(body='return "x", 500')}, "service:app",
                     health_path="/up")
    assert done.returncode == 0, done.stderr


def test_a_thread_the_app_starts_at_import_does_not_keep_the_check_waiting(tmp_path):
    source = "import threading, time\nthreading.Thread(target=time.sleep, args=(600,)).start()\n" \
             + SERVICE.format(body='return "ok"')
    started = time.monotonic()
    done = preflight(tmp_path, {"service.py": source}, "service:app")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
