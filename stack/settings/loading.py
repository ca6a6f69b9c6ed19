"""`load`: every section read through one set of readers, every error in one place, then the
frozen `Settings` (or a `SettingsError` listing all that is wrong)."""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.settings.alerts import read_alerts, read_logs, unheard
from stack.settings.app import read_app
from stack.settings.budget import check as connection_budget
from stack.settings.checks import exact_choice
from stack.settings.database import read_database
from stack.settings.heroku import check_dynos, read_heroku, refuse_host_sections, smallest_processes
from stack.settings.heroku import smallest as smallest_on_heroku
from stack.settings.hosts import read_hosts, read_network
from stack.settings.lifecycle import read_ephemeral, read_expires_at, smallest
from stack.settings.platforms import DEFAULT_VPC, Platform
from stack.settings.processes import read_processes, read_schedules, unit_name_problem
from stack.settings.reader import Errors, Reader, SettingsError, as_int
from stack.settings.schema import (
    FRONTS,
    HEROKU,
    LETS_ENCRYPT,
    PLATFORMS,
    PROD_STACKS,
    PROJECT,
    Database,
    Hosts,
    Network,
    RateLimit,
    Settings,
    Ssh,
    Tls,
)
from stack.settings.ssh import read_ssh
from stack.settings.web import read_deploy, read_domain, read_rate_limit, read_tls


def load(
    raw: Mapping[str, Any],
    *,
    stack: str,
    project_dir: Path,
    secret_keys: frozenset[str] = frozenset(),
    offline: bool = False,
) -> Settings:
    """Validate the whole config; raise SettingsError with every problem found.

    Offline (a render with no deploy), values that only a deploy needs (the SSH private key,
    the admin CIDRs) may be missing: they are listed in `Settings.deferred` instead."""
    errors = Errors()
    deferred = Errors() if offline else None
    top = Reader(raw, f"{PROJECT}:", errors, deferred=deferred)

    def section(name: str) -> Reader:
        return top.section(name, secret=name in secret_keys)

    p = Platform(top.choice("platform", PLATFORMS))
    region = read_region(top, p)
    load_balancer = bool(top.boolean("loadBalancer", p.default("loadBalancer"))
                         if p.takes(top, "loadBalancer") else False)
    hosts_reader = section("hosts")
    hosts = read_hosts(hosts_reader, p)
    if not p.hosted:
        check_dynos(hosts_reader, hosts, stack in PROD_STACKS)
    ensure_single_host_without_balancer(top, p, load_balancer, hosts)
    database_reader = section("database")
    database = read_database(database_reader, p, prod=stack in PROD_STACKS)
    app = read_app(section("app"), project_dir, p)
    domain = read_domain(section("domain"), p, region, load_balancer)
    front = exact_choice(top, "front", FRONTS, "nginx") if p.takes(top, "front") else "nginx"
    front_workers = read_front_workers(top) if p.takes(top, "frontWorkers") else None
    deploy = read_deploy(section("deploy"), app, p)
    if p.hosted:
        tls = read_tls(section("tls"), domain, p, load_balancer)
        rate_limit = read_rate_limit(section("rateLimit"))
        ssh = read_ssh(section("ssh"), p, hosts.image)
        ensure_host_keys(hosts_reader, p, hosts, ssh)
        network = read_network(section("network"), p)
    else:  # Heroku: none of these exist on a dyno; each key set in them is refused
        refuse_host_sections(top)
        tls, rate_limit, ssh, network = NO_TLS, NO_RATE_LIMIT, NO_SSH, Network(DEFAULT_VPC, 0)
    heroku = read_heroku(section("heroku"), p, stack)
    env_names = {key for key, _ in app.env} | {key for key, _ in app.secret_env}
    processes = read_processes(section("processes"), p, env_names)
    schedules = read_schedules(section("schedules"), p, env_names, processes)
    if p.hosted and app.name:
        for entry, kind in [*((x, "processes") for x in processes), *((x, "schedules") for x in schedules)]:
            if problem := unit_name_problem(app.name, entry.name):
                top.error_at(f"{PROJECT}:{kind}.{entry.name}", f"its units would be "
                             f"{app.name}-{entry.name}: {problem}")
    ephemeral = read_ephemeral(top, stack)
    expires_at = read_expires_at(top, ephemeral)
    if ephemeral and p.cloud:
        hosts, database = smallest(hosts, database, p)
    elif ephemeral and not p.hosted:
        hosts, database = smallest_on_heroku(hosts, database)
        processes = smallest_processes(processes)
    if ephemeral and p.cloud and not top.reported("database"):
        database = dataclasses.replace(database, max_storage_gb=0)  # a review stack stays small
        if not database_reader.has("storageAutoscale"):
            database = dataclasses.replace(database, storage_autoscale=False)
    if p.cloud and not top.reported("database"):
        pool_size = connection_budget(top, app, hosts, database, processes, schedules, p.name or "")
        database = dataclasses.replace(database, pool_size=pool_size)
    alerts = logs = None
    prod = stack in PROD_STACKS
    if p.takes(top, "alerts"):
        alerts = read_alerts(section("alerts"), database, prod=prod, ephemeral=ephemeral,
                             platform=p.name or "")
    if p.takes(top, "logs"):
        logs = read_logs(section("logs"), prod=prod, ephemeral=ephemeral)
    do_project = p.takes(top, "doProject") and top.boolean("doProject", p.default("doProject"))
    top.finish()

    if errors:
        raise SettingsError(errors.lines())
    return Settings(
        project=PROJECT, stack=stack, platform=p.name, region=region,
        load_balancer=load_balancer, hosts=hosts, database=database, app=app, domain=domain,
        tls=tls, front=front, front_workers=front_workers, rate_limit=rate_limit, deploy=deploy,
        ssh=ssh, network=network,
        ephemeral=ephemeral, expires_at=expires_at, do_project=bool(do_project), heroku=heroku,
        processes=processes, schedules=schedules, alerts=alerts, logs=logs,
        deferred=tuple(deferred.lines() if deferred else ()),
        warnings=tuple(warnings(p, hosts, database, app.name)
                       + [w for w in [unheard(alerts, prod=prod)] if w]),
    )


