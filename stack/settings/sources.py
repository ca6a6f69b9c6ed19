"""Where the config comes from: a stack file read offline, or the running Pulumi program.

Both hand `load` the project's keys without the ``flask-stack:`` prefix. A stack file's
``secure:`` values cannot be decrypted offline and become unknown `Secret`s."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.settings import yamlfile
from stack.settings.loading import load
from stack.settings.reader import Secret, SettingsError
from stack.settings.schema import PROJECT, Settings


def project_dir() -> Path:
    """The project's root: where Pulumi.yaml and the stack files are."""
    return Path(__file__).resolve().parent.parent.parent


def from_stack_file(stack: str, directory: Path | None = None) -> Settings:
    """Settings from Pulumi.<stack>.yaml, offline: `secure:` values become unknown secrets."""
    directory = directory or project_dir()
    path = directory / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in directory.glob("Pulumi.*.yaml"))
        raise SettingsError([f"{path.name}: no such stack file in {directory}; stacks here: "
                             + (", ".join(known) or "none")])
    return load(read_stack_file(path), stack=stack, project_dir=directory, offline=True)


def read_stack_file(path: Path) -> dict[str, Any]:
    """The project's keys (prefix removed) from a Pulumi stack file, as `load` takes them;
    `secure:` values become unknown secrets. The YAML is read within `yamlfile`'s limits."""
    document = yamlfile.read(path)
    if document is None:  # an empty file: no config yet, as for `pulumi stack init`
        document = {}
    if not isinstance(document, Mapping):
        raise SettingsError([f"{path.name}: must be a mapping with a config: key"])
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise SettingsError([f"{path.name}: config: must be a mapping of keys to values"])
    raw = {}
    prefix = PROJECT + ":"
    for key, value in config.items():
        if isinstance(key, str) and key.startswith(prefix):
            raw[key[len(prefix):]] = _unwrap_secure(value)
    return raw


def _unwrap_secure(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return Secret(None)
        return {k: _unwrap_secure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secure(v) for v in value]
    return value


def from_pulumi() -> Settings:
    """Settings from the running Pulumi program's config (decrypted by the CLI)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    prefix = PROJECT + ":"
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env())
    raw: dict[str, Any] = {}
    secret_keys = set()
    for full_key, text in values.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        raw[key] = text
        if isinstance(text, str) and text[:1] in "[{":
            with contextlib.suppress(ValueError, RecursionError):
                raw[key] = json.loads(text)
        if full_key in secret or runtime_config.is_config_secret(full_key):
            secret_keys.add(key)
    return load(raw, stack=pulumi.get_stack(), project_dir=project_dir(),
                secret_keys=frozenset(secret_keys))
