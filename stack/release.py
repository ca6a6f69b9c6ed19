"""The app, packed for the hosts: one content-addressed archive per release.

The archive holds the app's files (minus VCS data, caches, virtualenvs, local state and .env
files) and a wheelhouse of its dependencies built for the hosts' platform (CPU architecture,
Python version), so hosts install with `pip --no-index` and need no internet at deploy time.
It is deterministic: sorted entries, fixed times and owners, gzip without a timestamp. Its name
is the SHA-256 of its bytes, so an unchanged app is the same release and nothing re-runs.

The dependencies are locked for the hosts' exact Python and platform and fetched (or built from
sdists) by stack/wheels.py, cached by what decides them, not by the app's own files.

Layout inside the archive (and under /srv/<app>/releases/<id>/ on a host):
  <the app's files>             the app's own tree, so `current/static` is its static folder
  .flaskstack/requirements.txt  what the venv installs: the locked pins (`name==version`, for the
                                hosts' Python), the app's requirements + Gunicorn, each with the
                                sha256 of its wheel in the wheelhouse (`--hash=sha256:...`): the
                                hosts install with `pip --require-hashes`
  .flaskstack/python            the hosts' Python version the pins were resolved for ("3.11.2")
  .flaskstack/wheelhouse/       a wheel of every pin
  .flaskstack/project/*.whl     the app itself, when it is a pyproject package
  .flaskstack/project.txt       then: its `name==version --hash=sha256:...`, installed the same way
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from stack.settings import Settings
from stack.wheels import DependencyError, Input, Locked, Target, lock_and_fetch, pin_line

# What the hosts' Python runs Gunicorn with: pinned here, unless the app pins its own.
GUNICORN = "gunicorn==27.0.1"
GEVENT = "gevent==25.9.1"
# Debian/Ubuntu images: the glibc of their manylinux tag (their Python: settings.IMAGE_PYTHON).
IMAGE_GLIBC = {"debian-12": "2_36", "ubuntu-24.04": "2_39", "ubuntu-22.04": "2_35"}
EXCLUDED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "env", ".tox",
                           ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules", "instance",
                           ".idea", ".vscode", "build", "dist", ".eggs"})
EXCLUDED_FILES = re.compile(r"(.*\.py[co]|\.env(\..*)?|\.DS_Store|.*\.egg-info|\.coverage)$")
FIXED_MTIME = 946684800  # 2000-01-01: every entry gets it, so the bytes depend on content only


class ReleaseError(Exception):
    """The release cannot be built; the message says what to fix."""


@dataclass(frozen=True)
class Release:
    id: str  # first 20 hex digits of the archive's SHA-256: the release directory's name
    sha256: str
    archive: Path
    files: tuple[str, ...]  # the app's files, as packed
    wheels: tuple[str, ...]
    python: str  # the hosts' exact Python the requirements were resolved for: "3.11.2"
    requirements: tuple[str, ...]  # the locked pins the venv installs: "flask==3.1.3"
    # The app's own files the archive leaves out because a generated file takes their place or
    # the platform would misread them (a dyno's Procfile, uv.lock): for the caller to warn about.
    replaced: tuple[str, ...] = ()


def target_of(settings: Settings) -> Target:
    return Target(python=settings.hosts.python, arch=settings.hosts.arch,
                  glibc=IMAGE_GLIBC[settings.hosts.image])


def app_files(root: Path) -> list[Path]:
    """The app's files to ship, sorted; skips what belongs to one machine, not to the app."""
    out: list[Path] = []
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS and not d.endswith(".egg-info")
                         and not (here / d / "pyvenv.cfg").exists())
        for name in sorted(files):
            path = here / name
            if EXCLUDED_FILES.fullmatch(name) or path.is_symlink() and not path.exists():
                continue
            out.append(path)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def requirement_name(line: str) -> str:
    """The project a requirement line names, as pip compares names: "Flask[async]>=3" -> "flask"."""
    return canonicalize_name(re.split(r"[\s\[<>=!~;@]", line.strip(), maxsplit=1)[0])


def requirement_names(settings: Settings) -> set[str]:
    """The projects the app's requirements.txt names itself (its version wins over ours)."""
    path = settings.app.path / "requirements.txt"
    own = path.read_text() if path.is_file() else ""
    return {requirement_name(line) for line in own.splitlines()
            if line.strip() and not line.startswith(("#", "-"))}


def requirements_text(settings: Settings) -> str:
    """The venv's requirements: the app's own plus Gunicorn (and gevent), unless the app pins them."""
    app = settings.app
    lines: list[str] = []
    if (app.path / "requirements.txt").is_file():
        lines.append("-r ../requirements.txt")
    names = requirement_names(settings)
    gevent = app.worker_class == "gevent"
    if "gunicorn" not in names:
        # Gunicorn's gevent worker imports `packaging`, which only its `gevent` extra brings.
        lines.append(GUNICORN.replace("==", "[gevent]==") if gevent else GUNICORN)
    elif gevent and "packaging" not in names:
        lines.append("packaging")
    if gevent and "gevent" not in names:
        lines.append(GEVENT)
    return "\n".join(lines) + "\n"


def _pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          cwd=cwd, capture_output=True, text=True, check=False)


def is_package(settings: Settings) -> bool:
    """A pyproject package without a requirements.txt: its own wheel is built and installed."""
    app = settings.app
    return (app.path / "pyproject.toml").is_file() and not (app.path / "requirements.txt").is_file()


