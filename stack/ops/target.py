"""Which hosts a verb talks to, and how: a stack's settings, its hosts and its SSH key.

With the Pulumi CLI on PATH (logged in to the stack's backend), the settings come from the
stack's decrypted config (`pulumi config --json --show-secrets`) and the hosts and the release
from its outputs (`pulumi stack output --json --show-secrets`), as `pulumi up` left them.
Without it, the settings are read offline from Pulumi.<stack>.yaml: servers of platform
`existing` are listed there, a cloud's hosts are not (the verbs then say what to install), and
the SSH key comes from `--identity` or from your own agent and ~/.ssh.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack import inventory, settings
from stack.inventory import Host
from stack.settings import PROJECT, Settings, SettingsError, yamlfile
from stack.settings.loading import load

CLI_TIMEOUT = 120


class OpsError(Exception):
    """A verb cannot go on; the message says why and what to do (exit 2, no traceback)."""


@dataclass(frozen=True)
class Target:
    """One stack as the verbs see it."""

    settings: Settings
    hosts: tuple[Host, ...]  # each with the address SSH reaches it at
    release: str | None  # the release the last `pulumi up` deployed (its output), when known
    identity: str | None  # the SSH private key's text; None: the user's agent and ~/.ssh
    secrets_known: bool  # the config was decrypted (by the CLI): the env step can be run again
    database_url: str | None = None  # the app's DATABASE_URL, when secrets_known

    def host(self, name_or_address: str | None) -> Host:
        """`--host`: a host's name (web-1) or address; None: the first."""
        if name_or_address is None:
            return self.hosts[0]
        for host in self.hosts:
            if name_or_address in (host.name, host.address):
                return host
        known = ", ".join(f"{h.name} ({h.address})" for h in self.hosts)
        raise OpsError(f"stack {self.settings.stack!r} has no host {name_or_address!r}; its hosts: {known}")

    def chosen(self, names: list[str] | None) -> tuple[Host, ...]:
        return self.hosts if not names else tuple(self.host(n) for n in names)


def pulumi_cli() -> str | None:
    return shutil.which("pulumi")


def resolve(stack: str, directory: Path | None = None, identity_file: Path | None = None) -> Target:
    directory = directory or settings.project_dir()
    cli = pulumi_cli()
    outputs: dict[str, Any] = {}
    if cli:
        config = from_cli(cli, stack, directory)
        outputs = stack_outputs(cli, stack, directory)
    else:
        try:
            config = settings.from_stack_file(stack, directory)
        except SettingsError as exc:
            raise OpsError(exc.report(stack)) from None
    if config.platform == settings.HEROKU:
        raise OpsError(f"stack {stack!r} runs on Heroku, which has no hosts to reach: use the heroku "
                       f"CLI (heroku ps, heroku logs --tail, heroku run, heroku releases:rollback "
                       f"--app {config.heroku.app_name if config.heroku else '<app>'})")
    hosts = hosts_of(config, outputs, cli)
    url = outputs.get("databaseUrl")
    if url is None and config.database.url is not None and config.database.url.known:
        url = config.database.url.value
    return Target(settings=config, hosts=hosts, release=outputs.get("release") or None,
                  identity=identity(config, identity_file), secrets_known=bool(cli),
                  database_url=url)


def hosts_of(config: Settings, outputs: dict[str, Any], cli: str | None) -> tuple[Host, ...]:
    if config.platform == "existing":
        return tuple(inventory.existing(config))
    addresses = outputs.get("hosts")
    if not addresses:
        if cli is None:
            raise OpsError(f"stack {config.stack!r} is on {config.platform}, whose host addresses are "
                           "in the stack's outputs: install the Pulumi CLI and log in to the stack's "
                           "backend (pulumi login), so that `pulumi stack output` can list them")
        raise OpsError(f"stack {config.stack!r} has no hosts in its outputs yet: run pulumi up first")
    # As many as the last `pulumi up` made (the config may already ask for another count), named
    # as the inventory names them, each with the key its first contact recorded (none in the
    # outputs of a stack last deployed before keys were recorded).
    keys = outputs.get("hostKeys")
    keys = keys if isinstance(keys, list) and len(keys) == len(addresses) else [None] * len(addresses)
    return tuple(Host(f"web-{i}", str(address), key=str(key) if key else None)
                 for i, (address, key) in enumerate(zip(addresses, keys, strict=True)))


def identity(config: Settings, identity_file: Path | None) -> str | None:
    if identity_file is not None:
        try:
            return identity_file.read_text()
        except OSError as exc:
            raise OpsError(f"--identity {identity_file}: {exc.strerror}") from None
    key = config.ssh.private_key
    return key.value if key is not None and key.known and key.value else None


def run_cli(cli: str, args: list[str], directory: Path) -> str:
    try:
        done = subprocess.run([cli, *args, "--non-interactive", "--cwd", str(directory)],
                              capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise OpsError(f"`pulumi {' '.join(args)}` did not answer within {CLI_TIMEOUT} s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise OpsError(f"`pulumi {' '.join(args)}` failed: {detail[-1] if detail else done.returncode}")
    return done.stdout


def from_cli(cli: str, stack: str, directory: Path) -> Settings:
    """The stack's settings from its decrypted config, as `pulumi up` hands them to the program."""
    text = run_cli(cli, ["config", "--json", "--show-secrets", "--stack", stack], directory)
    try:
        entries = json.loads(text)
    except ValueError:
        raise OpsError(f"`pulumi config --json` for stack {stack!r} did not print JSON") from None
    raw, secret_keys = config_from_cli(entries)
    try:
        return load(raw, stack=stack, project_dir=directory, secret_keys=secret_keys)
    except SettingsError as exc:
        raise OpsError(exc.report(stack)) from None


def config_from_cli(entries: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """`pulumi config --json` entries ({"flask-stack:ssh": {"value", "objectValue", "secret"}})
    as `load` takes them: the project's keys without the prefix, and which of them are secret."""
    prefix = PROJECT + ":"
    raw: dict[str, Any] = {}
    secret = set()
    for full_key, entry in entries.items():
        if not full_key.startswith(prefix) or not isinstance(entry, dict):
            continue
        key = full_key[len(prefix):]
        value = entry.get("objectValue", entry.get("value"))
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(ValueError, yamlfile.Refused):
                value = yamlfile.parse_json(value, [full_key])
        raw[key] = value
        if entry.get("secret"):
            secret.add(key)
    return raw, frozenset(secret)


def stack_outputs(cli: str, stack: str, directory: Path) -> dict[str, Any]:
    text = run_cli(cli, ["stack", "output", "--json", "--show-secrets", "--stack", stack], directory)
    try:
        outputs = json.loads(text or "{}")
    except ValueError:
        raise OpsError(f"`pulumi stack output --json` for stack {stack!r} did not print JSON") from None
    return outputs if isinstance(outputs, dict) else {}


def cache_dir() -> Path:
    """Where the verbs keep what they learn between runs (the hosts' SSH keys first seen)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flask-stack"
