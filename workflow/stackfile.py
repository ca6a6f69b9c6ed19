"""Stack files as the workflows read and write them.

Keys: a setting is named by its path in the settings (`ssh.adminCidrs`, `expiresAt`), the way its
errors and `pulumi config set --path` name it. In Pulumi.<stack>.yaml its first part, behind the
project's prefix, is the key under `config:` (`flask-stack:ssh`), and the rest are the keys nested
below it (`adminCidrs`): the settings loader strips the prefix and each section reads its nested
keys. `key`, `get` and `put` are the one place here that knows it.

Writing: `write` renders the file into a scratch copy of the project, loads it there with the
settings loader, and only when that succeeds writes it in place; otherwise it fails with the
loader's report and the file on disk is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from stack import settings
from stack.settings import yamlfile
from workflow import WorkflowError


# -- keys -----------------------------------------------------------------------------------
def key(path: str) -> tuple[str, tuple[str, ...]]:
    """The stack file's key under `config:` for the setting `path`, and the keys nested below it:
    `ssh.adminCidrs` -> ("flask-stack:ssh", ("adminCidrs",))."""
    parts = path.split(".")
    if not all(parts):
        raise ValueError(f"{path!r} is not a settings path like ssh.adminCidrs")
    return f"{settings.PROJECT}:{parts[0]}", tuple(parts[1:])


def get(config: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """The value of the setting `path` in a stack file's `config:` mapping, or `default`."""
    top, nested = key(path)
    node: Any = config.get(top, default)
    for name in nested:
        if not isinstance(node, Mapping) or name not in node:
            return default
        node = node[name]
    return default if node is None else node


def put(config: MutableMapping[str, Any], path: str, value: Any) -> None:
    """Set the setting `path` in a stack file's `config:` mapping. The mappings on the way are
    copied, not edited, and keep their order; missing ones are made."""
    top, nested = key(path)
    _put(config, [top, *nested], value, path)


def _put(node: MutableMapping[str, Any], names: list[str], value: Any, path: str) -> None:
    if len(names) == 1:
        node[names[0]] = value
        return
    child = node.get(names[0]) or {}
    if not isinstance(child, Mapping):
        raise WorkflowError(f"{names[0]} holds no keys, so {path} cannot be set in it")
    child = dict(child)
    _put(child, names[1:], value, path)
    node[names[0]] = child


# -- files ----------------------------------------------------------------------------------
def read_yaml(path: Path) -> dict[str, Any]:
    """A stack file (or the template of one) read as the settings loader reads it: within its
    limits, with no aliases and no key given twice, which `text` would otherwise write back
    expanded or with the first one gone."""
    try:
        document = yamlfile.read(path, name=str(path))
    except settings.SettingsError as exc:
        raise WorkflowError("\n".join(exc.errors)) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise WorkflowError(f"{path}: expected a mapping")
    return document


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text() or "null")
    except (OSError, ValueError) as exc:
        raise WorkflowError(f"cannot read {path}: {exc}") from None


def text(document: Mapping[str, Any], note: str) -> str:
    import yaml

    body = yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False, width=120)
    return f"# {note}\n{body}"


def write(directory: Path, stack: str, document: Mapping[str, Any], note: str) -> Path:
    """Write Pulumi.<stack>.yaml in the project `directory`, once the settings loader accepts it."""
    name = f"Pulumi.{stack}.yaml"
    content = text(document, note)
    with _scratch_project(directory, name) as scratch:
        (scratch / name).write_text(content)
        try:
            settings.from_stack_file(stack, scratch)
        except settings.SettingsError as exc:
            report = exc.report(stack)
            for shown in {str(scratch.resolve()), str(scratch)}:
                report = report.replace(shown, str(directory.resolve()))
            raise WorkflowError(f"{name} as it would be written does not load, so it is not written:\n"
                                f"{report}") from None
    target = directory / name
    target.write_text(content)
    return target


@contextlib.contextmanager
def _scratch_project(directory: Path, leave_out: str) -> Iterator[Path]:
    """A scratch folder that looks like the project `directory` to the loader (a link to each of
    its entries but `leave_out`), which reads the app and other paths relative to the project.
    It sits beside the project, so that paths going up (`../myapp`) lead where they do from the
    project; where that parent cannot be written, in the system's temporary folder."""
    real = directory.resolve()
    try:
        made = tempfile.TemporaryDirectory(prefix=f".{real.name}-check-", dir=real.parent)
    except OSError:
        made = tempfile.TemporaryDirectory(prefix=f"{settings.PROJECT}-check-")
    with made as scratch_text:
        scratch = Path(scratch_text)
        with os.scandir(real) as entries:
            for entry in entries:
                if entry.name != leave_out:
                    (scratch / entry.name).symlink_to(real / entry.name)
        yield scratch
