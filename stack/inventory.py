"""The stack's hosts: what each one is called and the address the deploy reaches it at.

A site (a cloud's, or the user's own servers) makes its hosts; everything after it (rendering,
the rollout, error messages, the day-2 commands) receives a `Host` and never lists hosts itself.
Host names follow one rule, `web-<i>`, so the resources made for a host keep their names across
platforms and releases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stack.settings import Settings


@dataclass(frozen=True)
class Host:
    """One host of the stack. `address` is what SSH connects to: a plain string for servers the
    user has, a Pulumi Output on a cloud (known once the machine exists); None offline, where
    only the name matters (render, check, diff)."""

    name: str  # e.g. "web-0"
    address: Any = None  # str | pulumi.Output[str] | None
    # A cloud host's machine id (pulumi.Output[str]): a new one is a new machine, whose SSH key
    # is recorded again at first contact (stack.hostkeys). None for servers the user has.
    machine: Any = None
    # The SSH host key the day-2 verbs pin it to, from the stack's outputs (`hostKeys`); None:
    # the config's (stack.hostkeys.configured), if any.
    key: str | None = None


def host_names(settings: Settings) -> list[str]:
    """The names of the stack's hosts, in rollout order."""
    count = len(settings.hosts.addresses) if settings.platform == "existing" else settings.hosts.count
    return [f"web-{i}" for i in range(count)]


def planned(settings: Settings) -> list[Host]:
    """The hosts as far as the config alone knows them (offline commands): the addresses of
    servers the user has, names only on a cloud."""
    if settings.platform == "existing":
        return existing(settings)
    return [Host(name) for name in host_names(settings)]


def existing(settings: Settings) -> list[Host]:
    """The user's own servers, in the order of hosts.addresses."""
    return [Host(name, address) for name, address in
            zip(host_names(settings), settings.hosts.addresses, strict=True)]
