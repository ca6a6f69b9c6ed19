"""The `app` section: which Flask app, how Gunicorn runs it, its environment and static files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from stack.settings.checks import ENV_KEY, NAME, check_entry, check_listen, check_one_line
from stack.settings.reader import Reader, Secret, as_text, describe
from stack.settings.schema import RESERVED_APP_NAMES, RESERVED_ENV, WORKER_CLASSES, App


def read_app(r: Reader, project_dir: Path) -> App:
    name = r.string("name", "app", pattern=NAME,
                    expect='a short lower-case name like "myapp" (letters, digits, dashes)')
    if name in RESERVED_APP_NAMES:
        r.error("name", f'"{name}" is a system name on the hosts; pick another, e.g. "{name}-app"')
    path_text = r.string("path", "app", expect="the app's directory, relative to Pulumi.yaml",
                         check=check_one_line)
    path = (project_dir / path_text).resolve() if path_text is not None else project_dir
    entry = r.string("entry", "rocket:app", check=check_entry,
                     expect='a WSGI entry like "rocket:app" or "myapp:create_app()"')
    if path_text is not None and entry:  # "" is the project's own directory, checked like any other
        ensure_app_dir(r, path, path_text, entry)

    env = read_env(r)
    secret_env = read_secret_env(r)
    clash = sorted(set(dict(env)) & set(dict(secret_env)))
    if clash:
        r.error("secretEnv", f"{', '.join(clash)} also set in app.env; keep each name in one place")

    workers: int | None = None
    if r.raw("workers") not in (None, "auto"):
        workers = r.integer("workers", None, 1, 64)
    worker_class = r.choice("workerClass", WORKER_CLASSES, "gthread")
    threads_set = r.has("threads")
    threads = r.integer("threads", 32 if worker_class == "gthread" else 1, 1, 64)
    if threads_set and worker_class != "gthread" and threads != 1:
        r.error("threads", f"only applies to workerClass gthread (it is {worker_class}); "
                           "remove threads or set workerClass: gthread")
    timeout = r.integer("timeout", 30, 1, 3600, unit="seconds")
    graceful = r.integer("gracefulTimeout", 30, 1, 3600, unit="seconds")
    keepalive = r.integer("keepalive", 20, 0, 3600, unit="seconds")
    max_requests = r.integer("maxRequests", 0, 0, 1_000_000)
    listen = r.string("listen", "unix", check=check_listen,
                      expect='"unix" or a loopback address like "127.0.0.1:8000"')
    static_url = r.string("staticUrl", "/static", pattern=r"/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*",
                          expect='a URL path like "/static" (no trailing slash)')
    static_dir = read_static_dir(r, path, path_text, entry)
    body = r.string("maxBodySize", "10m", pattern=r"[1-9][0-9]{0,5}[kKmMgG]?",
                    expect='a size like "10m", "512k" or "1g"')
    if body and size_bytes(body) > 4 * 1024**3:
        r.error("maxBodySize", f"must be at most 4g, got {describe(body)}")
    release_command = r.string("releaseCommand", None, check=check_one_line,
                               expect='a command like "flask db upgrade"')
    r.finish()
    return App(name=name, path=path, entry=entry, env=env, secret_env=secret_env, workers=workers,
               worker_class=worker_class, threads=threads, timeout=timeout,
               graceful_timeout=graceful, keepalive=keepalive, max_requests=max_requests,
               listen=listen, static_url=static_url, static_dir=static_dir, max_body_size=body,
               release_command=release_command)


def read_static_dir(r: Reader, path: Path, path_text: str | None, entry: str | None) -> str | None:
    """app.staticDir when set (it must exist), else the folder Flask would serve, if any."""
    if not r.has("staticDir"):
        r.raw("staticDir")
        return flask_static_dir(path, entry)
    static_dir = r.string("staticDir", None, pattern=r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*",
                          expect='a directory inside the app like "static" or "myapp/static"',
                          check=_inside)
    if static_dir and is_dir(path) and not is_dir(path / static_dir):
        r.error("staticDir", f"{path_text}/{static_dir} is not a directory in the app; point it "
                             "at the folder Flask serves /static from")
        return None
    return static_dir


def _inside(text: str) -> str | None:
    return 'must stay inside the app (no "..")' if ".." in text.split("/") else None


def flask_static_dir(path: Path, entry: str | None) -> str | None:
    """Where Flask keeps the app's static files unless told otherwise: `static/` beside the
    module that makes the app. Tried in order: the app's top folder, then the entry module's own
    folder (a package's `myapp/static`); None when neither exists."""
    candidates = ["static"]
    if entry and check_entry(entry) is None:
        parts = entry.split(":", 1)[0].split(".")
        if is_file(path.joinpath(*parts, "__init__.py")):
            candidates.append("/".join([*parts, "static"]))
        elif len(parts) > 1:
            candidates.append("/".join([*parts[:-1], "static"]))
    return next((c for c in candidates if is_dir(path / c)), None)


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # name too long, NUL byte, ...
        return False


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def ensure_app_dir(r: Reader, path: Path, path_text: str, entry: str) -> None:
    """The app's folder exists, holds the entry module and says what to install."""
    if not is_dir(path):
        r.error("path", f"{path_text} is not a directory (looked at {path}); point it at your "
                        "Flask app's folder")
        return
    module = entry.split(":", 1)[0].split(".")
    as_file = path.joinpath(*module[:-1], module[-1] + ".py")
    as_pkg = path.joinpath(*module, "__init__.py")
    if not is_file(as_file) and not is_file(as_pkg):
        r.error("entry", f"module {'.'.join(module)!r} not found in {path_text} "
                         f"(looked for {as_file.relative_to(path)} and {as_pkg.relative_to(path)})")
    if not is_file(path / "requirements.txt") and not is_file(path / "pyproject.toml"):
        r.error("path", f"{path_text} has no requirements.txt or pyproject.toml; the hosts install "
                        "the app's dependencies from one of them")


def read_env(r: Reader) -> tuple[tuple[str, str], ...]:
    out = []
    for key, value in sorted(r.mapping("env").items(), key=lambda kv: str(kv[0])):
        path = f"{r.key('env')}.{key}"
        if not env_name_ok(r, path, key):
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        written = as_text(value) if isinstance(value, str | int | float) else None
        if written is None:  # a secret, an object, a list, nothing, or a number too long to write
            r.error_at(path, f"expected a string, got {describe(value)}"
                             + ("; secrets go in app.secretEnv" if isinstance(value, Secret) else ""))
            continue
        problem = check_one_line(written)
        if problem:
            r.error_at(path, problem)
            continue
        out.append((key, written))
    return tuple(out)


def read_secret_env(r: Reader) -> tuple[tuple[str, Secret], ...]:
    out = []
    for key, value in sorted(r.mapping("secretEnv").items(), key=lambda kv: str(kv[0])):
        path = f"{r.key('secretEnv')}.{key}"
        if not env_name_ok(r, path, key):
            continue
        if isinstance(value, str) and r.secret:
            value = Secret(value)
        if not isinstance(value, Secret):
            r.error_at(path, "is stored in plain text; it must be a secret: "
                             f"pulumi config set --secret --path app.secretEnv.{key} VALUE")
            continue
        if value.known and "\n" in (value.value or ""):
            r.error_at(path, "must be one line (the secret's value is not shown)")
            continue
        out.append((key, value))
    return tuple(out)


def env_name_ok(r: Reader, path: str, key: Any) -> bool:
    if not isinstance(key, str) or not re.fullmatch(ENV_KEY, key):
        r.error_at(path, "is not a valid environment variable name (letters, digits, _)")
        return False
    if key in RESERVED_ENV:
        r.error_at(path, f"{key} is set by the program itself; pick another name")
        return False
    return True


def size_bytes(text: str) -> int:
    unit = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1].lower(), 1)
    return int(text.rstrip("kKmMgG")) * unit
