"""The database's connection budget (platform digitalocean): how many connections the stack's
Gunicorn workers and processes open, against what the cluster allows.

DigitalOcean's managed PostgreSQL gives 25 connections per GB of the size's RAM and keeps 3 of
them for its own maintenance (docs.digitalocean.com, PostgreSQL, "How to Manage Connection
Pools"): db-s-1vcpu-1gb leaves 22 to the app, db-s-2vcpu-4gb 97. The stack counts one connection
per Gunicorn worker process on each host, and one per instance of each process and schedule
(an app that opens one per thread needs more: docs/digitalocean.md, "The connection budget").
Without `database.pool` a stack that would open more is refused with the numbers; with it the
app talks to PgBouncer in transaction mode, whose pool of backend connections is sized to the
same count, at most what the cluster allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stack.settings.reader import Reader
from stack.settings.schema import PROJECT, App, Database, Hosts, Process, Schedule

CONNECTIONS_PER_GB = 25
RESERVED = 3  # kept by DigitalOcean for maintenance


def usable_connections(size: str) -> int | None:
    """The connections a DigitalOcean PostgreSQL size leaves to the app, or None when its
    memory cannot be read from the slug (db-s-2vcpu-4gb: 4 GB, 97)."""
    match = re.search(r"-([0-9]+)gb(-|$)", size)
    if not match:
        return None
    return CONNECTIONS_PER_GB * int(match.group(1)) - RESERVED


def droplet_cpus(size: str) -> int | None:
    """The vCPUs of a droplet size slug (s-2vcpu-2gb: 2, c-4: 4), or None."""
    match = re.search(r"(?:^|-)([0-9]+)vcpu(-|$)", size) or re.fullmatch(r"[a-z0-9]+-([0-9]+)", size)
    return int(match.group(1)) if match else None


def workers_per_host(app: App, hosts: Hosts) -> int | None:
    """Gunicorn's workers on one host: app.workers, or what the config computes from the CPUs
    (cores + 1; sync: 2 x cores + 1), or None when the size's CPUs are not known."""
    if app.workers:
        return app.workers
    cpus = droplet_cpus(hosts.size)
    if cpus is None:
        return None
    return 2 * cpus + 1 if app.worker_class == "sync" else cpus + 1


@dataclass(frozen=True)
class Budget:
    workers: int  # per host
    hosts: int
    others: int  # process and schedule instances, all hosts together
    limit: int  # what the database leaves to the app

    @property
    def demand(self) -> int:
        return self.workers * self.hosts + self.others


def budget(app: App, hosts: Hosts, database: Database, processes: tuple[Process, ...],
           schedules: tuple[Schedule, ...]) -> Budget | None:
    """The stack's connections against the database's limit, or None when either is unknown."""
    workers = workers_per_host(app, hosts)
    limit = usable_connections(database.size)
    if workers is None or limit is None:
        return None
    others = sum(p.count * (hosts.count if p.on == "all" else 1) for p in processes)
    others += sum(hosts.count if s.on == "all" else 1 for s in schedules)
    return Budget(workers=workers, hosts=hosts.count, others=others, limit=limit)


def check(top: Reader, app: App, hosts: Hosts, database: Database,
          processes: tuple[Process, ...], schedules: tuple[Schedule, ...]) -> int:
    """Refuse a stack without a pool whose connections exceed the database's; return the pool's
    size (0 without database.pool)."""
    found = budget(app, hosts, database, processes, schedules)
    if database.pool:
        if found is None:
            return usable_connections(database.size) or 1
        return max(1, min(found.demand, found.limit))
    if found is not None and found.demand > found.limit:
        others = f" + {found.others} process and schedule instances" if found.others else ""
        top.error_at(
            f"{PROJECT}:database.size",
            f"{database.size} leaves {found.limit} connections to the app ({CONNECTIONS_PER_GB} per "
            f"GB of RAM, {RESERVED} kept by DigitalOcean), but {found.hosts} hosts x "
            f"{found.workers} Gunicorn workers{others} would open {found.demand}; set fewer "
            f"workers (app.workers) or hosts, a bigger database.size, or database.pool: true "
            f"(PgBouncer in transaction mode shares {found.limit} connections among them)")
    return 0
