"""The release's dependencies: locked for the hosts' exact Python and platform, then fetched.

1. Lock. `uv pip compile` resolves the requirements (the app's requirements.txt or its
   pyproject.toml dependencies, plus what stack/release.py adds for Gunicorn) for the hosts'
   Python ("3.11.2": environment markers such as `python_full_version` are judged for it, not for
   the Python that runs this program) and platform (`x86_64-manylinux_2_36`). Its output is a
   PEP 751 `pylock.toml`, which lists for each pinned package the wheels that fit the target, so
   what has no wheel is known without reading pip's messages.
2. Fetch. The wheels the lock names come straight from their URLs, checked against the lock's
   hashes; what cannot be had so (an index behind a login: the lock keeps no credentials) comes
   from one `pip download --no-deps --only-binary=:all:` for the target; one
   `pip wheel --no-deps --no-binary <those>` builds the packages that have no wheel from their
   sdists here. A built wheel must install on the hosts (pure Python, `py3-none-any`): a
   compiled one is refused with what to do instead.
3. Record. The release's requirements file names each pin with the sha256 of the very wheel the
   wheelhouse ships for it (`Locked.requirements`); the hosts install with `pip
   --require-hashes`, so no other file can be installed in its place.

Where packages come from: the index options in the app's requirements.txt (`--index-url`,
`--extra-index-url`, `--find-links`, `--no-index`, `--trusted-host`, also in files it includes
with `-r`) and pip's environment variables PIP_INDEX_URL, PIP_EXTRA_INDEX_URL (space-separated),
PIP_FIND_LINKS (space-separated), PIP_NO_INDEX and PIP_TRUSTED_HOST. Both uv and pip get them; pip's
configuration files (pip.conf) are read by pip only, and uv's own UV_* variables by uv only, so
put a private index in requirements.txt or in the PIP_* variables.

The result is cached under <cache>/deps/<key>/ (a lock alone, for Heroku, under
<cache>/locks/<key>/) with `key` a hash of what decides it: the requirement texts, those index
settings, the target and the tools' versions. The app's own code is not part of it, so a code
change reuses the wheelhouse, and an unchanged deploy runs neither uv nor pip (no network). A
requirement left unpinned stays locked at what it resolved to until a requirement or index
setting changes; delete .cache/deps (or .cache/locks) to resolve again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging import tags
from packaging.utils import canonicalize_name, parse_wheel_filename

UV_VERSION = "0.13.8"  # requirements.txt pins the same
CACHE_FORMAT = "deps-1"  # bump when what the cache holds changes
_INDEX_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX",
              "PIP_TRUSTED_HOST", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_INDEX",
              "UV_DEFAULT_INDEX", "UV_NO_INDEX", "UV_INDEX_STRATEGY")


class DependencyError(Exception):
    """The dependencies cannot be locked or fetched; the message says what to do."""


@dataclass(frozen=True)
class Target:
    """What the wheels must run on."""

    python: str  # the hosts' exact python3: "3.11.2"
    arch: str  # "x86_64" | "aarch64"
    glibc: str  # "2_36"

    @property
    def minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    @property
    def platform_tag(self) -> str:
        return f"manylinux_{self.glibc}_{self.arch}"

    @property
    def platform_tags(self) -> list[str]:
        """Every manylinux tag this glibc can run, newest first (pip does not expand them)."""
        newest = int(self.glibc.split("_")[1])
        found = [f"manylinux_2_{minor}_{self.arch}" for minor in range(newest, 16, -1)]
        return [*found, f"manylinux2014_{self.arch}"]

    @property
    def uv_platform(self) -> str:
        return f"{self.arch}-manylinux_{self.glibc}"

    @property
    def key(self) -> str:
        return f"cp{self.python}-{self.platform_tag}"

    def ordered_tags(self) -> list[tags.Tag]:
        """The wheel tags the hosts' Python accepts, the most specific first (as pip ranks them)."""
        version = tuple(int(x) for x in self.minor.split("."))
        return [*tags.cpython_tags(version, platforms=self.platform_tags),
                *tags.compatible_tags(version, f"cp{version[0]}{version[1]}", self.platform_tags)]

    def supported(self) -> set[tags.Tag]:
        return set(self.ordered_tags())

    def describe(self) -> str:
        return f"Python {self.python}, {self.platform_tag}"


