"""The app, packed for the hosts: one content-addressed archive per release.

The archive holds the app's files (minus VCS data, caches, virtualenvs, local state and .env
files) and a wheelhouse of its dependencies built for the hosts' platform (CPU architecture,
Python version), so hosts install with `pip --no-index` and need no internet at deploy time.
It is deterministic: sorted entries, fixed times and owners, gzip without a timestamp. Its name
is the SHA-256 of its bytes, so an unchanged app is the same release and nothing re-runs.

Layout inside the archive (and under /srv/<app>/releases/<id>/ on a host):
  <the app's files>             the app's own tree, so `current/static` is its static folder
  .flaskstack/requirements.txt  what the venv installs (the app's requirements + Gunicorn)
  .flaskstack/wheelhouse/       every wheel that needs
  .flaskstack/project.whl?      the app itself, when it is a pyproject package
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
from dataclasses import dataclass
from pathlib import Path

from stack.settings import Settings

# What the hosts' Python runs Gunicorn with: pinned here, unless the app pins its own.
GUNICORN = "gunicorn==27.0.1"
GEVENT = "gevent==25.9.1"
# Debian/Ubuntu images: (Python version, glibc) of the system Python the release venv uses.
IMAGE_PYTHON = {"debian-12": ("3.11", "2_36"), "ubuntu-24.04": ("3.12", "2_39"),
                "ubuntu-22.04": ("3.10", "2_35")}
EXCLUDED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "env", ".tox",
                           ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules", "instance",
                           ".idea", ".vscode", "build", "dist", ".eggs"})
EXCLUDED_FILES = re.compile(r"(.*\.py[co]|\.env(\..*)?|\.DS_Store|.*\.egg-info|\.coverage)$")
FIXED_MTIME = 946684800  # 2000-01-01: every entry gets it, so the bytes depend on content only


class ReleaseError(Exception):
    """The release cannot be built; the message says what to fix."""


@dataclass(frozen=True)
class Target:
    """What the wheels must run on."""

    python: str  # "3.11"
    arch: str  # "x86_64" | "aarch64"
    glibc: str  # "2_36"

    @property
    def platform_tag(self) -> str:
        return f"manylinux_{self.glibc}_{self.arch}"

    @property
    def platform_tags(self) -> list[str]:
        """Every manylinux tag this glibc can run, newest first (pip does not expand them)."""
        newest = int(self.glibc.split("_")[1])
        tags = [f"manylinux_2_{minor}_{self.arch}" for minor in range(newest, 16, -1)]
        return [*tags, f"manylinux2014_{self.arch}"]

    @property
    def key(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.platform_tag}"


@dataclass(frozen=True)
class Release:
    id: str  # first 20 hex digits of the archive's SHA-256: the release directory's name
    sha256: str
    archive: Path
    files: tuple[str, ...]  # the app's files, as packed
    wheels: tuple[str, ...]


def target_of(settings: Settings) -> Target:
    python, glibc = IMAGE_PYTHON[settings.hosts.image]
    return Target(python=python, arch=settings.hosts.arch, glibc=glibc)


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


def requirements_text(settings: Settings) -> str:
    """The venv's requirements: the app's own plus Gunicorn (and gevent), unless the app pins them."""
    app = settings.app
    lines: list[str] = []
    own = ""
    if (app.path / "requirements.txt").is_file():
        own = (app.path / "requirements.txt").read_text()
        lines.append("-r ../requirements.txt")
    names = {re.split(r"[\s\[<>=!~;]", line.strip(), maxsplit=1)[0].lower()
             for line in own.splitlines() if line.strip() and not line.startswith(("#", "-"))}
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


def _pip_errors(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if not ln.startswith("WARNING: Location")]
    return "\n".join(lines).strip()[-2000:]


def build_wheelhouse(settings: Settings, target: Target, cache: Path) -> tuple[Path, list[Path]]:
    """Wheels of every dependency for the target platform, cached by what decides them.
    Returns (wheelhouse directory, [project wheel] or [])."""
    app = settings.app
    cache = cache.resolve()
    requirements = requirements_text(settings)
    project: list[Path] = []
    key_parts = [target.key, requirements]
    if (app.path / "requirements.txt").is_file():
        key_parts.append((app.path / "requirements.txt").read_text())
    pyproject = app.path / "pyproject.toml"
    if pyproject.is_file() and not (app.path / "requirements.txt").is_file():
        # A package: build its own wheel (pure Python), then download what it depends on.
        key_parts.append(hashlib.sha256(b"".join(p.read_bytes() for p in app_files(app.path))).hexdigest())
    key = hashlib.sha256("\0".join(key_parts).encode()).hexdigest()[:24]
    wheelhouse = cache / "wheelhouse" / key
    done = wheelhouse / ".complete"
    staging = cache / "requirements" / key
    if done.exists():
        return wheelhouse, sorted((staging / "project").glob("*.whl"))
    wheelhouse.mkdir(parents=True, exist_ok=True)
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "requirements.txt").write_text(requirements.replace("-r ../requirements.txt", "-r app.txt"))
    if (app.path / "requirements.txt").is_file():
        (staging / "app.txt").write_text((app.path / "requirements.txt").read_text())
    targets = ["-r", str(staging / "requirements.txt")]
    if pyproject.is_file() and not (app.path / "requirements.txt").is_file():
        built = _pip("wheel", "--no-deps", "--wheel-dir", str(staging / "project"), str(app.path))
        if built.returncode != 0:
            raise ReleaseError(f"app.path: building the app's wheel from {pyproject} failed:\n"
                               f"{built.stderr.strip()[-2000:]}")
        project = sorted((staging / "project").glob("*.whl"))
        targets += [str(w) for w in project]
    result = _pip("download", "--quiet", "--dest", str(wheelhouse), "--only-binary=:all:",
                  *[arg for tag in target.platform_tags for arg in ("--platform", tag)],
                  "--python-version", target.python,
                  "--implementation", "cp", *targets, cwd=staging)
    if result.returncode != 0:
        raise ReleaseError(
            f"app.path: could not get wheels of the app's requirements for the hosts "
            f"(Python {target.python}, {target.platform_tag}). Every requirement needs a wheel for "
            f"that platform (pin a version that has one). pip said:\n{_pip_errors(result.stderr)}")
    done.write_text("ok\n")
    return wheelhouse, project


def _add(tar: tarfile.TarFile, name: str, data: bytes, executable: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def build(settings: Settings, cache: Path) -> Release:
    """Pack the app and its wheelhouse into cache/releases/<app>-<id>.tar.gz."""
    app = settings.app
    cache = cache.resolve()
    target = target_of(settings)
    wheelhouse, project = build_wheelhouse(settings, target, cache)
    files = app_files(app.path)
    wheels = sorted(p for p in wheelhouse.glob("*.whl"))
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            rel = path.relative_to(app.path).as_posix()
            _add(tar, rel, path.read_bytes(), executable=os.access(path, os.X_OK))
        _add(tar, ".flaskstack/requirements.txt", requirements_text(settings).encode())
        for wheel in wheels:
            _add(tar, f".flaskstack/wheelhouse/{wheel.name}", wheel.read_bytes())
        for wheel in project:
            _add(tar, f".flaskstack/project/{wheel.name}", wheel.read_bytes())
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    release_id = digest[:20]
    out = cache / "releases" / f"{app.name}-{release_id}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
    return Release(id=release_id, sha256=digest, archive=out,
                   files=tuple(p.relative_to(app.path).as_posix() for p in files),
                   wheels=tuple(w.name for w in wheels))
