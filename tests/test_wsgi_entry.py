"""The generated WSGI entry (templates/gunicorn/wsgi.py.j2), imported and called in-process for
app shapes of our own (tests/apps): the health path works for every app by default, and an app
that routes it itself answers it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from werkzeug.test import Client

from stack import inventory, render, settings
from stack.paths import Paths

APPS = Path(__file__).resolve().parent / "apps"
RAW = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]}, "ssh": {"user": "deploy"}}


def entry(tmp_path: Path, monkeypatch, shape: Path, app: dict, deploy: dict | None = None):
    """The rendered entry module of the app in `shape` (copied to tmp_path), imported as
    Gunicorn would."""
    app_dir = tmp_path / "app"
    shutil.copytree(shape, app_dir)
    raw = {**RAW, "app": {"path": "app", **app}, "deploy": deploy or {}}
    config = settings.load(raw, stack="dev", project_dir=tmp_path, offline=True)
    source = render.render_host(config, inventory.Host("web-0"))[Paths(config.app.name).wsgi]
    monkeypatch.syspath_prepend(str(app_dir))
    monkeypatch.chdir(app_dir)
    module_names = set(sys.modules)
    namespace: dict = {"__name__": "flaskstack_wsgi"}
    try:
        exec(compile(source, "flaskstack_wsgi.py", "exec"), namespace)  # noqa: S102 - our own template
    finally:
        for name in set(sys.modules) - module_names:  # the next shape may reuse a module name
            del sys.modules[name]
    return namespace


def test_an_app_without_a_health_route_is_answered_by_the_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    ns = entry(tmp_path, monkeypatch, APPS / "blogpkg", {"entry": "blog:create_app()"})
    client = Client(ns["application"])
    health = client.get("/healthz")
    assert health.status_code == 200 and health.data == b"ok\n"
    assert health.headers["Cache-Control"] == "no-store"
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 404  # only GET and HEAD are the check's
    assert ns["app_answers_health"] is False
    assert client.get("/missing").status_code == 404  # everything else is the app's


def test_the_entry_answers_a_custom_health_path_and_leaves_the_default_to_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    ns = entry(tmp_path, monkeypatch, APPS / "blogpkg", {"entry": "blog:create_app()"},
               deploy={"healthPath": "/up"})
    client = Client(ns["application"])
    assert client.get("/up").status_code == 200
    assert client.get("/healthz").status_code == 404


@pytest.mark.parametrize(("greeting", "status", "body"), [
    ("hello", 200, b"checked by the app"), (None, 503, b"GREETING is not set")])
def test_an_app_with_its_own_health_route_answers_it(tmp_path, monkeypatch, greeting, status, body):
    if greeting:
        monkeypatch.setenv("GREETING", greeting)
    else:
        monkeypatch.delenv("GREETING", raising=False)
    ns = entry(tmp_path, monkeypatch, APPS / "ownhealth", {"entry": "service:app"})
    assert ns["app_answers_health"] is True
    response = Client(ns["application"]).get("/healthz")
    assert (response.status_code, response.data) == (status, body)


def one_module(tmp_path: Path, name: str, source: str) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "requirements.txt").write_text("flask\n")
    (folder / f"{name}.py").write_text(source)
    return folder


def test_a_route_that_only_redirects_to_the_health_path_does_not_count(tmp_path, monkeypatch):
    shape = one_module(tmp_path, "slashy", "from flask import Flask\napp = Flask(__name__)\n\n"
                                           "@app.route('/healthz/')\ndef health():\n    return 'slash'\n")
    ns = entry(tmp_path, monkeypatch, shape, {"entry": "slashy:app"})
    assert ns["app_answers_health"] is False  # Flask would answer /healthz with a 308
    assert Client(ns["application"]).get("/healthz").status_code == 200


def test_a_plain_wsgi_callable_is_answered_by_the_entry(tmp_path, monkeypatch):
    shape = one_module(tmp_path, "bare", "def app(environ, start_response):\n"
                                         "    start_response('418 Teapot', [])\n"
                                         "    return [b'bare']\n")
    ns = entry(tmp_path, monkeypatch, shape, {"entry": "bare:app"})
    client = Client(ns["application"])
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 418