@dataclass(frozen=True)
class Pin:
    name: str  # as the lock spells it
    version: str
    has_wheel: bool  # a wheel for the target exists on the index
    wheel_url: str = ""  # the best of them, as the lock names it (without credentials)
    sha256: str = ""  # its hash, from the lock

    @property
    def line(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Input:
    """What the lock is made from: requirement files and lines, and where to look."""

    files: tuple[Path, ...]  # requirement files (requirements.txt, pyproject.toml) uv reads
    lines: tuple[str, ...]  # further requirements (Gunicorn, a package's static dependencies)
    cwd: Path  # relative paths in the requirements are relative to the app

    def texts(self) -> list[str]:
        out = [f"{path.relative_to(self.cwd) if path.is_relative_to(self.cwd) else path}\n"
               f"{path.read_text()}" for path in _all_files(self.files)]
        return [*out, "\n".join(self.lines)]


@dataclass(frozen=True)
class Locked:
    directory: Path  # the cache entry
    pins: tuple[Pin, ...]
    wheelhouse: Path

    @property
    def requirements(self) -> str:
        """What the hosts install with `pip install --require-hashes --no-index --find-links
        <wheelhouse> -r`: each pin with the sha256 of the wheel the wheelhouse ships for it (the
        file itself, whether downloaded or built here), so pip installs no other file."""
        head = ("# Locked by flask-stack for the hosts (uv pip compile); installed from the wheelhouse,\n"
                "# each wheel checked against its sha256 (pip --require-hashes).\n")
        return head + "".join(f"{pin_line(p.line, shipped(self.wheelhouse, p.name))}\n" for p in self.pins)


def shipped(folder: Path, name: str) -> list[str]:
    """The sha256 of each wheel of project `name` in `folder`."""
    return [hashlib.sha256(wheel.read_bytes()).hexdigest() for wheel in sorted(folder.glob("*.whl"))
            if canonicalize_name(parse_wheel_filename(wheel.name)[0]) == canonicalize_name(name)]


def pin_line(line: str, hashes: list[str]) -> str:
    """`name==version --hash=sha256:...`: a requirements line pip checks in --require-hashes mode."""
    return line + "".join(f" --hash=sha256:{digest}" for digest in hashes)


# -- index options ----------------------------------------------------------------------------
def _all_files(files: tuple[Path, ...]) -> list[Path]:
    """The requirement files and every file they include with -r/-c, each once, in order."""
    seen: list[Path] = []
    todo = list(files)
    while todo:
        path = todo.pop(0).resolve()
        if path in seen or not path.is_file():
            continue
        seen.append(path)
        if path.name == "pyproject.toml":
            continue
        for option, value in _options(path):
            if option in ("-r", "--requirement", "-c", "--constraint"):
                todo.append(path.parent / value)
    return seen


def _options(path: Path) -> list[tuple[str, str]]:
    """The (option, value) lines of one requirements file: `--find-links x`, `-f x`, `--x=y`."""
    out: list[tuple[str, str]] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line.startswith("-"):
            continue
        first, _, rest = line.partition(" ")
        if first.startswith("--") and "=" in first:
            first, _, value = first.partition("=")
        else:
            value = rest
        out.append((first, value.strip()))
    return out


def index_options(inputs: Input) -> list[tuple[str, str]]:
    """The index options of the requirement files, paths made absolute (a relative find-links is
    relative to the file that names it, as pip has it): ("--find-links", "/abs"), ("--no-index", "")."""
    out: list[tuple[str, str]] = []
    names = {"-i": "--index-url", "--index-url": "--index-url", "--extra-index-url": "--extra-index-url",
             "-f": "--find-links", "--find-links": "--find-links", "--no-index": "--no-index",
             "--trusted-host": "--trusted-host"}
    for path in _all_files(inputs.files):
        if path.name == "pyproject.toml":
            continue
        for option, value in _options(path):
            if option not in names:
                continue
            if names[option] == "--find-links" and "://" not in value and (path.parent / value).exists():
                value = str((path.parent / value).resolve())
            out.append((names[option], value))
    return out


def _option_lines(options: list[tuple[str, str]]) -> str:
    """The options as requirements-file lines: index URLs may carry credentials, which belong
    in a file pip reads, not in a command line every local user can see."""
    return "".join(f"{option} {value}".rstrip() + "\n" for option, value in options)


def _uv_settings(options: list[tuple[str, str]]) -> tuple[list[str], dict[str, str]]:
    """uv's arguments and environment for the index settings. uv reads the requirement files'
    own options itself but no PIP_* variable: those become UV_* (index URLs, kept out of the
    command line) and options; as with pip, a file's --index-url wins over PIP_INDEX_URL."""
    env = dict(os.environ)
    if env.get("PIP_INDEX_URL") and not env.get("UV_INDEX_URL") \
            and not any(o == "--index-url" for o, _ in options):
        env["UV_INDEX_URL"] = env["PIP_INDEX_URL"]
    extra = " ".join(x for x in (env.get("UV_EXTRA_INDEX_URL", ""), env.get("PIP_EXTRA_INDEX_URL", "")) if x)
    if extra:
        env["UV_EXTRA_INDEX_URL"] = extra
    args: list[str] = []
    for link in [v for o, v in options if o == "--find-links"] + env.get("PIP_FIND_LINKS", "").split():
        args += ["--find-links", link]
    if ("--no-index", "") in options or env.get("PIP_NO_INDEX", "").lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    for host in [v for o, v in options if o == "--trusted-host"] + env.get("PIP_TRUSTED_HOST", "").split():
        args += ["--allow-insecure-host", host]
    return args, env


# -- tools ------------------------------------------------------------------------------------
def uv_command() -> list[str]:
    """This program's own uv (the `uv` package in its virtualenv), never one on PATH."""
    try:
        import uv
    except ImportError:
        raise DependencyError(f"app.path: locking the app's requirements needs uv {UV_VERSION} in "
                              f"this program's virtualenv: {sys.executable} -m pip install "
                              f"uv=={UV_VERSION} (requirements.txt pins it)") from None
    return [uv.find_uv_bin()]


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _pip(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], cwd)


