"""Where the config comes from: a stack file read offline, or the running Pulumi program.

Both hand `load` the project's keys without the ``flask-stack:`` prefix. A stack file's
``secure:`` values cannot be decrypted offline and become unknown `Secret`s."""

from __future__ import annotations

import difflib
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


# Keys Pulumi itself reads at the top of a stack file; project settings belong under config:.
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")


def read_stack_file(path: Path) -> dict[str, Any]:
    """The project's keys (prefix removed) from a Pulumi stack file, as `load` takes them;
    `secure:` values become unknown secrets. The YAML is read within `yamlfile`'s limits, and a
    key that is in the wrong place, or in a namespace that is a typo of the project's, is an
    error rather than a setting silently left out."""
    document = yamlfile.read(path)
    if document is None:  # an empty file: no config yet, as for `pulumi stack init`
        document = {}
    if not isinstance(document, Mapping):
        raise SettingsError([f"{path.name}: must be a mapping with a config: key"])
    errors = _misplaced_top_level_keys(path.name, document)
    config = document.get("config")
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise SettingsError([*errors, f"{path.name}: config: must be a mapping of keys to values"])
    raw = _project_keys(path.name, config, errors)
    if errors:
        raise SettingsError(errors)
    return raw


def _misplaced_top_level_keys(name: str, document: Mapping[Any, Any]) -> list[str]:
    """A setting written beside `config:` instead of under it would otherwise read as missing."""
    errors = []
    for key in document:
        if key in STACK_FILE_KEYS:
            continue
        if isinstance(key, str) and ":" in key:
            errors.append(f"{name}: {key}: is outside config:; indent it under config:")
            continue
        close = difflib.get_close_matches(str(key).lower(), STACK_FILE_KEYS, n=1)
        hint = f"did you mean {close[0]}?" if close else (
            "a stack file has " + ", ".join(STACK_FILE_KEYS[:-1]) + f" and {STACK_FILE_KEYS[-1]}")
        errors.append(f"{name}: {key}: is not a key of a stack file; {hint}")
    return errors


def _project_keys(name: str, config: Mapping[Any, Any], errors: list[str]) -> dict[str, Any]:
    """The `config:` keys in the project's namespace, prefix removed. Other namespaces (aws:,
    pulumi:, a provider's) are Pulumi's and pass untouched, unless the namespace is so close to
    the project's that it is a typo of it: the program would never read such a key. A key
    Pulumi cannot parse (no namespace, or more than one colon) is reported as Pulumi would."""
    raw: dict[str, Any] = {}
    for key, value in config.items():
        where = f"{name}: config: {key}"
        parts = key.split(":") if isinstance(key, str) else []
        if len(parts) == 3 and parts[1] == "config":  # Pulumi's older form <namespace>:config:<name>
            parts = [parts[0], parts[2]]
        if len(parts) == 1:
            errors.append(f"{where}: has no namespace, and Pulumi reads a key under config: only as "
                          f"<namespace>:<name>; write it as {PROJECT}:{key}")
            continue
        if len(parts) != 2 or not all(parts):
            nest = (f"; to set {parts[-1]} in {parts[0]}:{parts[1]}, nest it under that key"
                    if len(parts) > 2 and all(parts) else "")
            errors.append(f"{where}: is not a key Pulumi can read: a key under config: is "
                          f"<namespace>:<name>, with one colon{nest}")
            continue
        namespace, setting = parts
        if namespace == PROJECT:
            if setting in raw:
                errors.append(f"{where}: given twice (also as {PROJECT}:{setting}); keep one")
            raw[setting] = _unwrap_secure(value)
        elif _resembles_project(namespace):
            errors.append(f"{where}: {namespace} is not this project's namespace, so the program "
                          f"would never read it; did you mean {PROJECT}:{setting}?")
    return raw


def _resembles_project(namespace: str) -> bool:
    """A misspelt, mis-cased or mis-punctuated project name (flask-stak, Flask-Stack, flask_stack);
    no real provider's namespace (aws, digitalocean, pulumi, command) comes close."""
    return difflib.SequenceMatcher(None, namespace.lower(), PROJECT).ratio() >= 0.8


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
    errors = []
    for full_key, text in values.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        raw[key] = text
        try:  # the CLI passes an object or a list as its JSON text
            if isinstance(text, str) and text[:1] in "[{":
                raw[key] = yamlfile.parse_json(text, [full_key])
            elif isinstance(text, str) and (problem := yamlfile.scalar_problem(text)):
                errors.append(f"{full_key}: {problem}")
        except yamlfile.Refused as exc:
            errors.append(exc.line_for(None))
        except ValueError:
            pass  # not JSON after all: the text itself is the value
        if full_key in secret or runtime_config.is_config_secret(full_key):
            secret_keys.add(key)
    if errors:
        raise SettingsError(errors)
    return load(raw, stack=pulumi.get_stack(), project_dir=project_dir(),
                secret_keys=frozenset(secret_keys))
