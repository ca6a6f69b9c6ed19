"""Reading one config section with the key path in every error.

A `Reader` wraps a mapping and the path that leads to it (``flask-stack:hosts``). Each typed
getter returns the value or its default; a bad value is recorded as an error that names the key
path, what is wrong and how to fix it, and the getter returns the default so that reading goes on
and every error of one config is reported together. `finish()` reports keys nobody asked for
(with a "did you mean" hint), so a typo never silently falls back to a default.

Errors have one channel: the `Errors` that every reader of one load shares. A section asks it
whether a key was already reported (`Reader.reported`) instead of searching message text.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING: Any = object()


class SettingsError(Exception):
    """Every problem found in one stack config, each line naming its key."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))

    def report(self, stack: str) -> str:
        count = len(self.errors)
        head = f"stack {stack!r}: {count} config error{'s' if count != 1 else ''}:"
        return "\n".join([head, *(f"  - {e}" for e in self.errors)])


class Secret:
    """A secret config value. Prints as [secret]; `value` is None when it is not known here
    (an offline render cannot decrypt `secure:` values)."""

    __slots__ = ("value",)

    def __init__(self, value: str | None):
        self.value = value

    @property
    def known(self) -> bool:
        return self.value is not None

    def __repr__(self) -> str:
        return "Secret([secret])"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("Secret", self.value))


class Errors:
    """The problems found so far, in the order found, each under the key path it is about."""

    def __init__(self) -> None:
        self._found: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self._found.append((path, message))

    def about(self, path: str) -> bool:
        """Whether anything was reported at `path` or below it (`path[0]`, `path.key`)."""
        return any(p == path or p.startswith((path + "[", path + ".")) for p, _ in self._found)

    def lines(self) -> list[str]:
        return [f"{path}: {message}" for path, message in self._found]

    def __bool__(self) -> bool:
        return bool(self._found)


def describe(value: Any) -> str:
    """How a bad value is shown in an error: short, quoted like the YAML the user wrote."""
    if isinstance(value, Secret):
        return "a secret"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return '"' + "".join(_shown(c) for c in text) + '"'
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing"
    return as_text(value) or "a number too large to show"


def _shown(char: str) -> str:
    """One character of a value in a message: quotes escaped, and anything unprintable
    (line breaks, controls, U+2028) as an escape, so a message stays one line."""
    if char == '"':
        return '\\"'
    if char == "\\":
        return "\\\\"
    return char if char.isprintable() else char.encode("unicode_escape").decode("ascii")


def not_text(text: str) -> str | None:
    """Why `text` cannot reach a host at all (no file or command line can hold it), or None."""
    if "\0" in text:
        return "holds a NUL byte, which no file or command on a host can carry; remove it"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid text (it holds a lone surrogate escape such as \\ud800)"
    return None


def as_text(value: Any) -> str | None:
    """str(value), or None for an int past Python's int-to-str digit limit."""
    try:
        return str(value)
    except ValueError:
        return None


