"""The app, packed for Heroku: the source archive a Heroku Build compiles into a slug.

Heroku's Python buildpack builds from it (`pip install -r requirements.txt` for the Python named
by `.python-version`), then runs the Procfile's `release:` line once per release and its `web:`
line on every web dyno. Deterministic like the hosts' archive (stack/release.py: sorted entries,
fixed owners and times, gzip without a timestamp): the same app and settings make the same bytes,
whose SHA-256 is the Build's checksum and whose first 20 hex digits name the release.

Layout (the archive's root is the app's folder, /app on a dyno):
  <the app's files>               as release.app_files picks them, except at the root:
                                  Procfile, runtime.txt and .python-version, which the generated
                                  ones replace (runtime.txt would win over .python-version), and
                                  Pipfile, Pipfile.lock, poetry.lock and uv.lock: the buildpack
                                  refuses more than one package manager's files next to a
                                  requirements.txt. The names are in Release.replaced, to warn.
  requirements.txt                the app's requirements plus Gunicorn and WhiteNoise, locked
                                  (stack/wheels.py, uv) for Heroku's Python on the stack's
                                  platform; the app's index options carried over; `.` last for a
                                  pyproject package app (the app installs itself). It replaces the
                                  app's own requirements.txt, whose lock it is.
  .python-version                 hosts.python: Heroku's major.minor ("3.13"), latest patch
  Procfile                        web: Gunicorn with the generated config; release: app.releaseCommand
  .flaskstack/gunicorn.conf.py    templates/heroku/gunicorn.conf.py.j2: $PORT on all interfaces,
                                  WEB_CONCURRENCY, the router's timeouts
  .flaskstack/flaskstack_wsgi.py  the hosts' WSGI entry (templates/gunicorn/wsgi.py.j2) with what a
                                  dyno lacks: HTTPS and www. redirects, HSTS, static files (WhiteNoise)
  <app.staticDir>/*.gz            the text files of the static folder precompressed (stack/assets.py)

No wheelhouse: the buildpack installs from the index, so packages on a private index need its
URL in the app's requirements.txt (this machine's PIP_* variables are not carried over: set them
as the Heroku app's config vars, or put the index in requirements.txt, `${TOKEN}` and all).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

from stack import assets, release, render
from stack.paths import WSGI_MODULE
from stack.release import FIXED_MTIME, Release, ReleaseError, add_data, app_files, pack
from stack.settings import Process, Settings
from stack.settings.processes import REFERENCE
from stack.wheels import DependencyError, Input, Pin, Target, index_options, lock_only

# Heroku's stacks: the Ubuntu each is built on, by its glibc (manylinux tag). Dynos are x86-64.
STACK_GLIBC = {"heroku-24": "2_39", "heroku-22": "2_35"}  # Ubuntu 24.04, 22.04
ARCH = "x86_64"
WHITENOISE = "whitenoise==6.12.0"  # serves app.staticDir on a dyno, unless the app pins its own
REPLACED = ("Procfile", "runtime.txt", ".python-version")  # the generated files take their place
OTHER_MANAGERS = ("Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock")
ROUTER_TIMEOUT = 30  # s: the router answers H12 (503) to a request not answered by then
SHUTDOWN_SECONDS = 30  # s between the dyno manager's SIGTERM and its SIGKILL
STOP_MARGIN = 5  # s Gunicorn's master keeps, after its workers' graceful stop, to exit itself
ROUTER_IDLE = 90  # s Router 2.0 keeps an idle connection to a dyno open
GUNICORN_CONF = ".flaskstack/gunicorn.conf.py"
ENTRY = f".flaskstack/{WSGI_MODULE}.py"


def heroku_stack(settings: Settings) -> str:
    """heroku.stack: the dynos' base image ("heroku-24")."""
    if settings.heroku is None:
        raise ValueError(f"flask-stack: the Heroku archive is for platform heroku, not {settings.platform}")
    return settings.heroku.stack


def target_of(settings: Settings) -> Target:
    """What the pins are resolved for: Heroku's Python on the stack's Ubuntu, x86-64."""
    return Target(python=settings.hosts.python, arch=ARCH, glibc=STACK_GLIBC[heroku_stack(settings)])


def locked_pins(settings: Settings, cache: Path) -> tuple[Input, tuple[Pin, ...]]:
    """The app's requirements with Gunicorn and WhiteNoise, locked for the dyno (cached by
    what decides them: the same key as the hosts' wheelhouse, under cache/locks/)."""
    inputs = release.dependency_input(settings, extra=(WHITENOISE,) if settings.app.static_dir else ())
    try:
        return inputs, lock_only(inputs, target_of(settings), cache)
    except DependencyError as exc:
        raise ReleaseError(str(exc)) from None


