"""The database's connection budget (platforms digitalocean and aws): how many connections the
stack's Gunicorn workers and processes open, against what the database allows.

DigitalOcean's managed PostgreSQL gives 25 connections per GB of the size's RAM and keeps 3 of
them for its own maintenance (docs.digitalocean.com, PostgreSQL, "How to Manage Connection
Pools"): db-s-1vcpu-1gb leaves 22 to the app, db-s-2vcpu-4gb 97. The stack counts one connection
per Gunicorn worker process on each host, and one per instance of each process and schedule
(an app that opens one per thread needs more: docs/digitalocean.md, "The connection budget").
Without `database.pool` a stack that would open more is refused with the numbers; with it the
app talks to PgBouncer in transaction mode, whose pool of backend connections is sized to the
same count, at most what the cluster allows.

On AWS the limit is RDS's default max_connections for the class, as alerts.max_connections
estimates it from the class's memory, less PostgreSQL's 3 superuser_reserved_connections; the
instance type's vCPUs come from its name (t3.small: 2). There is no pool there (RDS Proxy is not
built), so the way out is fewer workers or a bigger class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stack.settings.alerts import max_connections
from stack.settings.reader import Reader
from stack.settings.schema import PROJECT, App, Database, Hosts, Process, Schedule

CONNECTIONS_PER_GB = 25
RESERVED = 3  # kept by DigitalOcean for maintenance
SUPERUSER_RESERVED = 3  # PostgreSQL's superuser_reserved_connections default (RDS keeps it)


def usable_connections(size: str) -> int | None:
    """The connections a DigitalOcean PostgreSQL size leaves to the app, or None when its
    memory cannot be read from the slug (db-s-2vcpu-4gb: 4 GB, 97)."""
    match = re.search(r"-([0-9]+)gb(-|$)", size)
    if not match:
        return None
    return CONNECTIONS_PER_GB * int(match.group(1)) - RESERVED


def rds_usable_connections(size: str) -> int | None:
    """What an RDS class leaves to the app (an estimate), or None for a class not known."""
    limit = max_connections(size)
    return None if limit is None else max(1, limit - SUPERUSER_RESERVED)


def instance_cpus(size: str) -> int | None:
    """The vCPUs of an EC2 instance type from its name (t3.small: 2, m7g.2xlarge: 8), or None."""
    match = re.fullmatch(r"([a-z]+)([0-9]+)[a-z-]*\.([0-9]*)(nano|micro|small|medium|large|xlarge)", size)
    if not match:
        return None
    family, generation, times, step = match.groups()
    if step == "xlarge":
        return 4 * int(times or 1)
    if times:
        return None
    if family == "t":
        return 1 if generation == "2" and step in ("nano", "micro", "small") else 2
    return {"medium": 1, "large": 2}.get(step)


def droplet_cpus(size: str) -> int | None:
    """The vCPUs of a droplet size slug (s-2vcpu-2gb: 2, c-4: 4), or None."""
    match = re.search(r"(?:^|-)([0-9]+)vcpu(-|$)", size) or re.fullmatch(r"[a-z0-9]+-([0-9]+)", size)
    return int(match.group(1)) if match else None


def workers_per_host(app: App, hosts: Hosts, platform: str = "digitalocean") -> int | None:
    """Gunicorn's workers on one host: app.workers, or what the config computes from the CPUs
    (cores + 1; sync: 2 x cores + 1), or None when the size's CPUs are not known."""
    if app.workers:
        return app.workers
    cpus = droplet_cpus(hosts.size) if platform == "digitalocean" else instance_cpus(hosts.size)
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
           schedules: tuple[Schedule, ...], platform: str = "digitalocean") -> Budget | None:
    """The stack's connections against the database's limit, or None when either is unknown."""
    workers = workers_per_host(app, hosts, platform)
    limit = (usable_connections(database.size) if platform == "digitalocean"
             else rds_usable_connections(database.size))
    if workers is None or limit is None:
        return None
    others = sum(p.count * (hosts.count if p.on == "all" else 1) for p in processes)
    others += sum(hosts.count if s.on == "all" else 1 for s in schedules)
    return Budget(workers=workers, hosts=hosts.count, others=others, limit=limit)


def check(top: Reader, app: App, hosts: Hosts, database: Database,
          processes: tuple[Process, ...], schedules: tuple[Schedule, ...],
          platform: str = "digitalocean") -> int:
    """Refuse a stack without a pool whose connections exceed the database's; return the pool's
    size (0 without database.pool)."""
    found = budget(app, hosts, database, processes, schedules, platform)
    if database.pool:
        if found is None:
            return usable_connections(database.size) or 1
        return max(1, min(found.demand, found.limit))
    if found is not None and found.demand > found.limit and platform != "digitalocean":
        others = f" + {found.others} process and schedule instances" if found.others else ""
        top.error_at(
            f"{PROJECT}:database.size",
            f"{database.size} allows about {found.limit} connections to the app (RDS's default "
            f"max_connections for the class, estimated from its memory, less "
            f"{SUPERUSER_RESERVED} reserved), but {found.hosts} hosts x {found.workers} Gunicorn "
            f"workers{others} would open {found.demand}; set fewer workers (app.workers) or "
            f"hosts, or a bigger database.size")
    elif found is not None and found.demand > found.limit:
        others = f" + {found.others} process and schedule instances" if found.others else ""
        top.error_at(
            f"{PROJECT}:database.size",
            f"{database.size} leaves {found.limit} connections to the app ({CONNECTIONS_PER_GB} per "
            f"GB of RAM, {RESERVED} kept by DigitalOcean), but {found.hosts} hosts x "
            f"{found.workers} Gunicorn workers{others} would open {found.demand}; set fewer "
            f"workers (app.workers) or hosts, a bigger database.size, or database.pool: true "
            f"(PgBouncer in transaction mode shares {found.limit} connections among them)")
    return 0
