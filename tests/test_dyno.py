"""The Heroku source archive (stack/dyno.py): what it holds, byte for byte the same each time,
and what it refuses. The packages come from a folder inside the app (`--no-index --find-links
vendor`), so the lock needs no index: the session fetches Gunicorn's and WhiteNoise's wheels once.
The archive run for real, as Heroku runs it, is tests/test_heroku_release.py; the entry's
behaviour on a dyno, in-process, is at the end here."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from werkzeug.test import Client

from stack import dyno, release
from stack.release import ReleaseError
from tests.support.heroku import dyno_settings

ROOT = Path(__file__).resolve().parent.parent
VENDOR = "--no-index\n--find-links vendor\n"


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                          "--only-binary=:all:", "--dest", str(folder), release.GUNICORN, dyno.WHITENOISE],
                         capture_output=True, text=True, check=False)
    assert got.returncode == 0, got.stderr
    return folder


def make_app(tmp_path: Path, wheels: Path, requirements: str | None = VENDOR, **files: str) -> Path:
    """An app of one module with a static folder, the session's wheels in vendor/, and `files`
    (relative path: text) on top."""
    app = tmp_path / "app"
    (app / "static").mkdir(parents=True)
    (app / "rocket.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n")
    (app / "static" / "site.css").write_text("body { color: #222; }\n" * 80)  # 1.7 KB
    (app / "static" / "tiny.css").write_text("p { margin: 0 }\n")
    shutil.copytree(wheels, app / "vendor")
    if requirements is not None:
        (app / "requirements.txt").write_text(requirements)
    for name, text in files.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    return app


def config(tmp_path: Path, **app):
    return dyno_settings(tmp_path, {"path": "app", "entry": "rocket:app", **app})


def members(rel: release.Release) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(rel.archive) as tar:
        return {m.name: m for m in tar.getmembers()}


def text(rel: release.Release, name: str) -> str:
    with tarfile.open(rel.archive) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read().decode()


def data(rel: release.Release, name: str) -> bytes:
    with tarfile.open(rel.archive) as tar:
        return tar.extractfile(name).read()


# -- the archive ------------------------------------------------------------------------------
def test_two_builds_make_the_same_bytes_and_the_id_is_their_hash(tmp_path, wheels):
    make_app(tmp_path, wheels)
    first = dyno.build(config(tmp_path), tmp_path / "cache-a")
    second = dyno.build(config(tmp_path), tmp_path / "cache-b")  # locked again, packed again
    assert first.archive.read_bytes() == second.archive.read_bytes()
    assert first.id == second.id == first.sha256[:20]
    assert first.archive.name == f"app-heroku-{first.id}.tar.gz"
    assert hashlib.sha256(first.archive.read_bytes()).hexdigest() == first.sha256
    for member in members(first).values():
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")


def test_the_generated_files_are_at_the_root(tmp_path, wheels):
    make_app(tmp_path, wheels)
    rel = dyno.build(config(tmp_path, releaseCommand="flask --app rocket db upgrade"), tmp_path / "cache")
    names = set(members(rel))
    assert {"requirements.txt", ".python-version", "Procfile", ".flaskstack/gunicorn.conf.py",
            ".flaskstack/flaskstack_wsgi.py", "rocket.py", "static/site.css"} <= names
    assert text(rel, ".python-version") == "3.11\n"
    assert text(rel, "Procfile") == (
        "web: GUNICORN_CMD_ARGS= gunicorn --config .flaskstack/gunicorn.conf.py\n"
        "release: flask --app rocket db upgrade\n")
    pins = [ln for ln in text(rel, "requirements.txt").splitlines() if ln and not ln.startswith("#")]
    assert pins == ["--no-index", "--find-links vendor", release.GUNICORN, dyno.WHITENOISE]
    assert rel.requirements == (release.GUNICORN, dyno.WHITENOISE)
    assert rel.python == "3.11" and rel.wheels == ()


def test_without_a_release_command_there_is_no_release_line(tmp_path, wheels):
    make_app(tmp_path, wheels)
    rel = dyno.build(config(tmp_path), tmp_path / "cache")
    assert "release:" not in text(rel, "Procfile")


def test_other_package_managers_files_and_the_apps_own_procfile_are_left_out(tmp_path, wheels):
    own = {name: f"{name} of the app\n" for name in (*dyno.REPLACED, *dyno.OTHER_MANAGERS)}
    make_app(tmp_path, wheels, **own, **{"docs/Procfile": "an example in the docs\n"})
    rel = dyno.build(config(tmp_path), tmp_path / "cache")
    names = set(members(rel))
    assert not {"Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", "runtime.txt"} & names
    assert "docs/Procfile" in names  # only the root's files mean something to Heroku
    assert text(rel, "Procfile").startswith("web: GUNICORN_CMD_ARGS= gunicorn")
    assert text(rel, ".python-version") == "3.11\n"
    assert rel.replaced == (".python-version", "Pipfile", "Pipfile.lock", "Procfile", "poetry.lock",
                            "runtime.txt", "uv.lock")
    assert not {"Procfile", "uv.lock", "requirements.txt"} & set(rel.files)
    warning = dyno.replaced_warning(rel)
    assert warning.startswith("app.path: on Heroku, .python-version, Procfile, runtime.txt are replaced")
    assert "Pipfile, Pipfile.lock, poetry.lock, uv.lock are left out" in warning


def test_an_app_with_none_of_those_files_gets_no_warning(tmp_path, wheels):
    make_app(tmp_path, wheels)
    assert dyno.replaced_warning(dyno.build(config(tmp_path), tmp_path / "cache")) is None


def test_the_apps_index_options_carry_over(tmp_path, wheels):
    requirements = ("--index-url https://pypi.org/simple\n"
                    "--extra-index-url https://${PRIVATE_TOKEN}@packages.example.com/simple\n"
                    "--trusted-host packages.example.com\n"
                    "-r requirements/extra.txt\n")
    make_app(tmp_path, wheels, requirements, **{"requirements/extra.txt": "--find-links ../vendor\n"})
    inputs = release.dependency_input(config(tmp_path))
    packed = {"vendor/gunicorn-27.0.1-py3-none-any.whl"}
    assert dyno.index_lines(config(tmp_path), inputs, packed) == [
        "--index-url https://pypi.org/simple",
        "--extra-index-url https://${PRIVATE_TOKEN}@packages.example.com/simple",  # pip expands it
        "--trusted-host packages.example.com",
        "--find-links vendor"]  # relative to the app's root, where the buildpack runs pip


def test_a_find_links_folder_outside_the_app_is_refused(tmp_path, wheels):
    make_app(tmp_path, wheels, f"--no-index\n--find-links {wheels}\n")
    with pytest.raises(ReleaseError, match=r"--find-links .* is a folder of this machine, outside the app"):
        dyno.build(config(tmp_path), tmp_path / "cache")


def test_a_find_links_folder_the_archive_leaves_out_is_refused(tmp_path, wheels):
    app = make_app(tmp_path, wheels, "--no-index\n--find-links dist\n")
    shutil.move(app / "vendor", app / "dist")
    with pytest.raises(ReleaseError, match="holds no file the archive ships"):
        dyno.build(config(tmp_path), tmp_path / "cache")


def test_a_package_app_installs_itself(tmp_path, wheels, monkeypatch):
    app = make_app(tmp_path, wheels, requirements=None)
    (app / "pyproject.toml").write_text('[project]\nname = "rocket"\nversion = "1.0"\ndependencies = []\n')
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # a package's dependencies have no requirements file
    monkeypatch.setenv("PIP_FIND_LINKS", str(app / "vendor"))
    rel = dyno.build(config(tmp_path), tmp_path / "cache")
    lines = text(rel, "requirements.txt").splitlines()
    assert lines[-3:] == [release.GUNICORN, dyno.WHITENOISE, "."]  # a plain install, not -e


@pytest.mark.parametrize("command", ["flask db upgrade\nflask seed", "flask db upgrade\r",
                                     "flask db upgrade\u2028flask seed", "flask db upgrade\x85"])
def test_a_release_command_of_more_than_one_line_is_refused(tmp_path, wheels, command):
    make_app(tmp_path, wheels)
    loaded = config(tmp_path)
    loaded = replace(loaded, app=replace(loaded.app, release_command=command))
    with pytest.raises(ReleaseError, match="^app.releaseCommand: on Heroku it is the Procfile's "
                                           "release line, and a Procfile line holds one command"):
        dyno.build(loaded, tmp_path / "cache")


@pytest.mark.parametrize(("stack", "glibc"), [("heroku-24", "2_39"), ("heroku-22", "2_35")])
def test_the_pins_are_resolved_for_the_stacks_ubuntu_and_herokus_python(tmp_path, wheels, stack, glibc):
    make_app(tmp_path, wheels)
    target = dyno.target_of(dyno_settings(tmp_path, {"path": "app", "entry": "rocket:app"},
                                          python="3.13", stack=stack))
    assert (target.python, target.arch, target.glibc) == ("3.13", "x86_64", glibc)


def test_an_unchanged_app_is_packed_again_without_uv(tmp_path, wheels, monkeypatch):
    make_app(tmp_path, wheels)
    first = dyno.build(config(tmp_path), tmp_path / "cache")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a[0][:3]}"))
    assert dyno.build(config(tmp_path), tmp_path / "cache") == first


def test_an_app_pinning_whitenoise_itself_keeps_its_pin(tmp_path, wheels):
    make_app(tmp_path, wheels, VENDOR + "WhiteNoise>=6\n")
    rel = dyno.build(config(tmp_path), tmp_path / "cache")
    assert rel.requirements == (release.GUNICORN, dyno.WHITENOISE)  # what >=6 resolved to here
    assert "whitenoise>=6" not in text(rel, "requirements.txt").lower()  # the lock, not the range


def test_whitenoise_is_pinned_as_the_programs_requirements_pin_it():
    assert re.search(r"^whitenoise==6\.12\.0$", (ROOT / "requirements.txt").read_text(), re.M)
    assert dyno.WHITENOISE == "whitenoise==6.12.0"


# -- static files -----------------------------------------------------------------------------
def test_text_files_over_1_kib_of_the_static_folder_are_precompressed(tmp_path, wheels):
    app = make_app(tmp_path, wheels, **{"static/own.js": "x = 1;\n" * 300,
                                        "static/own.js.gz": "the app's own, kept\n"})
    rel = dyno.build(config(tmp_path), tmp_path / "cache")
    css = (app / "static" / "site.css").read_bytes()
    assert gzip.decompress(data(rel, "static/site.css.gz")) == css
    assert data(rel, "static/site.css.gz")[4:8] == b"\0\0\0\0"  # no time in the header (gzip -n)
    assert "static/tiny.css.gz" not in members(rel)  # 16 bytes: left as it is
    assert data(rel, "static/own.js.gz") == b"the app's own, kept\n"
    assert "rocket.py.gz" not in members(rel)


def test_a_static_files_time_follows_its_content(tmp_path, wheels):
    """WhiteNoise's ETag is the file's mtime and size: with one fixed time for all, an edit
    that kept the size would keep the ETag."""
    app = make_app(tmp_path, wheels)
    first = members(dyno.build(config(tmp_path), tmp_path / "cache"))
    (app / "static" / "site.css").write_text("body { color: #333; }\n" * 80)  # same size
    second = members(dyno.build(config(tmp_path), tmp_path / "cache"))
    assert first["static/site.css"].size == second["static/site.css"].size
    assert first["static/site.css"].mtime != second["static/site.css"].mtime
    assert first["static/site.css.gz"].mtime == first["static/site.css"].mtime
    assert first["rocket.py"].mtime == second["rocket.py"].mtime == release.FIXED_MTIME


def test_an_app_without_a_static_folder_gets_neither_whitenoise_nor_its_import(tmp_path, wheels):
    app = make_app(tmp_path, wheels)
    shutil.rmtree(app / "static")
    rel = dyno.build(config(tmp_path), tmp_path / "cache")
    assert rel.requirements == (release.GUNICORN,)
    assert "whitenoise" not in text(rel, ".flaskstack/flaskstack_wsgi.py").lower()


# -- the Gunicorn config ----------------------------------------------------------------------
def gunicorn_config(tmp_path: Path, wheels: Path, monkeypatch, env: dict[str, str], **app) -> dict:
    make_app(tmp_path, wheels)
    source = dyno.render_files(config(tmp_path, **app))[dyno.GUNICORN_CONF]
    for key in ("PORT", "WEB_CONCURRENCY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    namespace: dict = {"__file__": str(tmp_path / "app" / dyno.GUNICORN_CONF)}
    exec(compile(source, "gunicorn.conf.py", "exec"), namespace)  # noqa: S102 - our own template
    return namespace


def test_gunicorn_listens_on_all_interfaces_on_port_with_web_concurrency(tmp_path, wheels, monkeypatch):
    conf = gunicorn_config(tmp_path, wheels, monkeypatch, {"PORT": "31337", "WEB_CONCURRENCY": "4"})
    assert conf["bind"] == ["0.0.0.0:31337"]
    assert conf["workers"] == 4
    assert (conf["accesslog"], conf["errorlog"], conf["control_socket_disable"]) == (None, "-", True)
    assert (conf["forwarded_allow_ips"], conf["secure_scheme_headers"]) == ("", {})
    assert conf["keepalive"] == 95 and conf["timeout"] == 30 and conf["graceful_timeout"] == 25


def test_app_workers_wins_over_web_concurrency(tmp_path, wheels, monkeypatch):
    conf = gunicorn_config(tmp_path, wheels, monkeypatch, {"WEB_CONCURRENCY": "4"}, workers=3)
    assert conf["workers"] == 3 and conf["bind"] == ["0.0.0.0:5000"]


def test_without_web_concurrency_the_workers_come_from_the_cpus(tmp_path, wheels, monkeypatch):
    conf = gunicorn_config(tmp_path, wheels, monkeypatch, {}, workerClass="sync")
    assert conf["workers"] == len(os.sched_getaffinity(0)) * 2 + 1


@pytest.mark.parametrize(("app", "timeout", "graceful", "keepalive"), [
    ({"timeout": 120, "gracefulTimeout": 60, "keepalive": 5}, 30, 25, 95),
    ({"timeout": 10, "gracefulTimeout": 8, "keepalive": 120}, 10, 8, 120),
    ({"keepalive": 0}, 30, 25, 0),  # no keep-alive stays none
])
def test_timeouts_are_bounded_by_herokus(tmp_path, wheels, monkeypatch, app, timeout, graceful, keepalive):
    conf = gunicorn_config(tmp_path, wheels, monkeypatch, {}, **app)
    assert (conf["timeout"], conf["graceful_timeout"], conf["keepalive"]) == (timeout, graceful, keepalive)


def test_the_config_passes_gunicorns_own_check(tmp_path, wheels):
    make_app(tmp_path, wheels)
    rel = dyno.build(config(tmp_path, maxRequests=1000), tmp_path / "cache")
    unpacked = tmp_path / "unpacked"
    with tarfile.open(rel.archive) as tar:
        tar.extractall(unpacked, filter="data")
    checked = subprocess.run([sys.executable, "-m", "gunicorn", "--check-config", "--config",
                              dyno.GUNICORN_CONF], cwd=unpacked, capture_output=True, text=True,
                             timeout=60, check=False, env={**os.environ, "PORT": "8123"})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "max_requests_jitter = 100" in text(rel, dyno.GUNICORN_CONF)


# -- the WSGI entry on a dyno, in-process -----------------------------------------------------
def entry(tmp_path: Path, wheels: Path, monkeypatch, source: str | None = None, **domain):
    app = make_app(tmp_path, wheels)
    if source is not None:
        (app / "rocket.py").write_text(source)
    loaded = dyno_settings(tmp_path, {"path": "app", "entry": "rocket:app"}, domain=domain or None)
    rel = dyno.build(loaded, tmp_path / "cache")
    unpacked = tmp_path / "unpacked"
    with tarfile.open(rel.archive) as tar:
        tar.extractall(unpacked, filter="data")
    monkeypatch.syspath_prepend(str(unpacked))
    for name in ("rocket", "flaskstack_wsgi"):  # another test's app of the same module name
        monkeypatch.delitem(sys.modules, name, raising=False)
    code = (unpacked / dyno.ENTRY).read_text()
    before = set(sys.modules)
    namespace: dict = {"__name__": "flaskstack_wsgi", "__file__": str(unpacked / dyno.ENTRY)}
    try:
        exec(compile(code, "flaskstack_wsgi.py", "exec"), namespace)  # noqa: S102 - our own template
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]
    return Client(namespace["application"])


ROUTED_HTTPS = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}


def test_a_request_that_did_not_pass_a_router_is_served_as_it_is(tmp_path, wheels, monkeypatch):
    client = entry(tmp_path, wheels, monkeypatch)  # heroku local, a check from inside the dyno
    answer = client.get("/healthz")
    assert answer.status_code == 200 and "Strict-Transport-Security" not in answer.headers
    assert client.get("/static/site.css").status_code == 200


def test_the_router_saying_http_is_redirected_and_https_gets_hsts(tmp_path, wheels, monkeypatch):
    client = entry(tmp_path, wheels, monkeypatch)
    answer = client.get("/a%20b/?q=1", headers={"X-Forwarded-Proto": "http", "Host": "app.herokuapp.com"})
    assert (answer.status_code, answer.headers["Location"]) == (301, "https://app.herokuapp.com/a%20b/?q=1")
    answer = client.delete("/x", headers={"X-Forwarded-Proto": "http", "Host": "app.herokuapp.com:80"})
    assert (answer.status_code, answer.headers["Location"]) == (308, "https://app.herokuapp.com/x")
    assert client.get("/healthz", headers=ROUTED_HTTPS).headers["Strict-Transport-Security"] == \
        "max-age=63072000"


def test_www_is_sent_to_the_bare_domain_only_when_www_redirect_is_on(tmp_path, wheels, monkeypatch):
    client = entry(tmp_path, wheels, monkeypatch, name="example.org", wwwRedirect=False)
    assert client.get("/healthz", headers={**ROUTED_HTTPS, "Host": "www.example.org"}).status_code == 200


def test_a_plain_wsgi_app_is_wrapped_the_same(tmp_path, wheels, monkeypatch):
    source = ("def app(environ, start_response):\n"
              "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
              "    return [environ['REMOTE_ADDR'].encode(), b' ', environ['wsgi.url_scheme'].encode()]\n")
    client = entry(tmp_path, wheels, monkeypatch, source)
    answer = client.get("/", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.7",
                                      "X-Forwarded-Proto": "https"})
    assert answer.data == b"198.51.100.7 https"
    assert answer.headers["Strict-Transport-Security"] == "max-age=63072000"
    assert client.get("/static/site.css", headers={**ROUTED_HTTPS, "Accept-Encoding": "gzip"}).headers[
        "Content-Encoding"] == "gzip"