def _said(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if not ln.startswith("WARNING: Location")]
    return "\n".join(lines).strip()[-2000:]


# -- the cache entry --------------------------------------------------------------------------
def cache_key(inputs: Input, target: Target) -> str:
    parts = [CACHE_FORMAT, UV_VERSION, target.key, *inputs.texts(),
             *(f"{name}={os.environ.get(name, '')}" for name in _INDEX_ENV)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def lock_and_fetch(inputs: Input, target: Target, cache: Path) -> Locked:
    """The locked pins and a wheelhouse holding a wheel of each, from the cache when the
    inputs are unchanged."""
    entry = cache.resolve() / "deps" / cache_key(inputs, target)
    wheelhouse = entry / "wheelhouse"
    if (entry / ".complete").is_file():
        return Locked(entry, _read_lock(entry / "pylock.toml", target), wheelhouse)
    shutil.rmtree(entry, ignore_errors=True)
    wheelhouse.mkdir(parents=True)
    pins = lock(inputs, target, entry)
    fetch(inputs, target, pins, entry)
    (entry / ".complete").write_text("ok\n")
    return Locked(entry, pins, wheelhouse)


def lock_only(inputs: Input, target: Target, cache: Path) -> tuple[Pin, ...]:
    """The locked pins alone, for a platform that installs them from the index itself (Heroku's
    buildpack runs pip): no wheelhouse. Cached under <cache>/locks/<key>/ like lock_and_fetch's
    entries, by the same key, so an unchanged deploy does not run uv."""
    entry = cache.resolve() / "locks" / cache_key(inputs, target)
    if (entry / ".complete").is_file():
        return _read_lock(entry / "pylock.toml", target)
    shutil.rmtree(entry, ignore_errors=True)
    pins = lock(inputs, target, entry)
    (entry / ".complete").write_text("ok\n")
    return pins


def lock(inputs: Input, target: Target, entry: Path) -> tuple[Pin, ...]:
    entry.mkdir(parents=True, exist_ok=True)
    extra = entry / "added.in"
    extra.write_text("".join(f"{line}\n" for line in inputs.lines))
    args, env = _uv_settings(index_options(inputs))
    # --python: this interpreter builds any sdist uv needs metadata of; without it uv looks for
    # (and would download) an interpreter of the hosts' exact version. --python-version still
    # decides the markers.
    result = _run([*uv_command(), "pip", "compile", "--quiet", "--no-header",
                   "--python", sys.executable, "--no-python-downloads",
                   "--python-version", target.python, "--python-platform", target.uv_platform,
                   *args, "--output-file", str(entry / "pylock.toml"),
                   *(str(f) for f in inputs.files), str(extra)], inputs.cwd, env)
    if result.returncode != 0:
        raise DependencyError(
            f"app.path: the app's requirements cannot be resolved for the hosts "
            f"({target.describe()}; hosts.python sets the version). uv said:\n{_said(result.stderr)}")
    return _read_lock(entry / "pylock.toml", target)


def _read_lock(path: Path, target: Target) -> tuple[Pin, ...]:
    data = tomllib.loads(path.read_text())
    pins = []
    for package in data.get("packages", []):
        if "version" not in package:
            raise DependencyError(
                f"app.path: {package['name']} is required from a path or URL "
                f"({package.get('directory') or package.get('archive') or package.get('vcs')}), "
                f"which a release cannot pin yet: publish it to an index or a --find-links folder "
                f"and require it by version")
        pins.append(Pin(package["name"], package["version"], bool(package.get("wheels")),
                        *_best_wheel(package.get("wheels", []), target)))
    return tuple(sorted(pins, key=lambda p: canonicalize_name(p.name)))


def _best_wheel(entries: list[dict], target: Target) -> tuple[str, str]:
    """(url, sha256) of the wheel pip would pick for the target, or ("", "")."""
    rank = {tag: i for i, tag in enumerate(target.ordered_tags())}
    best: tuple[int, str, str] | None = None
    for wheel in entries:
        url, sha = wheel.get("url", ""), wheel.get("hashes", {}).get("sha256", "")
        name = wheel.get("name") or urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        try:
            found = min((rank[t] for t in parse_wheel_filename(name)[3] if t in rank), default=None)
        except ValueError:
            continue
        if found is not None and url and sha and (best is None or found < best[0]):
            best = (found, url, sha)
    return (best[1], best[2]) if best else ("", "")


def _download(pins: list[Pin], wheelhouse: Path) -> list[Pin]:
    """The wheels straight from the URLs the lock names, checked against its hashes, a few at a
    time (one pip process resolving 70 packages takes 20 s; this, a few). Returns the pins that
    could not be had so: an index behind a login (the lock keeps no credentials), a proxy pip
    knows of, a file that moved; pip fetches those."""

    def one(pin: Pin) -> Pin | None:
        parts = urllib.parse.urlsplit(pin.wheel_url)
        name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
        try:
            if parts.scheme == "file":
                data = Path(urllib.request.url2pathname(parts.path)).read_bytes()
            elif parts.scheme in ("https", "http"):
                with urllib.request.urlopen(pin.wheel_url, timeout=60) as answer:  # noqa: S310 (scheme checked)
                    data = answer.read()
            else:
                return pin
        except (OSError, ValueError):
            return pin
        if not pin.sha256 or hashlib.sha256(data).hexdigest() != pin.sha256 or "/" in name:
            return pin
        partial = wheelhouse / f".{name}.part"
        partial.write_bytes(data)
        partial.replace(wheelhouse / name)
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [pin for pin in pool.map(one, [p for p in pins if p.wheel_url]) if pin is not None] + [
            p for p in pins if not p.wheel_url]


def fetch(inputs: Input, target: Target, pins: tuple[Pin, ...], entry: Path) -> None:
    """A wheel of every pin into entry/wheelhouse: downloaded when the index has one for the
    target, otherwise built here from the sdist and accepted only when pure Python."""
    wheelhouse = entry / "wheelhouse"
    options = _option_lines(index_options(inputs))
    binary = _download([p for p in pins if p.has_wheel], wheelhouse)
    source = [p for p in pins if not p.has_wheel]
    if binary:
        listed = entry / "wheels.txt"
        listed.write_text(options + "".join(f"{p.line}\n" for p in binary))
        got = _pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", str(wheelhouse),
                   *[arg for tag in target.platform_tags for arg in ("--platform", tag)],
                   "--python-version", target.python, "--implementation", "cp",
                   "-r", str(listed), cwd=inputs.cwd)
        listed.unlink()  # it may name an index with its credentials
        if got.returncode != 0:
            raise DependencyError(f"app.path: downloading the wheels of the app's requirements for "
                                  f"the hosts ({target.describe()}) failed. pip said:\n{_said(got.stderr)}")
    if source:
        built_dir = entry / "built"
        listed = entry / "sdists.txt"
        listed.write_text(options + "".join(f"{p.line}\n" for p in source))
        names = ",".join(canonicalize_name(p.name) for p in source)
        built = _pip("wheel", "--quiet", "--no-deps", "--no-binary", names, "--wheel-dir", str(built_dir),
                     "-r", str(listed), cwd=inputs.cwd)
        listed.unlink()
        if built.returncode != 0:
            shown = ", ".join(p.line for p in source)
            raise DependencyError(
                f"app.path: {shown} {'has' if len(source) == 1 else 'have'} no wheel for the hosts "
                f"({target.describe()}), and building from the sdist here failed. pip said:\n"
                f"{_said(built.stderr)}")
        supported = target.supported()
        by_name = {canonicalize_name(p.name): p for p in source}
        for wheel in sorted(built_dir.glob("*.whl")):
            name, _, _, wheel_tags = parse_wheel_filename(wheel.name)
            pin = by_name.get(name)
            if pin is not None and not wheel_tags & supported:
                raise DependencyError(
                    f"app.path: {pin.line} has no wheel for the hosts ({target.describe()}) and its "
                    f"sdist builds a compiled wheel ({wheel.name}), which would not run there. "
                    f"Pin a version of {pin.name} that has a wheel for {target.platform_tag}; or "
                    f"build that wheel for the hosts' platform yourself and offer it through "
                    f"--find-links in requirements.txt; or pick another package.")
            shutil.move(str(wheel), wheelhouse / wheel.name)
    have = {canonicalize_name(parse_wheel_filename(w.name)[0]) for w in wheelhouse.glob("*.whl")}
    lacking = [p.line for p in pins if canonicalize_name(p.name) not in have]
    if lacking:
        raise DependencyError(f"app.path: no wheel for the hosts ({target.describe()}) was found "
                              f"for {', '.join(lacking)}")
