"""How long a stack lives: `ephemeral` (review stacks), `expiresAt`, and the smallest sizes an
ephemeral stack runs on whatever the config it was copied from says."""

from __future__ import annotations

import dataclasses
import datetime
import re

from stack.settings.hosts import GRAVITON
from stack.settings.platforms import Platform
from stack.settings.reader import Reader, describe
from stack.settings.schema import PROD_STACKS, Database, Hosts

REVIEW_STACK = r"pr-[0-9]+"
UTC_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"


def read_ephemeral(top: Reader, stack: str) -> bool:
    ephemeral = top.boolean("ephemeral", re.fullmatch(REVIEW_STACK, stack) is not None)
    if ephemeral and stack in PROD_STACKS:
        top.error("ephemeral", "can never be true on the prod stack: it would turn off deletion "
                               "protection and final snapshots")
        return False
    return bool(ephemeral)


def read_expires_at(top: Reader, ephemeral: bool) -> str | None:
    how = ("pulumi config set expiresAt \"$(date -u -d '+7 days' +%Y-%m-%dT%H:%M:%SZ)\" "
           "(the review-stack workflow sets it on every push)")
    value = top.string("expiresAt", None, pattern=UTC_TIME, expect='a UTC time like "2026-12-01T18:00:00Z"')
    if value:
        try:
            when = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        except ValueError:
            top.error("expiresAt", f"is not a real time: {describe(value)}")
        else:
            # What a deploy still needs: `pulumi up` and `check` fail on it, while render and
            # diff still read an old stack file.
            if ephemeral and when <= now():
                top.needed_to_deploy("expiresAt", f"{value} is in the past: the cleanup job may "
                                                  f"destroy the stack at any moment; set a "
                                                  f"future time: {how}")
        if not ephemeral:
            top.error("expiresAt", "is only for ephemeral stacks (pr-<number>, or ephemeral: true); "
                                   "remove it")
    elif ephemeral and top.data.get("expiresAt") is None:
        top.needed_to_deploy("expiresAt", f"is required on an ephemeral stack: every resource is "
                                          f"tagged with it so a cleanup job can destroy the stack "
                                          f"after it; {how}")
    return value


def now() -> datetime.datetime:
    """The time expiresAt is judged against (a function, so a test can fix it)."""
    return datetime.datetime.now(datetime.UTC)


def smallest(hosts: Hosts, database: Database, p: Platform) -> tuple[Hosts, Database]:
    """The platform's default host and database sizes, no standby, the least storage. A Graviton
    host falls back to x86_64 when the default size is not Graviton."""
    size = p.default("hosts.size")
    arch = hosts.arch
    if arch == "aarch64" and not re.match(GRAVITON, size):
        arch = "x86_64"
    hosts = dataclasses.replace(hosts, size=size, arch=arch)
    database = dataclasses.replace(database, size=p.default("database.size"), high_availability=False,
                                   storage_gb=min(database.storage_gb, 20) if database.storage_gb else 0)
    return hosts, database