# What a Heroku stack has instead of the sections only hosts read.
NO_TLS = Tls(enabled=False, email=None, acme_directory=LETS_ENCRYPT)
NO_RATE_LIMIT = RateLimit(enabled=False, requests_per_second=10, burst=20)
NO_SSH = Ssh(user="", port=22, public_key=None, private_key=None, admin_cidrs=(), host_key=None,
             bastion=None)

# Each cloud's name in a message, and where it lists its regions.
CLOUD_NAMES = {"aws": "an AWS", "digitalocean": "a DigitalOcean", "heroku": "a Heroku"}
REGION_LISTS = {"aws": "aws ec2 describe-regions --all-regions, or https://docs.aws.amazon.com/"
                       "global-infrastructure/latest/regions/aws-regions.html",
                "heroku": "heroku regions",
                "digitalocean": "doctl compute region list, or "
                                "https://docs.digitalocean.com/platform/regional-availability/"}


@functools.cache
def regions(platform: str) -> tuple[str, ...]:
    """The regions the platform's Pulumi SDK knows (its `Region` enum), imported only when a
    stack of that platform is read."""
    if platform == HEROKU:
        return ("us", "eu")  # the Common Runtime's regions; Private Spaces are not deployed to
    if platform == "aws":
        from pulumi_aws import Region
    else:
        from pulumi_digitalocean import Region
    return tuple(r.value for r in Region)


def read_region(top: Reader, p: Platform) -> str | None:
    if not p.takes(top, "region"):
        return None
    pattern, expect = p.format("region")
    default = p.default("region")
    value = top.string("region", *(() if default is None else (default,)), pattern=pattern,
                       expect=expect)
    if value and p.name and value not in regions(p.name):
        close = difflib.get_close_matches(value, regions(p.name), n=1)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        top.error("region", f"{value} is not {CLOUD_NAMES[p.name]} region; {hint}the regions "
                            f"are listed by {REGION_LISTS[p.name]}")
        return None
    return value


def read_front_workers(top: Reader) -> int | None:
    """frontWorkers: "auto" (any case, the default: decided on the host from its CPUs) or 1 to
    64 (HAProxy's most threads in one group)."""
    value = top.raw("frontWorkers")
    if not top.has("frontWorkers") or value is None or (
            isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    number = as_int(value)
    if number is None or not 1 <= number <= 64:
        top.error("frontWorkers", f'must be "auto" or a whole number from 1 to 64, '
                                  f"got {top.show(value)}")
        return None
    return number


def ensure_single_host_without_balancer(top: Reader, p: Platform, load_balancer: bool,
                                        hosts: Hosts) -> None:
    if p.cloud and not load_balancer and hosts.count != 1:
        top.error_at(f"{PROJECT}:hosts.count",
                     f"must be 1 when loadBalancer is false (single-host mode), got {hosts.count}; "
                     "set loadBalancer: true to spread traffic over hosts")


def ensure_host_keys(r: Reader, p: Platform, hosts: Hosts, ssh: Ssh) -> None:
    """Every server of platform existing has a pinned host key (hosts.hostKeys, or ssh.hostKey
    for all): the deploy never logs in to a server it cannot tell from an impostor."""
    if (p.name != "existing" or ssh.host_key or r.reported("hostKeys")
            or r.errors.about(f"{PROJECT}:ssh.hostKey")):
        return
    missing = [a for a in hosts.addresses if hosts.host_key(a) is None]
    if not missing:
        return
    lines = "; ".join(f"pulumi config set --path {key_path(a)} \"$(ssh-keyscan -t ed25519"
                      f"{'' if ssh.port == 22 else f' -p {ssh.port}'} {a} | cut -d' ' -f2-)\""
                      for a in missing)
    where = " and run ssh-keyscan where the servers are reachable, e.g. on the bastion" if ssh.bastion else ""
    r.needed_to_deploy("hostKeys", f"has no SSH host key for {', '.join(missing)}, so the deploy "
                                   "could not tell the server from an impostor. Pin each one "
                                   f"(compare the fingerprint that `ssh-keygen -lf "
                                   "/etc/ssh/ssh_host_ed25519_key.pub` shows on the server's own "
                                   f"console){where}: "
                                   f"{lines}; or set ssh.hostKey, one key for every server")


def key_path(address: str) -> str:
    """The `pulumi config set --path` argument of one server's host key, quoted for a shell."""
    return f"'hosts.hostKeys[\"{address}\"]'"


def warnings(p: Platform, hosts: Hosts, database: Database, app_name: str) -> list[str]:
    """Valid, but probably not what the user wants: said, not refused."""
    found = []
    if p.name == "existing" and hosts.count > 1 and database.url is None:
        found.append(
            f"{PROJECT}:database.url: not set, with {hosts.count} hosts: each host keeps its own "
            f"files under /var/lib/{app_name} ($STATE_DIRECTORY), so an app on SQLite gets a "
            "separate database on every host, and app.releaseCommand sets up only the first one's. "
            "Set database.url to a PostgreSQL server all hosts share, or deploy to one host")
    return found
