"""The shape every platform returns, so the rollout and __main__ do not care which they got."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from stack import inventory
from stack.inventory import Host
from stack.settings import Settings


@dataclass(frozen=True)
class SiteArgs:
    """What a cloud site component takes (the fields of AwsSiteArgs and DigitalOceanSiteArgs).

    - `settings`: the stack's validated settings (required).
    - `host_names`: the hosts to make, one machine each, in rollout order (`web-0`, ...).
      Default (None): the inventory's names, `inventory.host_names(settings)`.
    """

    settings: Settings
    host_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.host_names is None:
            object.__setattr__(self, "host_names", tuple(inventory.host_names(self.settings)))


@dataclass
class Site:
    """What a platform hands the rollout: every host with the address to SSH to, the database
    URL the app gets as DATABASE_URL (a secret, with sslmode=require on a cloud), the public URL,
    and the database's endpoint (host:port) for the stack outputs."""

    hosts: list[Host]  # each with the address SSH reaches it at
    database_url: pulumi.Input[str] | None  # secret
    url: pulumi.Input[str]
    database_endpoint: pulumi.Input[str] | None = None
    database_admin: DatabaseAdmin | None = None  # set when the app's user needs grants first


@dataclass
class DatabaseAdmin:
    """How the one-off grant step reaches a managed database as its administrator, where the
    service creates the app's user with no rights (DigitalOcean): libpq environment lines
    (PGHOST=..., a secret), and the database and user to grant to."""

    env: pulumi.Output[str]
    database: str
    user: str


def existing(settings: Settings) -> Site:
    """Servers the user already has: nothing to create, only their addresses."""
    hosts = inventory.existing(settings)
    url_secret = settings.database.url
    database_url = pulumi.Output.secret(url_secret.value) if url_secret and url_secret.known else None
    scheme = "https" if settings.tls.enabled else "http"
    url = f"{scheme}://{settings.domain.name or hosts[0].address}/"
    return Site(hosts=hosts, database_url=database_url, url=url)