def index_lines(settings: Settings, inputs: Input, packed: set[str]) -> list[str]:
    """The app's index options (its requirements files' --index-url, --extra-index-url,
    --find-links, --no-index, --trusted-host) as lines of the dyno's requirements.txt. A local
    --find-links folder must be one the archive holds: it becomes relative to the app's root,
    where the buildpack runs pip; a folder elsewhere on this machine is refused."""
    root = settings.app.path.resolve()
    lines = []
    for option, value in index_options(inputs):
        if option == "--find-links" and (value.startswith("file:") or "://" not in value):
            local = Path(urllib.request.url2pathname(urllib.parse.urlsplit(value).path)
                         if value.startswith("file:") else value)
            folder = (inputs.cwd / local).resolve()
            if not folder.is_relative_to(root):
                raise ReleaseError(f"app.path: the requirements' --find-links {value} is a folder of "
                                   f"this machine, outside the app: Heroku's build cannot read it. "
                                   f"Move the packages into the app (vendor/, say) or onto an index")
            relative = folder.relative_to(root).as_posix()
            if relative != "." and not any(name.startswith(relative + "/") for name in packed):
                raise ReleaseError(f"app.path: the requirements' --find-links {value} holds no file "
                                   f"the archive ships (build/, dist/ and the like are left out): "
                                   f"keep the packages in a folder like vendor/")
            value = relative
        lines.append(f"{option} {value}".rstrip())
    return lines


def requirements_file(settings: Settings, inputs: Input, pins: tuple[Pin, ...], packed: set[str]) -> str:
    """The dyno's requirements.txt: index options, exact pins, and `.` for a package app (a
    plain install, not -e: the build directory is not where the slug runs)."""
    target = target_of(settings)
    head = (f"# Locked by flask-stack (uv pip compile) for Heroku's Python {target.python} on "
            f"{heroku_stack(settings)} "
            f"({target.platform_tag});\n# Heroku's Python buildpack installs them from the index.\n")
    lines = [*index_lines(settings, inputs, packed), *(p.line for p in pins)]
    if release.is_package(settings):
        lines.append(".")
    return head + "".join(f"{line}\n" for line in lines)


def procfile(settings: Settings) -> str:
    """web: Gunicorn with the generated config, GUNICORN_CMD_ARGS emptied (the buildpack's
    "--access-logfile -" would outrank the config file); release: app.releaseCommand, which
    Heroku runs once per release, before the new dynos take traffic."""
    lines = [f"web: GUNICORN_CMD_ARGS= gunicorn --config {GUNICORN_CONF}"]
    command = settings.app.release_command
    if command:
        if len(f"{command}.".splitlines()) > 1:  # any line break a Procfile reader may split at
            raise ReleaseError("app.releaseCommand: on Heroku it is the Procfile's release line, and "
                               "a Procfile line holds one command on one line; put the steps in a "
                               "script in the app and run that")
        lines.append(f"release: {command}")
    lines += [f"{proc.name}: {procfile_command(proc)}" for proc in settings.processes]
    return "".join(f"{line}\n" for line in lines)


def procfile_command(proc: Process) -> str:
    """A process's words as one Procfile command, which Heroku runs under bash: literal text
    shell-quoted, each `$NAME`/`${NAME}` as `"${NAME}"` (the value as one word, as on a host),
    the entry's own env in front through `env NAME=value`; `exec` so the program is the process
    Heroku signals."""
    words = [procfile_word(word) for word in proc.command]
    env = [shlex.quote(f"{key}={value}") for key, value in proc.env]
    return " ".join(["exec", *(["env", *env] if env else []), *words])


def procfile_word(word: str) -> str:
    out, last = [], 0
    for match in REFERENCE.finditer(word):
        if match.start() > last:
            out.append(shlex.quote(word[last:match.start()]))
        out.append('"${' + (match.group(1) or match.group(2)) + '}"')
        last = match.end()
    if last < len(word) or not word:
        out.append(shlex.quote(word[last:]))
    return "".join(out)


def dyno_context(settings: Settings) -> dict:
    app = settings.app
    static = None
    if app.static_dir:
        static = {"max_age": assets.MAX_AGE_SECONDS, "expires": f"{assets.MAX_AGE_DAYS}d"}
    domain = settings.domain
    return {
        "router_timeout": ROUTER_TIMEOUT,
        "shutdown_seconds": SHUTDOWN_SECONDS,
        "router_idle": ROUTER_IDLE,
        "timeout": min(app.timeout, ROUTER_TIMEOUT),
        "graceful_timeout": min(app.graceful_timeout, SHUTDOWN_SECONDS - STOP_MARGIN),
        # 0 (no keep-alive: a connection per request) stays 0; a shorter time than the router's
        # would race it (a request sent on a connection Gunicorn is closing fails).
        "keepalive": max(app.keepalive, ROUTER_IDLE + 5) if app.keepalive else 0,
        "hsts": render.HSTS,
        "apex": domain.name if domain.name and domain.www_redirect else None,
        "static": static,
    }


