"""Reading a stack file's YAML without trusting it to be small, flat or written once.

`yaml.safe_load` is safe from code execution, not from the file's shape: a kilobyte of nested
aliases expands to gigabytes, a list nested a few thousand deep ends in a RecursionError, a
5,000-digit integer trips Python's own guard, and a key given twice silently keeps the last value.
`read` parses with `StackFileLoader`, which refuses each of these while the file is composed,
before anything is built from it, and reports it as a `SettingsError` line that names the file,
the key path and the line.

The limits are far above anything a stack file needs. The largest real values are PEM text: an
SSH private key (3.4 KB for RSA-4096) and `tls.acmeCaBundle` (about 2 KB per certificate), and
a `secure:` ciphertext of either is about a third longer. `parse_json` holds the same limits for
values parsed elsewhere (the JSON the Pulumi CLI hands a running program), so each rule and its
message are written once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from stack.settings.reader import SettingsError

MAX_FILE_BYTES = 1024 * 1024
MAX_SCALAR_CHARS = 64 * 1024  # some thirty PEM certificates
MAX_DEPTH = 32  # a stack file's deepest real value is four or five levels down
MAX_INT_DIGITS = 100

_INT = "tag:yaml.org,2002:int"
_MERGE = "tag:yaml.org,2002:merge"

Part = str | int


class Refused(Exception):
    """One thing a stack file may not hold: where it is (key path, line) and what to do."""

    def __init__(self, path: list[Part], message: str, line: int | None = None):
        self.path = list(path)
        self.line = line
        self.message = message
        super().__init__(message)

    def line_for(self, name: str | None) -> str:
        """The report line: the file (if any), the key path when there is one, the message."""
        heads = [head for head in (name, key_path(self.path)) if head]
        at = f" (line {self.line})" if self.line is not None else ""
        return ": ".join([*heads, self.message]) + at


def key_path(parts: list[Part]) -> str:
    """`["config", "flask-stack:hosts", "addresses", 0]` -> ``config: flask-stack:hosts.addresses[0]``:
    the document's key, then the setting the way the loader's own errors name it."""
    text = ""
    for i, part in enumerate(parts):
        if isinstance(part, int):
            text += f"[{part}]"
        elif i == 0:
            text = part
        elif i == 1 and parts[0] == "config":
            text += f": {part}"
        else:
            text += f".{part}"
    return text


# -- the rules, for the loader and for parse_json alike ------------------------------------------
TOO_DEEP = (f"nested more than {MAX_DEPTH} levels deep; a stack file's values are a few levels "
            "of mappings and lists")


def depth_problem(depth: int) -> str | None:
    """`depth`: counted from the document, which is level 1 (config: is 2, a setting 3)."""
    return TOO_DEEP if depth > MAX_DEPTH else None


def scalar_problem(text: str) -> str | None:
    if len(text) > MAX_SCALAR_CHARS:
        return (f"a value of {len(text):,} characters, more than the {MAX_SCALAR_CHARS:,} a stack "
                "file's value may have (a PEM bundle of some thirty certificates); "
                "keep large files out of the config")
    return None


def integer_problem(digits: str) -> str | None:
    """`digits`: the integer as written (sign, underscores and all)."""
    count = len(digits.lstrip("+-").replace("_", ""))
    if count > MAX_INT_DIGITS:
        return (f"an integer of {count:,} digits, more than the {MAX_INT_DIGITS} a number in the "
                "config may have; quote it if it is text")
    return None


def parse_json(text: str, path: list[Part]) -> Any:
    """`json.loads(text)` within a stack file's limits, else `Refused` naming `path`
    (ValueError when it is not JSON at all)."""
    if len(text) > MAX_FILE_BYTES:
        raise Refused(path, f"JSON of {len(text):,} characters, more than a whole stack file may "
                            f"hold ({MAX_FILE_BYTES:,} bytes)")

    def checked_int(digits: str) -> int:
        problem = integer_problem(digits)
        if problem:
            raise Refused(path, problem)
        return int(digits)

    try:
        value = json.loads(text, parse_int=checked_int)
    except RecursionError:
        raise Refused(path, TOO_DEEP) from None
    _check_value(value, path)
    return value


def _check_value(value: Any, path: list[Part]) -> None:
    """Refuse a parsed value nested past `MAX_DEPTH` or holding a string past `MAX_SCALAR_CHARS`."""
    pending: list[tuple[Any, list[Part], int]] = [(value, path, 2)]  # as in a stack file: in config:
    while pending:
        node, where, depth = pending.pop()
        if isinstance(node, str):
            problem = scalar_problem(node)
        elif isinstance(node, dict | list):
            problem = depth_problem(depth + 1)
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                pending.append((child, [*where, key], depth + 1))
                if isinstance(key, str) and not problem:
                    problem = scalar_problem(key)
        else:
            problem = None
        if problem:
            raise Refused(where, problem)


# -- the loader -----------------------------------------------------------------------------------
class StackFileLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses, while composing, what a stack file has no use for:
    anchors, aliases and merge keys (a bomb is made of them), nesting past `MAX_DEPTH`, a scalar
    past `MAX_SCALAR_CHARS`, an integer past `MAX_INT_DIGITS`, and a key given twice."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[Part] = []
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 (PyYAML's name)
        """The scanner reads ahead of the composer, and for ``[[[[`` it would read (and keep
        track of) every bracket before the composer sees the first: refuse the level past the
        limit as soon as it is read. The key path is the composer's: the key above the brackets."""
        if self.flow_level >= MAX_DEPTH:
            raise Refused(self._path, TOO_DEEP, self.get_mark().line + 1)
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        part = _part(parent, index)
        if part is not None:
            self._path.append(part)
        collection = isinstance(event, MappingStartEvent | SequenceStartEvent)
        try:
            if isinstance(event, AliasEvent):
                raise Refused(self._path, f"an alias (*{event.anchor}) repeats a value from "
                              "elsewhere; a stack file takes no aliases: write the value out", line)
            if event.anchor is not None:
                raise Refused(self._path, f"an anchor (&{event.anchor}) marks a value to repeat; a "
                              "stack file takes no anchors or aliases: write each value out", line)
            if collection:
                self._depth += 1
                problem = depth_problem(self._depth)
            else:
                problem = scalar_problem(event.value) if isinstance(event, ScalarEvent) else None
            if problem:
                raise Refused(self._path, problem, line)
            node = super().compose_node(parent, index)
            if isinstance(node, ScalarNode) and node.tag == _INT:
                problem = integer_problem(node.value)
                if problem:
                    raise Refused(self._path, f"not valid YAML for a stack file: {problem}", line)
            if isinstance(node, MappingNode):
                self._refuse_repeats(node)
            return node
        finally:
            if collection:
                self._depth -= 1
            if part is not None:
                self._path.pop()

    def _refuse_repeats(self, node: MappingNode) -> None:
        seen: dict[tuple[str, str], int] = {}
        for key, _value in node.value:
            line = key.start_mark.line + 1
            if key.tag == _MERGE:
                raise Refused(self._path, "a merge key (<<) copies keys in from elsewhere; a stack "
                              "file takes none: write the keys out", line)
            if not isinstance(key, ScalarNode):
                continue  # the constructor refuses a list or mapping as a key
            identity = (key.tag, key.value)
            if identity in seen:
                lines = (f"twice on line {line}" if seen[identity] == line
                         else f"twice (lines {seen[identity]} and {line})")
                raise Refused([*self._path, key.value], f"given {lines}; keep one")
            seen[identity] = line


# Booleans as the Pulumi CLI reads a stack file (YAML 1.2, Go's yaml.v3): true and false only.
# PyYAML's YAML 1.1 would also take yes, no, on and off, so that `on: first` (a process's key)
# became the key True here while `pulumi up` sees "on".
_BOOL = "tag:yaml.org,2002:bool"
StackFileLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
StackFileLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _part(parent: Any, index: Any) -> Part | None:
    """The key path part of the node composed under `parent`: a mapping value's key, a list
    entry's index; None for the document and for a mapping's keys themselves."""
    if isinstance(parent, SequenceNode):
        return int(index)
    if isinstance(parent, MappingNode) and isinstance(index, ScalarNode):
        return index.value
    if isinstance(parent, MappingNode) and index is not None:
        return "?"  # a list or mapping used as a key: the constructor refuses it
    return None


def read(path: Path, name: str | None = None) -> Any:
    """The document in the YAML file `path`, parsed with `StackFileLoader`; any problem is a
    `SettingsError` whose one line names the file as `name` (its file name unless given), and
    the key path and line where known."""
    name = name or path.name
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SettingsError([f"{name}: cannot be read: {exc.strerror or exc}"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise SettingsError([f"{name}: larger than {MAX_FILE_BYTES // 1024 // 1024} MiB; a stack file "
                             "is a page of settings, so this is not one"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SettingsError([f"{name}: not valid YAML: byte 0x{data[exc.start]:02x} on line {line} is "
                             "not UTF-8; save the file as UTF-8"]) from None
    loader = StackFileLoader(text)
    try:
        return loader.get_single_data()
    except Refused as exc:
        raise SettingsError([exc.line_for(name)]) from None
    except yaml.MarkedYAMLError as exc:
        raise SettingsError([_syntax_line(name, exc)]) from None
    except yaml.YAMLError as exc:
        raise SettingsError([f"{name}: not valid YAML: {exc}"]) from None
    finally:
        loader.dispose()


def _syntax_line(name: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "cannot be parsed"
    if exc.context and exc.problem:  # "while parsing a flow node", or the first half of a sentence
        problem = (f"{problem} ({exc.context})" if exc.context.startswith("while")
                   else f"{exc.context}, {problem}")
    if "'\\t'" in problem:
        problem += "; indent with spaces, not tabs"
    at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return f"{name}: not valid YAML: {problem}{at}"
