"""Which keys depend on the platform: who takes each one, its default there, its format there.

This table is the only place that knows it. A section asks `Platform.takes(reader, name)`
before reading such a key; a key set on a platform that does not take it is reported once, in
the table's words. A new platform is a new name in `PLATFORMS` plus its entries in these rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stack.settings.reader import Reader
from stack.settings.schema import CLOUDS, HEROKU, HOSTED, IMAGE_USERS, PROJECT

DO, AWS, EXISTING = "digitalocean", "aws", "existing"
NO_MEANING = "has no meaning on platform existing; remove it"
NO_DATABASE = "the program creates no database there; database.url is yours"
DEFAULT_VPC = "10.20.0.0/16"
# Said of a key about hosts on platform heroku, where the app runs on dynos.
DYNOS = "platform heroku runs the app on dynos behind Heroku's router, with no host to set up"
WITH_DYNOS = (DO, AWS, HEROKU)  # the platforms that create what the app runs on


@dataclass(frozen=True)
class Rule:
    """One key whose meaning depends on the platform."""

    platforms: tuple[str, ...]  # the platforms that take the key
    # The value per platform (absent: none, the key is required); on a platform that does not
    # take the key, the value it has there anyway (DigitalOcean keeps 7 days of backups).
    defaults: Mapping[str, Any] = field(default_factory=dict)
    formats: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # (regex, "looks like")
    why: str = ""  # said when the key is set on another platform
    refusals: Mapping[str, str] = field(default_factory=dict)  # a fuller message for one platform
    switch: bool = False  # true/false: any platform may set it to false


RULES: dict[str, Rule] = {
    # The format says what a region looks like; loading.read_region checks it is one of the
    # regions the platform's Pulumi SDK lists.
    "region": Rule(WITH_DYNOS, {HEROKU: "us"}, formats={
        DO: (r"[a-z]{3}[0-9]", 'a DigitalOcean region like "nyc3"'),
        AWS: (r"[a-z]{2,4}(-[a-z]+)+-[0-9]", 'an AWS region like "eu-west-1"'),
        HEROKU: (r"us|eu", 'a Heroku Common Runtime region, "us" or "eu"')},
        refusals={EXISTING: NO_MEANING}),
    "loadBalancer": Rule(CLOUDS, {DO: True, AWS: True}, switch=True, refusals={
        EXISTING: "must be false on platform existing (the program creates no load balancer "
                  "there; list yours in hosts.trustedProxies)",
        HEROKU: "has no meaning on platform heroku: Heroku's router spreads requests over the "
                "web dynos (hosts.count); remove it"}),
    "doProject": Rule((DO,), {DO: True}, switch=True),
    # The smallest sizes that run the default app well.
    # On Heroku: the web dynos' size (standard-1x is the smallest that runs 2 or more dynos and
    # has preboot).
    "hosts.size": Rule(WITH_DYNOS, {DO: "s-1vcpu-1gb", AWS: "t3.small", HEROKU: "standard-1x"}, formats={
        DO: (r"[a-z0-9]+(-[a-z0-9]+)+", 'a droplet size slug like "s-1vcpu-1gb"'),
        AWS: (r"[a-z][a-z0-9-]*\.[a-z0-9]+", 'an EC2 instance type like "t3.small"'),
        HEROKU: (r"[a-z0-9]+(-[a-z0-9]+)*", 'a dyno size like "standard-1x"')},
        refusals={EXISTING: NO_MEANING}),
    "hosts.diskGb": Rule((AWS,), {AWS: 20}, why="a droplet size fixes its disk",
                         refusals={EXISTING: NO_MEANING,
                                   HEROKU: "has no meaning on platform heroku (a dyno's disk is "
                                           "temporary and fixed); remove it"}),
    "hosts.addresses": Rule((EXISTING,), why="a cloud platform creates the hosts; set hosts.count",
                            refusals={HEROKU: "is only for platform existing; on platform heroku "
                                              "set hosts.count, the number of web dynos"}),
    "hosts.hostKeys": Rule((EXISTING,), why="a cloud host's key is recorded at its first contact "
                                            "and pinned from then on",
                           refusals={HEROKU: "has no meaning on platform heroku: there are no "
                                             "hosts to log in to; remove it"}),
    "hosts.trustedProxies": Rule((EXISTING,), why="on a cloud platform the load balancer's network "
                                                  "is trusted automatically", refusals={
        HEROKU: "has no meaning on platform heroku: the one hop the app trusts is Heroku's "
                "router; remove it"}),
    "hosts.image": Rule(HOSTED, refusals={HEROKU: f"has no meaning: {DYNOS}; heroku.stack sets "
                                                  "the dynos' base image"}),
    "hosts.arch": Rule(HOSTED, refusals={HEROKU: "has no meaning: Heroku's Common Runtime dynos "
                                                 "are x86_64; remove it"}),
    "database.url": Rule((EXISTING,), refusals={
        DO: "is made by the program on a cloud platform; remove it",
        AWS: "is made by the program on a cloud platform; remove it",
        HEROKU: "is set by the Heroku Postgres add-on (DATABASE_URL); remove it"}),
    # On Heroku: the Heroku Postgres plan (the default on prod is standard-0, loading.py).
    "database.size": Rule(WITH_DYNOS, {DO: "db-s-1vcpu-1gb", AWS: "db.t4g.micro",
                                       HEROKU: "essential-0"}, formats={
        DO: (r"db-[a-z0-9]+(-[a-z0-9]+)*", 'a database size slug like "db-s-1vcpu-1gb"'),
        AWS: (r"db\.[a-z0-9]+\.[a-z0-9]+", 'an RDS instance class like "db.t4g.micro"'),
        HEROKU: (r"[a-z]+-[0-9]+", 'a Heroku Postgres plan like "essential-0" or "standard-0"')},
        why="the program creates no database there; give yours in database.url"),
    "database.storageGb": Rule((AWS,), {AWS: 20}, refusals={
        DO: "is set by database.size on DigitalOcean; remove it",
        HEROKU: "is set by the Heroku Postgres plan (database.size); remove it"},
        why="the program creates no database there"),
    "database.backupRetentionDays": Rule((AWS,), {AWS: 7, EXISTING: 7, DO: 7, HEROKU: 7}, refusals={
        DO: "DigitalOcean keeps 7 days of backups of a managed database, with point-in-time "
            "recovery; it cannot be changed, remove it",
        EXISTING: "has no meaning on platform existing: the program creates no database there "
                  "and backs up none of yours; remove it",
        HEROKU: "is set by the Heroku Postgres plan (rollback: 4 days on standard, 1 week on "
                "premium; schedule logical backups with heroku pg:backups:schedule); remove it"}),
    # What the program creates a database with; on existing servers database.url says it all.
    "database.engineVersion": Rule(WITH_DYNOS, {DO: "16", AWS: "16", EXISTING: "16", HEROKU: "16"},
                                   why=NO_DATABASE),
    "database.highAvailability": Rule(WITH_DYNOS, {DO: False, AWS: False, EXISTING: False,
                                                   HEROKU: False}, switch=True, why=NO_DATABASE),
    "database.name": Rule(CLOUDS, {DO: "app", AWS: "app", EXISTING: "app", HEROKU: "app"},
                          why=NO_DATABASE, refusals={
        HEROKU: "is chosen by Heroku Postgres (DATABASE_URL names it); remove it"}),
    "database.user": Rule(CLOUDS, {DO: "app", AWS: "app", EXISTING: "app", HEROKU: "app"},
                          why=NO_DATABASE, refusals={
        HEROKU: "is chosen by Heroku Postgres (DATABASE_URL names it); remove it"}),
    "domain.certificateArn": Rule((AWS,)),
    "domain.route53Zone": Rule((AWS,)),
    "domain.dnsRecords": Rule(CLOUDS, {DO: True, AWS: True}, switch=True, refusals={
        EXISTING: "has no meaning on platform existing (the program manages no DNS there); "
                  "remove it",
        HEROKU: "has no meaning on platform heroku (Heroku hosts no DNS): point domain.name "
                "and www at the dnsTargets output with your DNS provider; remove it"}),
    "network.vpcCidr": Rule(CLOUDS, {DO: DEFAULT_VPC, AWS: DEFAULT_VPC, EXISTING: DEFAULT_VPC},
                            why="the program creates no private network there; your servers' "
                                "network is your own", refusals={
        HEROKU: "has no meaning on platform heroku: Common Runtime dynos get no private network "
                "from the program; remove it"}),
    "network.zones": Rule((AWS,), {AWS: 2}),
    "database.maxStorageGb": Rule((AWS,), refusals={
        DO: "is for RDS; DigitalOcean grows the cluster's storage by database.storageAutoscale "
            "(its ceiling is the size's own); remove it",
        HEROKU: "is set by the Heroku Postgres plan (database.size); remove it"},
        why="the program creates no database there"),
    # DigitalOcean's managed PostgreSQL: storage that grows, and PgBouncer in front of it.
    "database.storageAutoscale": Rule((DO,), {DO: True}, switch=True,
                                      why="RDS storage autoscaling is database.maxStorageGb"),
    "database.pool": Rule((DO,), {DO: False}, switch=True,
                          why="a DigitalOcean cluster's PgBouncer pool"),
    # Whole sections (stack/settings/alerts.py): CloudWatch alarms or DigitalOcean monitor
    # alerts and uptime checks; ALB access logs, flow logs.
    "alerts": Rule((AWS, DO), why="the alerts are built on AWS (CloudWatch through SNS) and "
                                  "DigitalOcean (monitor alerts and an uptime check) so far"),
    "logs": Rule((AWS,), why="access logs and flow logs are built on AWS only so far; "
                             "DigitalOcean's load balancer keeps no access logs"),
    # Keys of a front (Nginx or HAProxy) and of the hosts' rollout: a dyno has neither.
    "front": Rule(HOSTED, refusals={HEROKU: f"has no meaning: {DYNOS}; Heroku's router is the "
                                            "front; remove it"}),
    "frontWorkers": Rule(HOSTED, refusals={HEROKU: f"has no meaning: {DYNOS}; remove it"}),
    "app.listen": Rule(HOSTED, refusals={
        HEROKU: "has no meaning on platform heroku: on a host Gunicorn listens on loopback only, "
                "as the front is the public side; on a dyno it must bind 0.0.0.0:$PORT, the one "
                "port Heroku's router reaches, so the program sets that; remove it"}),
    "app.maxBodySize": Rule(HOSTED, refusals={
        HEROKU: "has no meaning on platform heroku: it is the front's limit, and a dyno has no "
                "front (check request sizes in the app, e.g. Flask's MAX_CONTENT_LENGTH); "
                "remove it"}),
    "deploy.batchSize": Rule(HOSTED, refusals={
        HEROKU: "has no meaning on platform heroku: preboot starts every new web dyno before "
                "the old ones stop; remove it"}),
    "deploy.healthTimeout": Rule(HOSTED, refusals={
        HEROKU: "has no meaning on platform heroku: Heroku gives a dyno 60 s to bind $PORT "
                "(its boot timeout) and checks nothing else; remove it"}),
    "deploy.drainSeconds": Rule(HOSTED, refusals={
        HEROKU: "has no meaning on platform heroku: preboot moves traffic to the new dynos; "
                "remove it"}),
    "deploy.undrainSeconds": Rule(HOSTED, refusals={
        HEROKU: "has no meaning on platform heroku: preboot moves traffic to the new dynos; "
                "remove it"}),
    "deploy.releasesKept": Rule(HOSTED, refusals={
        HEROKU: "has no meaning on platform heroku: Heroku keeps every release (heroku "
                "releases, heroku releases:rollback); remove it"}),
    "heroku.appName": Rule((HEROKU,)),
    "heroku.team": Rule((HEROKU,)),
    "heroku.stack": Rule((HEROKU,)),
    # The login user when ssh.user is not set: DigitalOcean always logs in as root, an AWS image
    # as its own user; existing servers have no default (the user must say).
    "ssh.user": Rule(HOSTED, {DO: "root", AWS: IMAGE_USERS}),
    # The login key the hosts are created with, and the firewall's SSH sources: existing
    # servers are not created and get no firewall.
    "ssh.publicKey": Rule(CLOUDS, why="your servers already have their login keys; the program "
                                      "creates no host there"),
    "ssh.adminCidrs": Rule(CLOUDS, why="the program creates no firewall there; limit SSH on your "
                                       "servers yourself"),
}

# Whole sections only platforms with hosts read; on Heroku each key set in them is refused.
HOST_SECTIONS: dict[str, str] = {
    "ssh": f"has no meaning: {DYNOS} (heroku run bash reaches a one-off dyno); remove it",
    "tls": "has no meaning on platform heroku: Heroku's Automated Certificate Management gives "
           "domain.name and www their certificates; remove it",
    "rateLimit": "has no meaning on platform heroku: requests are limited by the hosts' front, "
                 "and a dyno has none (limit in the app, e.g. Flask-Limiter); remove it",
    "network": "has no meaning on platform heroku: Common Runtime dynos get no private network "
               "from the program; remove it",
}

def _names(platforms: tuple[str, ...]) -> str:
    if len(platforms) == 1:
        return f"platform {platforms[0]}"
    return "platforms " + ", ".join(platforms[:-1]) + " and " + platforms[-1]


def refusal(key: str, platform: str) -> str:
    """What is said when `key` is set on `platform`, which does not take it."""
    rule = RULES[key]
    if platform in rule.refusals:
        return rule.refusals[platform]
    why = f" ({rule.why})" if rule.why else ""
    return f"is only for {_names(rule.platforms)}{why}; this stack's platform is {platform}, remove it"


@dataclass(frozen=True)
class Platform:
    """The stack's platform as the sections see it; `name` is None when it is missing or
    unknown (already reported), and then nothing that depends on it is judged."""

    name: str | None

    @property
    def cloud(self) -> bool:
        """A cloud whose machines the program creates (not Heroku: it creates dynos)."""
        return self.name in CLOUDS

    @property
    def hosted(self) -> bool:
        """The app runs on hosts the program logs in to (unknown counts as hosted, so its
        other keys are still judged)."""
        return self.name != HEROKU

    def takes(self, r: Reader, name: str) -> bool:
        """Whether this platform takes `name` under `r`; when not and it is set, says so once.
        The key counts as read either way, so it is never also called unknown."""
        key = _dotted(r, name)
        rule = RULES[key]
        if self.name in rule.platforms:
            return True
        if rule.switch:  # false is harmless anywhere; a bad value is still reported
            if r.boolean(name, False) and self.name is not None:
                r.error(name, refusal(key, self.name))
        else:
            r.raw(name)
            if r.has(name) and self.name is not None:
                r.error(name, refusal(key, self.name))
        return False

    def default(self, key: str, image: str | None = None) -> Any:
        """The default of `key` on this platform (None: none, the key is required); a default
        given per image is looked up by `image`."""
        value = RULES[key].defaults.get(self.name or "")
        if isinstance(value, Mapping):
            return value.get(image or "", next(iter(value.values())))
        return value

    def format(self, key: str) -> tuple[str, str]:
        """(regex, what it looks like) of `key`'s value on this platform."""
        return RULES[key].formats[self.name or ""]


def _dotted(r: Reader, name: str) -> str:
    return r.key(name)[len(PROJECT) + 1:]
