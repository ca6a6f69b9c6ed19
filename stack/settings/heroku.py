"""platform heroku: the `heroku` section, and what the shared keys mean there.

On Heroku `hosts.count` and `hosts.size` are the web dynos' quantity and size, `hosts.python`
is the Python the buildpack installs (`.python-version`), and `database.size` is the Heroku
Postgres plan. The rules below are the ones Heroku itself applies (or the ones a production
stack needs), said before `pulumi up` instead of as an API error halfway through it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from stack.settings.platforms import HOST_SECTIONS, Platform
from stack.settings.reader import Reader, describe
from stack.settings.schema import PROJECT, Database, Heroku, Hosts, Process

# Heroku's own rule for an app name (`heroku apps:create`): lower-case letters, digits and
# dashes, starting with a letter and ending with a letter or digit, 3 to 30 characters.
APP_NAME = r"[a-z][a-z0-9-]{1,28}[a-z0-9]"
TEAM = r"[a-z0-9][a-z0-9-]{0,62}"
STACKS = ("heroku-24", "heroku-22")  # heroku-24 (Ubuntu 24.04) is the current one
PYTHON = r"3\.1[0-4](\.[0-9]{1,3})?"  # what the Python buildpack offers on heroku-24 and -22
DEFAULT_PYTHON = "3.13"

# Common Runtime dyno sizes (devcenter.heroku.com/articles/dyno-types). Eco and basic run one
# dyno per process type and have no preboot; professional sizes have both.
SMALL_DYNOS = ("eco", "basic")
PROFESSIONAL_DYNOS = ("standard-1x", "standard-2x", "performance-m", "performance-l",
                      "performance-l-ram", "performance-xl", "performance-2xl")
DYNO_SIZES = SMALL_DYNOS + PROFESSIONAL_DYNOS
SMALLEST_DYNO = "basic"  # review stacks: one basic dyno (eco hours are shared by the account)

# Heroku Postgres plans (devcenter.heroku.com/articles/heroku-postgres-plans): essential has no
# fork, follow or rollback; standard has rollback; premium adds a high-availability standby.
PLAN = r"(essential|standard|premium)-([0-9]{1,2})"
SMALLEST_PLAN = "essential-0"
PROD_PLAN = "standard-0"
HA_PLAN = "premium-0"
POSTGRES_VERSIONS = ("14", "15", "16", "17")  # what Heroku Postgres provisions


def read_heroku(r: Reader, p: Platform, stack: str) -> Heroku | None:
    """The `heroku` section (on another platform each key set in it is refused)."""
    taken = [p.takes(r, name) for name in ("appName", "team", "stack")]
    if not all(taken):
        r.finish()
        return None
    default = f"{PROJECT}-{stack}"
    name = r.string("appName", None, pattern=APP_NAME,
                    expect='a Heroku app name like "acme-web" (lower-case letters, digits and '
                           "dashes, 3 to 30 characters, starting with a letter)")
    if not r.has("appName"):
        name = default
        if not re.fullmatch(APP_NAME, default):
            r.error("appName", f"is needed: the default, {describe(default)}, is not a Heroku app "
                               "name (lower-case letters, digits and dashes, at most 30 "
                               'characters); set one, e.g. pulumi config set --path heroku.appName '
                               f'"{suggested_name(stack)}"')
    team = r.string("team", None, pattern=TEAM, expect='a Heroku team name like "acme"')
    base = r.choice("stack", STACKS, STACKS[0])
    r.finish()
    return Heroku(app_name=name or default, team=team, stack=base or STACKS[0])


def suggested_name(stack: str) -> str:
    """A valid app name close to the default, for a stack name that does not make one."""
    tail = re.sub(r"[^a-z0-9]+", "-", stack.lower()).strip("-")[:18].strip("-") or "app"
    return f"{PROJECT}-{tail}"


def refuse_host_sections(top: Reader) -> None:
    """On Heroku: every key set in a section only hosts read (ssh, tls, ...) is refused."""
    for section, why in HOST_SECTIONS.items():
        value = top.raw(section)
        if not top.has(section) or value is None:
            continue
        if isinstance(value, Mapping) and value:
            for key in value:
                top.error_at(f"{top.key(section)}.{key}", why)
        else:
            top.error(section, why)


def check_dynos(r: Reader, hosts: Hosts, prod: bool) -> None:
    """hosts.size is a dyno size that can run hosts.count dynos; prod runs 2 or more with
    preboot (new dynos start and take traffic before the old ones stop)."""
    size = hosts.size
    if size and size not in DYNO_SIZES:
        if size.startswith(("private-", "shield-")):
            r.error("size", f"{size} is a Private Space dyno; the program deploys to the Common "
                            f"Runtime, whose sizes are {', '.join(DYNO_SIZES)}")
        else:
            r.error("size", f"{describe(size)} is not a Heroku dyno size; the sizes are "
                            f"{', '.join(DYNO_SIZES)}")
        return
    if size in SMALL_DYNOS and hosts.count > 1:
        r.error("count", f"is {hosts.count}, but {size} dynos run one per process type; set "
                         "hosts.count: 1, or hosts.size: standard-1x or larger")
    if prod and hosts.count < 2 and not r.reported("count"):
        r.error("count", f"must be at least 2 on prod (got {hosts.count}): with one web dyno, "
                         "Heroku's daily restart of it and every deploy without preboot leave "
                         "no dyno serving")
    if prod and size in SMALL_DYNOS:
        r.error("size", f"{size} dynos have no preboot, so every deploy to prod would stop the "
                        "old dynos before the new ones serve; use standard-1x or larger")


def read_python(r: Reader) -> str:
    return r.string("python", DEFAULT_PYTHON, pattern=PYTHON,
                    expect=f'the Python Heroku installs, as major.minor like "{DEFAULT_PYTHON}" '
                           "(3.10 to 3.14; a patch release pins it, and stops the buildpack's "
                           "security updates)") or DEFAULT_PYTHON


def plan(r: Reader, size_set: bool, size: str, ha: bool, prod: bool) -> str:
    """The Heroku Postgres plan: database.size, or by default essential-0 (standard-0 on prod,
    premium-0 with highAvailability); one that cannot give what was asked is refused."""
    if not size_set:
        return HA_PLAN if ha else PROD_PLAN if prod else SMALLEST_PLAN
    match = re.fullmatch(PLAN, size)
    if match is None:
        r.error("size", f"{describe(size)} is not a Heroku Postgres plan of the Common Runtime; "
                        'use essential-0, -1 or -2, standard-0 and up, or premium-0 and up')
        return size
    tier = match.group(1)
    if ha and tier != "premium":
        r.error("highAvailability", f"needs a premium plan (a standby in another zone); "
                                    f"database.size is {size}: use premium-0 or larger, or "
                                    "remove highAvailability")
    if prod and tier == "essential":
        r.error("size", f"{size} is an essential plan, with no rollback, fork or follower and "
                        "up to 4 hours of downtime a month: prod needs standard-0 or larger")
    return size


def check_engine_version(r: Reader, version: str) -> None:
    if r.has("engineVersion") and version and version not in POSTGRES_VERSIONS:
        r.error("engineVersion", f"PostgreSQL {version} is not offered by Heroku Postgres; "
                                 f"use one of {', '.join(POSTGRES_VERSIONS)}")


def smallest(hosts: Hosts, database: Database) -> tuple[Hosts, Database]:
    """A review stack on Heroku: one basic web dyno and the smallest Postgres plan."""
    return (dataclasses.replace(hosts, size=SMALLEST_DYNO, count=1),
            dataclasses.replace(database, size=SMALLEST_PLAN, high_availability=False))



def smallest_processes(processes: tuple[Process, ...]) -> tuple[Process, ...]:
    """A review stack on Heroku: at most one basic dyno of each process type."""
    return tuple(dataclasses.replace(proc, count=min(proc.count, 1), size=SMALLEST_DYNO)
                 for proc in processes)