@dataclass
class Reader:
    data: Mapping[str, Any]
    path: str
    errors: Errors
    secret: bool = False  # the whole section came from a key marked secret
    deferred: Errors | None = None  # offline: what only a deploy needs goes here, not in errors
    seen: set[str] = field(default_factory=set)

    # -- plumbing -------------------------------------------------------------------------
    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if not self.path.endswith(":") else f"{self.path}{name}"

    def show(self, value: Any) -> str:
        """`describe(value)`, except that a value under a key marked secret is never shown."""
        if self.secret and not isinstance(value, Mapping | list | tuple | bool | None):
            return "a value that is not shown (the key is secret)"
        return describe(value)

    def error(self, name: str, message: str) -> None:
        self.errors.add(self.key(name), message)

    def error_at(self, path: str, message: str) -> None:
        """An error about a full key path below this section, such as a list item's."""
        self.errors.add(path, message)

    def reported(self, name: str) -> bool:
        """Whether an error about `name` (or an item or key below it) was recorded already."""
        return self.errors.about(self.key(name))

    def needed_to_deploy(self, name: str, message: str) -> None:
        """A value a deploy cannot do without but an offline render can."""
        if self.deferred is not None:
            self.deferred.add(self.key(name), message)
        else:
            self.error(name, message)

    def raw(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name, _MISSING)

    def has(self, name: str) -> bool:
        return name in self.data

    def finish(self) -> None:
        for name in sorted(set(self.data) - self.seen, key=str):
            hint = difflib.get_close_matches(str(name), sorted(self.seen), n=1)
            fix = f'did you mean "{hint[0]}"?' if hint else "known keys: " + ", ".join(sorted(self.seen))
            self.error(str(name), f"unknown key; {fix}")

    # -- typed getters --------------------------------------------------------------------
    def section(self, name: str, *, secret: bool = False) -> Reader:
        """The object under `name`; `secret`: the key was stored as a secret (its values are
        then never shown in an error)."""
        secret = secret or self.secret
        value = self.raw(name)
        if value is _MISSING or value is None:
            value = {}
        if not isinstance(value, Mapping):
            shown = "a value that is not shown (the key is secret)" if secret else self.show(value)
            self.error(name, f"must be an object with keys below it, got {shown}")
            value = {}
        return Reader(value, self.key(name), self.errors, secret=secret, deferred=self.deferred)

    def string(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        pattern: str | None = None,
        expect: str = "a string",
        check: Callable[[str], str | None] | None = None,
        required_hint: str = "",
    ) -> Any:
        value = self.raw(name)
        if value is _MISSING or value is None:
            if default is _MISSING:
                self.error(name, f"is required: set it to {expect}{required_hint}")
                return None
            return default
        plain = isinstance(value, str | int | float) and not isinstance(value, bool)
        written = as_text(value) if plain else None
        if written is None:
            self.error(name, f"expected {expect}, got {self.show(value)}")
            return None if default is _MISSING else default
        problem = not_text(written)
        if problem:
            self.error(name, problem)
            return None if default is _MISSING else default
        if pattern is not None and not re.fullmatch(pattern, written):
            self.error(name, f"expected {expect}, got {self.show(value)}")
            return None if default is _MISSING else default
        if check is not None:
            problem = check(written)
            if problem:
                self.error(name, problem)
                return None if default is _MISSING else default
        return written

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        expect = "one of " + ", ".join(choices)
        value = self.raw(name)
        if value is _MISSING or value is None:
            if default is _MISSING:
                self.error(name, f"is required: set it to {expect}")
                return None
            return default
        if not isinstance(value, str) or value not in choices:
            self.error(name, f"must be {expect}, got {self.show(value)}")
            return None if default is _MISSING else default
        return value

    def integer(self, name: str, default: Any, lo: int, hi: int, *, unit: str = "",
                also: str = "") -> Any:
        """A whole number from `lo` to `hi`; `also` names what else the key takes ('or "auto"')."""
        value = self.raw(name)
        if value is _MISSING or value is None:
            return default
        number = as_int(value)
        suffix = (f" {unit}" if unit else "") + (f" {also}" if also else "")
        if number is None or not lo <= number <= hi:
            self.error(name, f"must be a whole number from {lo} to {hi}{suffix}, got {self.show(value)}")
            return default
        return number

    def boolean(self, name: str, default: Any) -> Any:
        value = self.raw(name)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.error(name, f"must be true or false, got {self.show(value)}")
        return default

    def string_list(
        self, name: str, item: Callable[[str, Any], Any], default: tuple = ()
    ) -> tuple:
        """A list whose items each go through `item(key_path, value)`, which returns the clean
        value or records its own error and returns None."""
        value = self.raw(name)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, str):  # `pulumi config set` without --path stores a JSON string
            value = _maybe_json(value, list)
        if not isinstance(value, list):
            self.error(name, f"must be a list, got {self.show(value)}")
            return default
        out = []
        for i, entry in enumerate(value):
            clean = item(f"{self.key(name)}[{i}]", entry)
            if clean is not None:
                out.append(clean)
        return tuple(out)

    def mapping(self, name: str) -> Mapping[str, Any]:
        value = self.raw(name)
        if value is _MISSING or value is None:
            return {}
        if isinstance(value, str):
            value = _maybe_json(value, dict)
        if not isinstance(value, Mapping):
            self.error(name, f"must be an object of NAME: value pairs, got {self.show(value)}")
            return {}
        return value

    def secret_string(self, name: str, *, how: str, required: bool) -> Secret | None:
        """A value that must come from a `secure:` config entry."""
        value = self.raw(name)
        if value is _MISSING or value is None:
            if required:
                self.needed_to_deploy(name, f"is required: {how}")
            return None
        if isinstance(value, Secret):
            return value
        if isinstance(value, str) and self.secret:
            return Secret(value)
        self.error(name, f"is stored in plain text; it must be a secret: {how}")
        return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return int(value)
    return None


def _maybe_json(text: str, kind: type) -> Any:
    import json

    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return parsed if isinstance(parsed, kind) else text
