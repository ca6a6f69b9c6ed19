"""`app.env` and `app.secretEnv`: the app's environment, which nothing else may read.

A name that Gunicorn, Python, the dynamic loader or systemd interprets is refused with what to
set instead (`GUNICORN_CMD_ARGS` would override the checked Gunicorn config, `LD_PRELOAD` load
code into it). A plain entry that looks like a credential is refused too: `app.env` is committed
in the stack file. Sizes are capped so that the env step, which carries `app.env` in its
command, stays far under one exec argument (131,072 bytes) even when every character is one
that quoting makes five times longer (measured: tests/test_injection.py); secrets travel on
stdin.
"""

from __future__ import annotations

import re
from typing import Any

from stack.settings.checks import ENV_KEY
from stack.settings.reader import Reader, Secret, as_text, describe
from stack.settings.reserved import env_owner, looks_secret

MAX_NAMES = 200
MAX_VALUE = 4 * 1024  # bytes of one plain value
MAX_PLAIN = 16 * 1024  # bytes of all of app.env
MAX_SECRET = 32 * 1024  # bytes of one secret value
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def read_env(r: Reader) -> tuple[tuple[str, str], ...]:
    """`env` of this section (app.env, or a process's own): plain NAME: value pairs."""
    out = []
    entries = sorted(r.mapping("env").items(), key=lambda kv: str(kv[0]))
    if not too_many(r, "env", entries):
        for key, value in entries:
            path = f"{r.key('env')}.{key}"
            if not name_ok(r, path, key, "env"):
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            written = as_text(value) if isinstance(value, str | int | float) else None
            if written is None:  # a secret, an object, a list, nothing, or a number too long
                r.error_at(path, f"expected a string, got {describe(value)}"
                                 + ("; secrets go in app.secretEnv" if isinstance(value, Secret) else ""))
                continue
            problem = text_problem(written, MAX_VALUE) or secret_problem(key, written)
            if problem:
                r.error_at(path, problem)
                continue
            out.append((key, written))
    total = sum(len(k) + len(v.encode("utf-8", "replace")) + 4 for k, v in out)
    if total > MAX_PLAIN:
        r.error("env", f"holds {total:,} bytes; at most {MAX_PLAIN:,} fit (it is written to every "
                       "host in one command): move large values into a file the app reads")
    return tuple(out)


def read_secret_env(r: Reader) -> tuple[tuple[str, Secret], ...]:
    out = []
    entries = sorted(r.mapping("secretEnv").items(), key=lambda kv: str(kv[0]))
    if too_many(r, "secretEnv", entries):
        return ()
    for key, value in entries:
        path = f"{r.key('secretEnv')}.{key}"
        if not name_ok(r, path, key, "secretEnv"):
            continue
        if isinstance(value, str) and r.secret:
            value = Secret(value)
        if not isinstance(value, Secret):
            r.error_at(path, "is stored in plain text; it must be a secret: "
                             f"pulumi config set --secret --path app.secretEnv.{key} VALUE")
            continue
        if value.known:
            problem = text_problem(value.value or "", MAX_SECRET)
            if problem:
                r.error_at(path, f"{problem} (the secret's value is not shown)")
                continue
        out.append((key, value))
    return tuple(out)


def too_many(r: Reader, name: str, entries: list) -> bool:
    if len(entries) > MAX_NAMES:
        r.error(name, f"sets {len(entries)} variables; at most {MAX_NAMES}")
        return True
    return False


def name_ok(r: Reader, path: str, key: Any, section: str) -> bool:
    if not isinstance(key, str) or not re.fullmatch(ENV_KEY, key) or len(key) > 128:
        r.error_at(path, "is not a valid environment variable name (letters, digits and _, not "
                         "starting with a digit, at most 128)")
        return False
    owner = env_owner(key)
    if owner:
        where = r.key(section).split(":", 1)[-1]
        r.error_at(path, f"{key} is not the app's to set: {owner}; remove it from {where}")
        return False
    return True


def text_problem(text: str, limit: int,
                 fix: str = "put large data in a file the app reads") -> str | None:
    """Why `text` cannot be one line of text handed to a host (an environment value, a
    command), or None: no line breaks, no control characters, valid Unicode, at most `limit`
    bytes."""
    if "\n" in text or "\r" in text:
        return "must be one line"
    if CONTROL.search(text):
        return "holds a control character (such as NUL or ESC); remove it"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid text (it holds a lone surrogate escape)"
    if size > limit:
        return f"is {size:,} bytes; at most {limit:,}: {fix}"
    return None


def secret_problem(key: str, value: str) -> str | None:
    why = looks_secret(key, value)
    if why is None:
        return None
    return (f"looks like a secret ({why}), and app.env is committed in plain text: remove it "
            f"from app.env and set it with pulumi config set --secret --path "
            f"app.secretEnv.{key} VALUE")