def render_files(settings: Settings) -> dict[str, str]:
    """{path in the archive: content} of the generated Python files."""
    env = render.environment()
    ctx = {"header": render.HEADER.format(app=settings.app.name), "app": settings.app,
           "deploy": settings.deploy, "wsgi": render.wsgi_context(settings),
           "gunicorn": {"max_requests_jitter": render.max_requests_jitter(settings.app.max_requests)},
           "dyno": dyno_context(settings)}
    files = {GUNICORN_CONF: env.get_template("heroku/gunicorn.conf.py.j2").render(ctx),
             ENTRY: env.get_template("gunicorn/wsgi.py.j2").render(ctx)}
    for path, content in files.items():
        if not render.utf8(content):
            raise ValueError(f"flask-stack: {path} would hold a lone surrogate from the config, "
                             "which UTF-8 cannot write")
    return files


def static_mtime(data: bytes) -> int:
    """A static file's time in the archive: fixed, but moved by its content. WhiteNoise's ETag
    is the file's mtime and size, so with one time for all files an edit that kept the size
    would keep the ETag, and a browser revalidating its copy would be told it is current."""
    return FIXED_MTIME + int.from_bytes(hashlib.sha256(data).digest()[:3], "big")


def build(settings: Settings, cache: Path) -> Release:
    """Pack the app for Heroku into cache/releases/<app>-heroku-<id>.tar.gz."""
    app = settings.app
    cache = cache.resolve()
    inputs, pins = locked_pins(settings, cache)
    left_out = set(REPLACED) | set(OTHER_MANAGERS) | {"requirements.txt"}
    files = [p for p in app_files(app.path) if p.relative_to(app.path).as_posix() not in left_out]
    replaced = sorted(p.name for p in app.path.iterdir()
                      if p.name in left_out - {"requirements.txt"} and p.is_file())
    # name in the archive: (bytes, executable, mtime)
    entries: dict[str, tuple[bytes, bool, int]] = {}
    static = f"{app.static_dir}/" if app.static_dir else None
    for path in files:
        name = path.relative_to(app.path).as_posix()
        data = path.read_bytes()
        mtime = static_mtime(data) if static and name.startswith(static) else FIXED_MTIME
        entries[name] = (data, os.access(path, os.X_OK), mtime)
    for name in [n for n in entries if static and n.startswith(static)]:
        data, _, mtime = entries[name]
        if assets.compressible(name, len(data)) and f"{name}.gz" not in entries:
            entries[f"{name}.gz"] = (assets.gzip_bytes(data), False, mtime)
    generated = {"requirements.txt": requirements_file(settings, inputs, pins, set(entries)),
                 ".python-version": f"{settings.hosts.python}\n", "Procfile": procfile(settings),
                 **render_files(settings)}
    for name, text in generated.items():
        entries[name] = (text.encode(), False, FIXED_MTIME)

    def write(tar: tarfile.TarFile) -> None:
        for name in sorted(entries):
            data, executable, mtime = entries[name]
            add_data(tar, name, data, executable=executable, mtime=mtime)

    release_id, digest, out = pack(cache, f"{app.name}-heroku", write)
    return Release(id=release_id, sha256=digest, archive=out,
                   files=tuple(p.relative_to(app.path).as_posix() for p in files), wheels=(),
                   python=settings.hosts.python, requirements=tuple(p.line for p in pins),
                   replaced=tuple(replaced))


def offline_files(settings: Settings) -> dict[str, str]:
    """The generated files `python -m stack render` shows for a Heroku stack: all but
    requirements.txt, which needs the lock (uv and the index) and is made by `pulumi up`."""
    return {"Procfile": procfile(settings), ".python-version": f"{settings.hosts.python}\n",
            **render_files(settings)}


def replaced_warning(rel: Release) -> str | None:
    """What to tell the user about the app's files the Heroku archive left out, or None."""
    if not rel.replaced:
        return None
    own = [n for n in rel.replaced if n in REPLACED]
    other = [n for n in rel.replaced if n in OTHER_MANAGERS]
    parts = []
    if own:
        parts.append(f"{', '.join(own)} {'is' if len(own) == 1 else 'are'} replaced by flask-stack's "
                     "own (a Procfile running Gunicorn with its config, and app.releaseCommand as the "
                     "release line; .python-version holding hosts.python)")
    if other:
        parts.append(f"{', '.join(other)} {'is' if len(other) == 1 else 'are'} left out: Heroku's "
                     "buildpack refuses more than one package manager's files, and the generated "
                     "requirements.txt holds the lock")
    return "app.path: on Heroku, " + "; ".join(parts)

