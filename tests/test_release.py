"""What a release's venv installs (stack/release.py): the app's requirements plus Gunicorn, and
for gevent workers what Gunicorn's gevent worker imports."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from stack import release, scripts, settings
from stack.paths import Paths

RAW = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]}, "ssh": {"user": "deploy"}}


def requirements(tmp_path: Path, app_requirements: str, **app) -> list[str]:
    (tmp_path / "rocket.py").write_text("app = None\n")
    (tmp_path / "requirements.txt").write_text(app_requirements)
    raw = {**RAW, "app": {"path": ".", **app}}
    loaded = settings.load(raw, stack="dev", project_dir=tmp_path, offline=True)
    return release.requirements_text(loaded).splitlines()


def test_gthread_and_sync_get_plain_gunicorn(tmp_path):
    assert requirements(tmp_path, "flask\n") == ["-r ../requirements.txt", release.GUNICORN]
    assert requirements(tmp_path, "flask\n", workerClass="sync")[1:] == [release.GUNICORN]


def test_gevent_gets_gunicorns_gevent_extra_and_a_pinned_gevent(tmp_path):
    # Gunicorn's gevent worker imports `packaging`, which only the extra brings: without it the
    # service does not start ("class uri 'gevent' invalid or not found").
    assert requirements(tmp_path, "flask\n", workerClass="gevent")[1:] == [
        "gunicorn[gevent]==27.0.1", release.GEVENT]


@pytest.mark.parametrize(("own", "added"), [
    ("flask\ngunicorn==23.0.0\n", ["packaging", release.GEVENT]),
    ("flask\ngunicorn[gevent]==23.0.0\npackaging\ngevent==24.11.1\n", []),
])
def test_an_app_pinning_gunicorn_itself_gets_only_what_gevent_needs(tmp_path, own, added):
    assert requirements(tmp_path, own, workerClass="gevent")[1:] == added


# -- locking and fetching for the hosts (stack/wheels.py), with real uv and pip -------------------
# The packages are made here and offered through --find-links with --no-index, so nothing but the
# session's tools (setuptools to build sdists, Gunicorn, fetched once) comes from an index.
TOOLS = ("setuptools==84.2.1", release.GUNICORN)


@pytest.fixture(scope="session")
def tools(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tools")
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                          "--only-binary=:all:", "--dest", str(folder), *TOOLS],
                         capture_output=True, text=True, check=False)
    assert got.returncode == 0, got.stderr
    return folder


# A build backend of a few lines, in the sdist itself: building needs nothing from an index, so
# the pure packages build in a fraction of a second (setuptools is for the compiled one).
BACKEND = """\
import base64, hashlib, pathlib, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    meta = pathlib.Path("PKG-INFO").read_text()
    name, version = (line.split(": ", 1)[1] for line in meta.splitlines()[1:3])
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": pathlib.Path(name, "__init__.py").read_text(),
             f"{info}/METADATA": meta,
             f"{info}/WHEEL": "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\n"
                              "Tag: py3-none-any\\n"}
    record = []
    out = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory, out), "w") as whl:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
            whl.writestr(path, data)
        whl.writestr(f"{info}/RECORD", "\\n".join([*record, f"{info}/RECORD,,"]) + "\\n")
    return out
