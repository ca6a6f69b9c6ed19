"""The `app` section: which Flask app, how Gunicorn runs it, its environment and static files."""

from __future__ import annotations

import os
import re
from pathlib import Path

from stack.settings.checks import NAME, check_entry, check_listen, check_one_line
from stack.settings.environment import read_env, read_secret_env, text_problem
from stack.settings.platforms import Platform
from stack.settings.reader import Reader, describe
from stack.settings.reserved import heroku_env_owner, host_name_problem
from stack.settings.schema import WORKER_CLASSES, App

MAX_COMMAND = 2 * 1024  # bytes of app.releaseCommand: a command, not a script (ship a script)
URL_PATH_SEGMENT = r"[A-Za-z0-9._~-]+"


def read_app(r: Reader, project_dir: Path, p: Platform) -> App:
    name = r.string("name", "app", pattern=NAME,
                    expect='a short lower-case name like "myapp" (letters, digits, dashes)')
    problem = host_name_problem(name) if name else None
    if problem:
        r.error("name", problem)
    path_text = r.string("path", "app", expect="the app's directory, relative to Pulumi.yaml",
                         check=check_one_line)
    if path_text is not None and not inside_project(r, project_dir, path_text):
        path_text = None
    path = (project_dir / path_text).resolve() if path_text is not None else project_dir
    entry = r.string("entry", "rocket:app", check=check_entry,
                     expect='a WSGI entry like "rocket:app" or "myapp:create_app()"')
    if path_text is not None and entry:  # "" is the project's own directory, checked like any other
        ensure_app_dir(r, path, path_text, entry)

    env = read_env(r)
    secret_env = read_secret_env(r)
    if not p.hosted:
        ensure_not_set_by_heroku(r, [("env", k) for k, _ in env] + [("secretEnv", k) for k, _ in secret_env])
    clash = sorted(set(dict(env)) & set(dict(secret_env)))
    if clash:
        r.error("secretEnv", f"{', '.join(clash)} also set in app.env; keep each name in one place")

    workers: int | None = None
    if not is_auto(r.raw("workers")):
        workers = r.integer("workers", None, 1, 64, also='or "auto"')
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
    listen = "unix"
    if p.takes(r, "listen"):
        listen = r.string("listen", "unix", check=check_listen,
                          expect='"unix" or a loopback address like "127.0.0.1:8000"')
    static_url = r.string("staticUrl", "/static", check=check_static_url,
                          expect='a URL path like "/static" (no trailing slash)')
    static_dir = read_static_dir(r, path, path_text, entry)
    body = "10m"
    if p.takes(r, "maxBodySize"):
        body = r.string("maxBodySize", "10m", pattern=r"[1-9][0-9]{0,5}[kKmMgG]?",
                        expect='a size like "10m", "512k" or "1g"')
        if body and size_bytes(body) > 4 * 1024**3:
            r.error("maxBodySize", f"must be at most 4g, got {describe(body)}")
    release_command = r.string("releaseCommand", None, check=check_command,
                               expect='a command like "flask db upgrade"')
    r.finish()
    return App(name=name, path=path, entry=entry, env=env, secret_env=secret_env, workers=workers,
               worker_class=worker_class, threads=threads, timeout=timeout,
               graceful_timeout=graceful, keepalive=keepalive, max_requests=max_requests,
               listen=listen, static_url=static_url, static_dir=static_dir, max_body_size=body,
               release_command=release_command)


def ensure_not_set_by_heroku(r: Reader, names: list[tuple[str, str]]) -> None:
    for section, name in names:
        owner = heroku_env_owner(name)
        if owner:
            r.error_at(f"{r.key(section)}.{name}", f"{name} is not the app's to set on platform "
                                                   f"heroku: {owner}; remove it from app.{section}")


def read_static_dir(r: Reader, path: Path, path_text: str | None, entry: str | None) -> str | None:
    """app.staticDir when set (it must exist), else the folder Flask would serve, if any."""
    if not r.has("staticDir"):
        r.raw("staticDir")
        return flask_static_dir(path, entry)
    static_dir = r.string("staticDir", None, pattern=r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*",
                          expect='a directory inside the app like "static" or "myapp/static"',
                          check=check_static_dir)
    if static_dir and is_dir(path) and not is_dir(path / static_dir):
        r.error("staticDir", f"{path_text}/{static_dir} is not a directory in the app; point it "
                             "at the folder Flask serves /static from")
        return None
    if static_dir and is_dir(path):
        problem = static_dir_problem(path, static_dir, entry)
        if problem:
            r.error("staticDir", problem)
            return None
    return static_dir


