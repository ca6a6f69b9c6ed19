"""What `python -m stack check` tells a user about how the hosts will run their app: what the
health check exercises, which folder is served as static files, and where the app's state lives.

These are read from the settings and the app's files, offline; nothing is imported or run. The
health check's answer is decided on the host at start-up (the generated WSGI entry asks the
Flask app's own URL map), so the note here says what the app's code suggests.
"""

from __future__ import annotations

import re
from pathlib import Path

from stack.settings import HEROKU, Settings

SKIPPED = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", "instance", "build",
                     "dist", ".tox"})


def notes(settings: Settings) -> list[str]:
    if settings.platform == HEROKU:
        return dyno_notes(settings)
    return [health(settings), static(settings), state(settings)]


def dyno_notes(settings: Settings) -> list[str]:
    """What a Heroku stack's user should know: Heroku checks no health path, a dyno keeps no
    files, and the release phase runs the release command."""
    app, path = settings.app, settings.deploy.health_path
    out = [f"health: Heroku checks only that a new dyno binds $PORT within 60 s; {path} is "
           "answered for your uptime checks (by the app's own route when it has one)",
           "state: a dyno's files vanish at every restart (at least daily) and no dyno sees "
           "another's; keep data in DATABASE_URL or another service"]
    if app.static_dir:
        out.insert(1, f"static files: {app.static_url}/ from {app.static_dir}/ in the app, served "
                      "by the dyno's WSGI entry with cache headers (a dyno has no Nginx)")
    if app.release_command:
        out.append(f"release: app.releaseCommand ({app.release_command!r}) is the Procfile's "
                   "release: line; Heroku runs it once per release before the new dynos take "
                   "traffic, and a failure keeps the old release serving")
    return out


def _python_files(root: Path):
    for path in sorted(root.rglob("*.py")):
        if not SKIPPED.intersection(path.relative_to(root).parts[:-1]):
            yield path


def route_file(settings: Settings) -> Path | None:
    """The first of the app's Python files that names the health path in quotes (a route)."""
    path = settings.deploy.health_path
    quoted = re.compile(rf"""["']{re.escape(path)}["']""")
    root = settings.app.path
    for file in _python_files(root):
        try:
            if quoted.search(file.read_text(errors="replace")):
                return file.relative_to(root)
        except OSError:
            continue
    return None


def health(settings: Settings) -> str:
    path = settings.deploy.health_path
    where = route_file(settings)
    asked = (f"health check: every deploy asks {path} through each host's front and waits up to "
             f"{settings.deploy.health_timeout} s for 200")
    if where is not None:
        return (f"{asked}; the app's own route answers it (found {path!r} in {where.as_posix()}), so "
                "it checks whatever that route checks")
    return (f"{asked}; the app has no route for it (no {path!r} in its code), so the generated WSGI "
            "entry answers it once the app has imported and a worker serves: it proves the app "
            "starts, not that its database answers (add your own route for that)")


def static(settings: Settings) -> str:
    app = settings.app
    if not app.static_dir:
        return ("static files: no static folder found (looked for static/ and static/ beside the "
                "entry's module); set app.staticDir if Flask serves them from another folder")
    served_by = ("Nginx serves them from disk" if settings.front == "nginx"
                 else "the app serves them (HAProxy serves no files)")
    return f"static files: {app.static_url}/ from {app.static_dir}/ in the app; {served_by}"


def state(settings: Settings) -> str:
    app = settings.app
    text = (f"state: the app may write only under /var/lib/{app.name} ($STATE_DIRECTORY; Flask's "
            "instance/ folder points there), and each host has its own")
    if app.release_command:
        text += (f"; app.releaseCommand ({app.release_command!r}) runs once per rollout, on the first "
                 "host, so it must be safe to run again (migrations are; wiping tables is not)")
    return text