"""


def sdist(links: Path, name: str, version: str, *, compiled: bool = False) -> Path:
    """A tiny project of our own, packed as an sdist only: a pure one with the backend above and
    static metadata; a compiled one with setuptools, whose Distribution says it has extension
    modules (so its wheel is platform-specific, and no compiler is needed)."""
    src = links.parent / f"src-{name}-{version}"
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text(f"VERSION = {version!r}\n")
    if not compiled:
        out = links / f"{name}-{version}.tar.gz"
        (src / "PKG-INFO").write_text(f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n")
        (src / "backend.py").write_text(BACKEND)
        (src / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                                            'backend-path = ["."]\n')
        with tarfile.open(out, "w:gz") as tar:
            tar.add(src, arcname=f"{name}-{version}")
        return out
    (src / "setup.py").write_text(
        "from setuptools import setup\nfrom setuptools.dist import Distribution\n\n\n"
        "class Binary(Distribution):\n    def has_ext_modules(self):\n        return True\n\n\n"
        f"setup(name={name!r}, version={version!r}, packages=[{name!r}], distclass=Binary)\n")
    (src / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n'
                                        'build-backend = "setuptools.build_meta"\n')
    made = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(links)], cwd=src,
                          capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    [built] = links.glob(f"{name}-{version}.tar.gz")
    return built


@pytest.fixture
def links(tmp_path) -> Path:
    folder = tmp_path / "links"
    folder.mkdir()
    return folder


def app_with(tmp_path: Path, lines: str, tools: Path, links: Path, **hosts) -> settings.Settings:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "rocket.py").write_text("app = None\n")
    (app / "requirements.txt").write_text(f"--no-index\n--find-links {links}\n--find-links {tools}\n{lines}")
    raw = {**RAW, "app": {"path": "app"}, "hosts": {**RAW["hosts"], **hosts}}
    return settings.load(raw, stack="dev", project_dir=tmp_path, offline=True)


def archived(rel: release.Release, name: str) -> str:
    with tarfile.open(rel.archive) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read().decode()


def test_a_pure_package_with_only_an_sdist_is_built_into_a_wheel(tmp_path, tools, links):
    sdist(links, "mailish", "0.9.1")
    rel = release.build(app_with(tmp_path, "mailish==0.9.1\n", tools, links), tmp_path / "cache")
    assert "mailish-0.9.1-py3-none-any.whl" in rel.wheels
    assert rel.python == "3.11.2"
    assert rel.requirements == ("gunicorn==27.0.1", "mailish==0.9.1")
    # What the host installs is the lock, exact pins only, each with the sha256 of the wheel the
    # release ships for it; and the Python it was made for.
    pins = [ln for ln in archived(rel, ".flaskstack/requirements.txt").splitlines() if not ln.startswith("#")]
    with tarfile.open(rel.archive) as tar:
        digest = {name: hashlib.sha256(tar.extractfile(f".flaskstack/wheelhouse/{name}").read()).hexdigest()
                  for name in rel.wheels}
    assert pins == [f"gunicorn==27.0.1 --hash=sha256:{digest['gunicorn-27.0.1-py3-none-any.whl']}",
                    f"mailish==0.9.1 --hash=sha256:{digest['mailish-0.9.1-py3-none-any.whl']}"]
    assert archived(rel, ".flaskstack/python") == "3.11.2\n"


def test_a_compiled_package_with_only_an_sdist_is_refused_with_what_to_do(tmp_path, tools, links):
    sdist(links, "speedy", "1.2.0", compiled=True)
    with pytest.raises(release.ReleaseError) as caught:
        release.build(app_with(tmp_path, "speedy==1.2.0\n", tools, links), tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith("app.path: speedy==1.2.0 has no wheel for the hosts "
                              "(Python 3.11.2, manylinux_2_36_x86_64)")
    for fix in ("Pin a version of speedy that has a wheel", "--find-links", "pick another package"):
        assert fix in message


@pytest.mark.parametrize(("python", "included"), [(None, True), ("3.11.7", False)])
def test_markers_are_judged_for_the_hosts_exact_python(tmp_path, tools, links, python, included):
    sdist(links, "oldtimer", "4.0.3")
    line = 'oldtimer>=4.0.2; python_full_version <= "3.11.2"\n'
    hosts = {"python": python} if python else {}
    rel = release.build(app_with(tmp_path, line, tools, links, **hosts), tmp_path / "cache")
    assert ("oldtimer==4.0.3" in rel.requirements) is included
    assert rel.python == (python or "3.11.2")


def test_an_app_code_change_reuses_the_dependencies_and_a_requirements_change_does_not(
        tmp_path, tools, links):
    sdist(links, "mailish", "0.9.1")
    config = app_with(tmp_path, "mailish==0.9.1\n", tools, links)
    first = release.build(config, tmp_path / "cache")
    shutil.rmtree(links)  # a new fetch or lock of mailish would now fail
    (config.app.path / "rocket.py").write_text("app = 'changed'\n")
    second = release.build(config, tmp_path / "cache")
    assert second.id != first.id and second.wheels == first.wheels
    requirements = config.app.path / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# a comment is a change too\n")
    with pytest.raises(release.ReleaseError, match="app.path: the app's requirements cannot be resolved"):
        release.build(config, tmp_path / "cache")


@pytest.mark.parametrize("dependencies", ['dependencies = ["mailish>=0.9"]',
                                          'dynamic = ["dependencies"]'])  # uv asks the backend
def test_a_package_app_gets_its_own_wheel_and_its_dependencies_from_pip_environment(
        tmp_path, tools, links, monkeypatch, dependencies):
    sdist(links, "mailish", "0.9.1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # uv reads no PIP_*: they reach it as options
    monkeypatch.setenv("PIP_FIND_LINKS", f"{links} {tools}")
    app = tmp_path / "app"
    (app / "rocket").mkdir(parents=True)
    (app / "rocket" / "__init__.py").write_text("app = None\n")
    (app / "pyproject.toml").write_text(
        f'[project]\nname = "rocket"\nversion = "1.0"\n{dependencies}\n'
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n')
    (app / "backend.py").write_text(BACKEND)  # the sdists' backend, reading this PKG-INFO
    (app / "PKG-INFO").write_text("Metadata-Version: 2.2\nName: rocket\nVersion: 1.0\n"
                                  "Requires-Dist: mailish>=0.9\n")
    raw = {**RAW, "app": {"path": "app", "entry": "rocket:app"}}
    config = settings.load(raw, stack="dev", project_dir=tmp_path, offline=True)
    first = release.build(config, tmp_path / "cache")
    assert first.requirements == ("gunicorn==27.0.1", "mailish==0.9.1")
    shutil.rmtree(links)
    (app / "rocket" / "__init__.py").write_text("app = 'changed'\n")
    second = release.build(config, tmp_path / "cache")
    assert second.id != first.id and second.wheels == first.wheels
    with tarfile.open(second.archive) as tar:
        assert [n for n in tar.getnames() if n.startswith(".flaskstack/project/")] == [
            ".flaskstack/project/rocket-1.0-py3-none-any.whl"]


def package_app(tmp_path: Path, tools: Path, links: Path, monkeypatch) -> settings.Settings:
    """A pyproject app `rocket` (its own wheel) that needs mailish (an sdist built into a wheel)."""
    sdist(links, "mailish", "0.9.1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # a package's dependencies have no requirements file
    monkeypatch.setenv("PIP_FIND_LINKS", f"{links} {tools}")
    app = tmp_path / "app"
    (app / "rocket").mkdir(parents=True)
    (app / "rocket" / "__init__.py").write_text("app = None\n")
    (app / "pyproject.toml").write_text(
        '[project]\nname = "rocket"\nversion = "1.0"\ndependencies = ["mailish>=0.9"]\n'
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n')
    (app / "backend.py").write_text(BACKEND)
    (app / "PKG-INFO").write_text("Metadata-Version: 2.2\nName: rocket\nVersion: 1.0\n"
                                  "Requires-Dist: mailish>=0.9\n")
    raw = {**RAW, "app": {"path": "app", "entry": "rocket:app"}}
    return settings.load(raw, stack="dev", project_dir=tmp_path, offline=True)


ROOT = Path(__file__).resolve().parent.parent
# The release step's installs, as the template has them: the wheelhouse, then the app's own wheel.
HOST_INSTALLS = re.findall(r'^ *"\$rel/venv/bin/python" -m pip install (?:.|\\\n)*?\|\| fail "[^"\n]*"',
                           (ROOT / "templates" / "scripts" / "release.sh.j2").read_text(), re.M)


def host_install(rel: release.Release, into: Path, tamper: str = "") -> subprocess.CompletedProcess:
    """The release unpacked into `into` and installed into `into`/venv by the release step's own
    pip commands (with this machine's Python, offline); `tamper` names a wheel in the archive
    whose bytes are changed after packing."""
    into.mkdir()
    with tarfile.open(rel.archive) as tar:
        tar.extractall(into, filter="data")
    if tamper:
        wheel = next(into.glob(f".flaskstack/*/{tamper}"))
        wheel.write_bytes(wheel.read_bytes() + b"\0")
    subprocess.run([sys.executable, "-m", "venv", str(into / "venv")], check=True, timeout=120)
    script = 'fail() { echo "failed: $*" >&2; exit 1; }\n' + "\n".join(HOST_INSTALLS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(rel=str(into), PIP_CONFIG_FILE=os.devnull)
    return subprocess.run(["bash", "-c", script], env=env,
                          capture_output=True, text=True, check=False, timeout=300)


def test_the_hosts_install_every_wheel_checked_against_the_sha256_the_release_records(
        tmp_path, tools, links, monkeypatch):
    assert len(HOST_INSTALLS) == 2 and all("--require-hashes" in cmd for cmd in HOST_INSTALLS)
    rel = release.build(package_app(tmp_path, tools, links, monkeypatch), tmp_path / "cache")
    own = archived(rel, ".flaskstack/project.txt").splitlines()[1]
    with tarfile.open(rel.archive) as tar:
        wheel = tar.extractfile(".flaskstack/project/rocket-1.0-py3-none-any.whl").read()
    assert own == f"rocket==1.0 --hash=sha256:{hashlib.sha256(wheel).hexdigest()}"
    done = host_install(rel, tmp_path / "host")
    assert done.returncode == 0, done.stderr
    got = subprocess.run([tmp_path / "host" / "venv" / "bin" / "python", "-c",
                          "import rocket, mailish, gunicorn; print(mailish.VERSION)"],
                         capture_output=True, text=True, check=False)
    assert got.stdout == "0.9.1\n", got.stderr


@pytest.mark.parametrize(("wheel", "said"), [
    ("mailish-0.9.1-py3-none-any.whl", "installing the app's requirements from its wheelhouse failed"),
    ("rocket-1.0-py3-none-any.whl", "installing the app's own package failed"),
])
def test_a_wheel_changed_after_the_release_was_made_is_not_installed(
        tmp_path, tools, links, monkeypatch, wheel, said):
    rel = release.build(package_app(tmp_path, tools, links, monkeypatch), tmp_path / "cache")
    done = host_install(rel, tmp_path / "host", tamper=wheel)
    assert done.returncode == 1
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in done.stderr, done.stderr
    assert f"failed: {said}" in done.stderr


def test_an_unchanged_deploy_runs_neither_uv_nor_pip(tmp_path, tools, links, monkeypatch):
    sdist(links, "mailish", "0.9.1")
    config = app_with(tmp_path, "mailish==0.9.1\n", tools, links)
    first = release.build(config, tmp_path / "cache")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a[0][:3]}"))
    assert release.build(config, tmp_path / "cache") == first


def test_the_release_step_checks_the_hosts_python_before_it_changes_anything(tmp_path, tools, links):
    config = app_with(tmp_path, "", tools, links, python="3.11.4")
    rel = release.build(config, tmp_path / "cache")
    text = scripts.release(config, "web-1", rel, release_command=False).text()
    check = text.index('[ "$python" = "3.11.4" ] || fail "python3 here is $python, but the '
                       "release's requirements were resolved for Python 3.11.4: set "
                       'flask-stack:hosts.python to \\"$python\\"')
    assert check < text.index('rm -rf "$rel"')


class _Index(http.server.SimpleHTTPRequestHandler):
    """A private index: directory pages of files (PEP 503 in its simplest form), behind a login."""

    def do_GET(self):
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"deploy:s3cret").decode():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="index"')
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


def test_a_private_index_in_pip_environment_serves_both_lock_and_fetch(tmp_path, tools, links, monkeypatch):
    sdist(links, "mailish", "0.9.1")
    root = tmp_path / "index"
    for path in [*links.iterdir(), *tools.iterdir()]:
        project = path.name.split("-")[0].lower().replace("_", "-")
        (root / "simple" / project).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / "simple" / project / path.name)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Index, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("PIP_INDEX_URL", f"http://deploy:s3cret@127.0.0.1:{server.server_port}/simple/")
        monkeypatch.setenv("PIP_FIND_LINKS", "")
        app = tmp_path / "app"
        app.mkdir()
        (app / "rocket.py").write_text("app = None\n")
        (app / "requirements.txt").write_text("mailish==0.9.1\n")
        config = settings.load({**RAW, "app": {"path": "app"}}, stack="dev", project_dir=tmp_path,
                               offline=True)
        rel = release.build(config, tmp_path / "cache")
    finally:
        server.shutdown()
        server.server_close()
    assert rel.wheels == ("gunicorn-27.0.1-py3-none-any.whl", "mailish-0.9.1-py3-none-any.whl")
    assert "s3cret" not in "".join(p.read_text(errors="replace") for p in (tmp_path / "cache").rglob("*.t*")
                                   if p.is_file() and p.suffix in (".txt", ".toml", ".in"))


def test_wheels_the_lock_names_come_from_their_urls_and_pip_only_builds(tmp_path, tools, links, monkeypatch):
    sdist(links, "mailish", "0.9.1")
    ran: list[list[str]] = []
    real = subprocess.run

    def recording(argv, *args, **kwargs):
        ran.append([str(a) for a in argv])
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording)
    rel = release.build(app_with(tmp_path, "mailish==0.9.1\n", tools, links), tmp_path / "cache")
    assert "gunicorn-27.0.1-py3-none-any.whl" in rel.wheels  # from tools/, by its file:// URL
    pip = [argv[argv.index("pip") + 1:][:2] for argv in ran if "pip" in argv and "-m" in argv]
    assert pip == [["--disable-pip-version-check", "wheel"]]


def test_a_host_whose_python3_differs_fails_the_release_step_before_any_change(tmp_path, tools, links):
    # The script's own PATH (the system's) decides which python3 answers: this machine's, here.
    system = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    found = subprocess.run(["python3", "-c", "import platform; print(platform.python_version())"],
                           env={"PATH": system}, capture_output=True, text=True, check=False)
    if found.returncode != 0:
        pytest.skip("no python3 on the system PATH")
    have = found.stdout.strip()
    wanted = "3.99.0" if have != "3.99.0" else "3.98.0"
    config = app_with(tmp_path, "", tools, links, python=wanted)
    rel = release.Release(id="0" * 20, sha256="0" * 64, archive=tmp_path / "none.tar.gz", files=(),
                          wheels=(), python=wanted, requirements=())
    # Were the check to pass, the next line would fail on this missing archive, before any change.
    assert not Path(Paths(config.app.name).archive(rel)).exists()
    script = scripts.release(config, "web-1", rel, release_command=False).text()
    ran = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False, timeout=60)
    assert ran.returncode == 1
    assert (f"flask-stack: release on host web-1: python3 here is {have}, but the release's requirements "
            f"were resolved for Python {wanted}: set flask-stack:hosts.python to \"{have}\"") in ran.stderr