def check_static_dir(text: str) -> str | None:
    """The static folder is served to anyone and made world-readable: it must be a folder
    below the app's own, never the app itself, nothing hidden, nothing climbing out."""
    parts = text.split("/")
    if any(part in (".", "..") for part in parts):
        return (f'must be a folder inside the app, like "static", without "." or ".." segments '
                f"(the whole folder is served to anyone), got {describe(text)}")
    if any(part.startswith(".") for part in parts):
        return (f"must not be or lie in a hidden folder ({describe(text)}): .git, .venv and .env "
                "hold what must never be served")
    return None


def static_dir_problem(path: Path, static_dir: str, entry: str | None) -> str | None:
    """What makes an existing static folder unfit to serve: it leads out of the app through a
    link, or it holds the app's code or its dependency list (so it is the source, not assets)."""
    folder = (path / static_dir).resolve()
    root = path.resolve()
    if folder == root or root not in folder.parents:
        return (f"{static_dir} leads out of the app's folder (through a symbolic link) to "
                f"{folder}; point it at a folder inside the app")
    module = (entry or "").split(":", 1)[0].split(".")[-1]
    source = [name for name in ("requirements.txt", "pyproject.toml", f"{module}.py", "__init__.py")
              if name != ".py" and is_file(folder / name)]
    if source:
        return (f"{static_dir} holds {source[0]}: it is the app's source, and everything in it "
                "would be served to anyone; point it at the folder of static assets only")
    return None


def check_static_url(text: str) -> str | None:
    if not re.fullmatch(f"(/{URL_PATH_SEGMENT})+", text) or any(
            seg in (".", "..") for seg in text.split("/")):
        return (f'expected a URL path like "/static" (no trailing slash, no "." or ".." '
                f"segments), got {describe(text)}")
    if (text + "/").startswith("/.well-known/"):
        return (f"is under /.well-known/, which the front keeps for certificates (ACME) and "
                f'other protocols; use a path like "/static", got {describe(text)}')
    return None


def check_command(text: str) -> str | None:
    return text_problem(text, MAX_COMMAND, "put the steps in a script in the app and run that")


def is_auto(value: object) -> bool:
    """Unset, or the word auto in any case."""
    return value is None or (isinstance(value, str) and value.strip().lower() == "auto")


def inside_project(r: Reader, project_dir: Path, text: str) -> bool:
    """app.path is packed and shipped: it must name a folder of this project's repository (the
    git work tree holding Pulumi.yaml, so a monorepo's infra/ may ship ../app; the project's
    folder when it is in none), never one elsewhere on the machine that runs pulumi. Judged on
    the text, as a reviewer reads it: a folder of the repository that is a symbolic link is the
    repository's own choice."""
    if text.startswith(("/", "~", "\\")) or re.match(r"[A-Za-z]:[\\/]", text):
        r.error("path", f"must be relative to Pulumi.yaml (the folder of the project), got "
                        f"{describe(text)}: only the project's own files are shipped")
        return False
    root, in_git = repository_of(project_dir)
    target = os.path.normpath(os.path.join(os.path.abspath(project_dir), text))
    if os.path.relpath(target, root).split(os.sep)[0] == "..":
        where = "its git repository" if in_git else "the project"
        r.error("path", f"{describe(text)} leads out of {where} ({root}); the app must be a "
                        "folder inside it")
        return False
    return True


def repository_of(project_dir: Path) -> tuple[str, bool]:
    """The git work tree that holds the project (a folder with .git) and True, else the
    project's folder and False."""
    start = os.path.abspath(project_dir)
    for folder in [start, *map(str, Path(start).parents)]:
        if os.path.exists(os.path.join(folder, ".git")):
            return folder, True
    return start, False


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


def size_bytes(text: str) -> int:
    unit = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1].lower(), 1)
    return int(text.rstrip("kKmMgG")) * unit