def dependency_input(settings: Settings, extra: tuple[str, ...] = ()) -> Input:
    """What the lock is made from: the app's requirements.txt (or a package's dependencies), the
    Gunicorn lines requirements_text adds, and `extra` requirements of a platform (WhiteNoise on
    a dyno), each unless the app's requirements.txt names that project itself."""
    app = settings.app
    added = tuple(line for line in requirements_text(settings).splitlines()
                  if line and line != "-r ../requirements.txt")
    own = requirement_names(settings)
    added += tuple(line for line in extra if requirement_name(line) not in own)
    if (app.path / "requirements.txt").is_file():
        return Input(files=(app.path / "requirements.txt",), lines=added, cwd=app.path)
    if is_package(settings):
        pyproject = app.path / "pyproject.toml"
        try:
            project = tomllib.loads(pyproject.read_text()).get("project", {})
        except tomllib.TOMLDecodeError as exc:
            raise ReleaseError(f"app.path: {pyproject} is not valid TOML: {exc}") from None
        if "dependencies" in project.get("dynamic", []):  # uv asks the build backend
            return Input(files=(pyproject,), lines=added, cwd=app.path)
        return Input(files=(), lines=(*project.get("dependencies", []), *added), cwd=app.path)
    return Input(files=(), lines=added, cwd=app.path)


def project_wheel(settings: Settings, target: Target, cache: Path) -> list[Path]:
    """A pyproject app's own wheel, built once per content of the app's files."""
    app = settings.app
    digest = hashlib.sha256()
    for path in app_files(app.path):
        digest.update(path.relative_to(app.path).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    out = cache / "project" / digest.hexdigest()[:24]
    if (out / ".complete").is_file():
        return sorted(out.glob("*.whl"))
    built = _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(app.path))
    if built.returncode != 0:
        raise ReleaseError(f"app.path: building the app's wheel from {app.path / 'pyproject.toml'} "
                           f"failed:\n{built.stderr.strip()[-2000:]}")
    wheels = sorted(out.glob("*.whl"))
    supported = target.supported()
    for wheel in wheels:
        if not parse_wheel_filename(wheel.name)[3] & supported:
            raise ReleaseError(f"app.path: the app's own wheel {wheel.name} is compiled for this "
                               f"machine, not for the hosts ({target.describe()}): keep the app "
                               f"pure Python and put compiled code in a package with wheels")
    (out / ".complete").write_text("ok\n")
    return wheels


def build_wheelhouse(settings: Settings, target: Target, cache: Path) -> tuple[Locked, list[Path]]:
    """The locked dependencies with a wheel of each for the target (cached by what decides
    them), and the app's own wheel when it is a package. Returns (locked, [project wheel] or [])."""
    cache = cache.resolve()
    try:
        locked = lock_and_fetch(dependency_input(settings), target, cache)
    except DependencyError as exc:
        raise ReleaseError(str(exc)) from None
    return locked, project_wheel(settings, target, cache) if is_package(settings) else []


def project_requirements(wheels: list[Path]) -> str:
    """The app's own wheel as the hosts install it (`pip --require-hashes --no-deps
    --find-links .flaskstack/project -r .flaskstack/project.txt`): its name, version and sha256."""
    lines = []
    for wheel in wheels:
        name, version, _, _ = parse_wheel_filename(wheel.name)
        lines.append(pin_line(f"{name}=={version}", [hashlib.sha256(wheel.read_bytes()).hexdigest()]))
    return "# The app's own package, checked against its sha256 (pip --require-hashes).\n" + \
        "".join(f"{line}\n" for line in lines)


def add_data(tar: tarfile.TarFile, name: str, data: bytes, executable: bool = False,
         mtime: int = FIXED_MTIME) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def pack(cache: Path, stem: str, write: Callable[[tarfile.TarFile], None]) -> tuple[str, str, Path]:
    """A deterministic .tar.gz of what `write` adds (through `add_data`, in a fixed order), kept as
    cache/releases/<stem>-<id>.tar.gz. Returns (id, sha256, path): the id is the first 20 hex
    digits of the SHA-256 of the archive's bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        write(tar)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    release_id = digest[:20]
    out = cache / "releases" / f"{stem}-{release_id}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
    return release_id, digest, out


def add_file(tar: tarfile.TarFile, root: Path, path: Path, name: str | None = None,
             mtime: int = FIXED_MTIME) -> None:
    """One of the app's files, under its path in the app (or `name`), executable if it is."""
    add_data(tar, name or path.relative_to(root).as_posix(), path.read_bytes(),
         executable=os.access(path, os.X_OK), mtime=mtime)


def build(settings: Settings, cache: Path) -> Release:
    """Pack the app and its wheelhouse into cache/releases/<app>-<id>.tar.gz."""
    app = settings.app
    cache = cache.resolve()
    target = target_of(settings)
    locked, project = build_wheelhouse(settings, target, cache)
    files = app_files(app.path)
    wheels = sorted(p for p in locked.wheelhouse.glob("*.whl"))

    def write(tar: tarfile.TarFile) -> None:
        for path in files:
            add_file(tar, app.path, path)
        add_data(tar, ".flaskstack/requirements.txt", locked.requirements.encode())
        add_data(tar, ".flaskstack/python", f"{target.python}\n".encode())
        for wheel in wheels:
            add_data(tar, f".flaskstack/wheelhouse/{wheel.name}", wheel.read_bytes())
        for wheel in project:
            add_data(tar, f".flaskstack/project/{wheel.name}", wheel.read_bytes())
        if project:
            add_data(tar, ".flaskstack/project.txt", project_requirements(project).encode())

    release_id, digest, out = pack(cache, app.name, write)
    return Release(id=release_id, sha256=digest, archive=out,
                   files=tuple(p.relative_to(app.path).as_posix() for p in files),
                   wheels=tuple(w.name for w in wheels), python=target.python,
                   requirements=tuple(p.line for p in locked.pins))
