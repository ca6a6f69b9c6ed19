"""The `alerts` section (platforms aws and digitalocean) and the `logs` section (aws): who hears
that the stack is unwell, what makes it unwell, and what the stack keeps of its traffic.

On DigitalOcean the database's alerts are percentages of the cluster's own metrics (CPU, memory,
disk), so the RDS-sized keys (freeStorageGb, freeMemoryMb, databaseConnections) are AWS only,
and memoryPercent / diskPercent (droplets and database) are DigitalOcean only.

Defaults are sized by environment: prod alarms sooner (lower CPU, error rate and response time
limits) than staging or dev; an ephemeral (review) stack gets no paid extras unless its config
asks: no alarms, no access logs, no flow logs. The database thresholds follow its size
(`database.size`, `database.storageGb`), after an ephemeral stack was shrunk to the smallest one.
docs/alerts.md lists every alarm with its threshold and cost.
"""

from __future__ import annotations

import re
from typing import Any

from stack.settings.reader import Reader, Secret, describe
from stack.settings.schema import Alerts, Database, Logs

# What RFC 5321 lets a mailbox be, minus quoting (as tls.email).
EMAIL = r"[A-Za-z0-9.!#%&*+/=?^_{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+"
HTTPS_URL = r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?"
MAX_EMAILS = 10
# The retention periods CloudWatch Logs accepts (PutRetentionPolicy); S3 takes any, so the
# one setting uses these for both.
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                  2557, 2922, 3288, 3653)
# RDS for PostgreSQL's default max_connections: LEAST(DBInstanceClassMemory / 9531392, 5000).
CONNECTION_BYTES = 9531392
MAX_CONNECTIONS = 5000
RESERVED_MEMORY = 0.1  # what DBInstanceClassMemory leaves out of the class's memory (an estimate)
GIB = 1024 ** 3


SLACK_CHANNEL = r"#[a-z0-9][a-z0-9._-]{0,79}"
AWS_ONLY = "is only for platform aws (it sizes an RDS alarm); on digitalocean the database's " \
           "alerts are percentages: alerts.cpuPercent, alerts.memoryPercent, alerts.diskPercent; " \
           "remove it"
DO_ONLY = "is only for platform digitalocean (CloudWatch has no memory or disk metric of an " \
          "instance without the CloudWatch agent); remove it"


def environment_defaults(prod: bool) -> dict[str, int]:
    """The thresholds that depend on the environment: prod hears sooner."""
    if prod:
        return {"cpuPercent": 80, "errorRatePercent": 1, "responseTimeMs": 1000,
                "memoryPercent": 85, "diskPercent": 80}
    return {"cpuPercent": 90, "errorRatePercent": 5, "responseTimeMs": 2000,
            "memoryPercent": 90, "diskPercent": 90}


def class_memory_gib(size: str) -> float | None:
    """The memory of an RDS instance class (db.t4g.micro: 1 GiB), or None for one not known.
    The burstable (t), general (m) and memory (r, x) families double per size step."""
    match = re.fullmatch(r"db\.([a-z])[0-9]+[a-z]*\.([0-9]*)(micro|small|medium|large|xlarge)", size)
    if not match:
        return None
    family, times, step = match.groups()
    base = {"t": {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16},
            "m": {"large": 8, "xlarge": 16},
            "r": {"large": 16, "xlarge": 32},
            "x": {"large": 32, "xlarge": 64}}.get(family, {}).get(step)
    if base is None:
        return None
    if times and step != "xlarge":
        return None
    return float(base * int(times or 1))


def max_connections(size: str) -> int | None:
    """RDS for PostgreSQL's default max_connections on `size` (an estimate), or None."""
    memory = class_memory_gib(size)
    if memory is None:
        return None
    return min(int(memory * GIB * (1 - RESERVED_MEMORY) / CONNECTION_BYTES), MAX_CONNECTIONS)


def read_alerts(r: Reader, database: Database, *, prod: bool, ephemeral: bool,
                platform: str = "aws") -> Alerts:
    """alerts.*: the destinations, and the thresholds with their per-environment defaults."""
    defaults = environment_defaults(prod)
    enabled = bool(r.boolean("enabled", not ephemeral))
    email = read_emails(r)
    webhook = read_webhook(r)
    cpu = r.integer("cpuPercent", defaults["cpuPercent"], 1, 100, unit="%")
    errors = r.integer("errorRatePercent", defaults["errorRatePercent"], 1, 100, unit="%")
    response = r.integer("responseTimeMs", defaults["responseTimeMs"], 10, 60000, unit="ms")
    if platform == "digitalocean":
        for key in ("freeStorageGb", "freeMemoryMb", "databaseConnections"):
            r.raw(key)
            if r.has(key):
                r.error(key, AWS_ONLY)
        memory = r.integer("memoryPercent", defaults["memoryPercent"], 1, 100, unit="%")
        disk = r.integer("diskPercent", defaults["diskPercent"], 1, 100, unit="%")
        channel = read_slack_channel(r, webhook)
        r.finish()
        return Alerts(enabled=enabled, email=email, webhook=webhook, cpu_percent=cpu,
                      error_rate_percent=errors, response_time_ms=response, free_storage_gb=0,
                      free_memory_mb=0, database_connections=0, memory_percent=memory,
                      disk_percent=disk, slack_channel=channel)
    for key in ("memoryPercent", "diskPercent", "slackChannel"):
        r.raw(key)
        if r.has(key):
            r.error(key, DO_ONLY if key != "slackChannel" else
                    "is only for platform digitalocean (SNS posts to alerts.webhook itself); remove it")
    free_storage, free_memory, connections = read_rds_thresholds(r, database, enabled)
    r.finish()
    return Alerts(enabled=enabled, email=email, webhook=webhook, cpu_percent=cpu,
                  error_rate_percent=errors, response_time_ms=response, free_storage_gb=free_storage,
                  free_memory_mb=free_memory, database_connections=connections)


def read_rds_thresholds(r: Reader, database: Database, enabled: bool) -> tuple[int, int, int]:
    """alerts.freeStorageGb, freeMemoryMb, databaseConnections (aws): sized from the RDS class."""
    storage_default = max(1, database.storage_gb * 5 // 100)
    free_storage = r.integer("freeStorageGb", storage_default, 1, 65536, unit="GB")
    if database.storage_gb and free_storage >= database.storage_gb and not r.reported("freeStorageGb"):
        r.error("freeStorageGb", f"must be below database.storageGb ({database.storage_gb}), got "
                                 f"{free_storage}: the alarm would always fire")
    memory = class_memory_gib(database.size)
    memory_default = max(64, int(memory * 1024 * 5 / 100)) if memory else 256
    free_memory = r.integer("freeMemoryMb", memory_default, 16, 1048576, unit="MB")
    limit = max_connections(database.size)
    connections = r.integer("databaseConnections", None, 1, MAX_CONNECTIONS)
    if connections is None:
        if limit is None:
            if enabled and not r.reported("databaseConnections"):
                r.error("databaseConnections", f"is required with database.size "
                                               f"{describe(database.size)}: its default (80% of "
                                               f"the class's max_connections) is computed from "
                                               f"the memory of the db.t*, db.m*, db.r* and db.x* "
                                               f"classes only; set it to the connection count "
                                               f"that should wake someone")
            connections = 1
        else:
            connections = max(1, limit * 80 // 100)
    return free_storage, free_memory, connections


def read_slack_channel(r: Reader, webhook: Secret | None) -> str | None:
    """alerts.slackChannel (digitalocean): the channel DigitalOcean posts to through
    alerts.webhook, a Slack incoming webhook; required with it, meaningless without."""
    channel = r.string("slackChannel", None, pattern=SLACK_CHANNEL,
                       expect='a Slack channel like "#ops"')
    if webhook is not None and channel is None and not r.reported("slackChannel"):
        r.error("slackChannel", 'is required with alerts.webhook on digitalocean: DigitalOcean '
                                'posts to a Slack incoming webhook and names its channel; pulumi '
                                'config set --path alerts.slackChannel "#ops"')
    if webhook is None and channel is not None:
        r.error("slackChannel", "has no webhook to post through: set alerts.webhook (a Slack "
                                "incoming webhook's URL, as a secret) or remove it")
    return channel


def unheard(alerts: Alerts | None, *, prod: bool) -> str | None:
    """The warning for a prod stack whose alarms reach nobody (the policy pack's alerts-on-prod
    refuses its preview)."""
    if alerts is None or not prod or (alerts.email or alerts.webhook is not None):
        return None
    if not alerts.enabled:
        return ("flask-stack:alerts.enabled: false on prod: nothing tells anyone the site is down "
                "(the policy pack refuses it)")
    return ("flask-stack:alerts.email: not set on prod (nor alerts.webhook): the alarms reach "
            "nobody, and the policy pack refuses the preview; pulumi config set --path "
            "'alerts.email[0]' ops@example.com")


def read_emails(r: Reader) -> tuple[str, ...]:
    """alerts.email: one address, or a list of them (at most 10, no repeats)."""
    raw: Any = r.data.get("email")
    if isinstance(raw, str) and not raw.lstrip().startswith("["):
        address = r.string("email", None, pattern=EMAIL, expect='an email address like "ops@example.com"')
        return (address,) if address else ()

    def item(path: str, value: Any) -> str | None:
        if not isinstance(value, str) or not re.fullmatch(EMAIL, value):
            r.error_at(path, f'expected an email address like "ops@example.com", got {describe(value)}')
            return None
        return value

    found = r.string_list("email", item)
    if len(found) > MAX_EMAILS:
        r.error("email", f"has {len(found)} addresses; at most {MAX_EMAILS} (use a mailing list)")
    if len(set(found)) != len(found):
        r.error("email", "lists an address twice")
    return tuple(dict.fromkeys(found))


def read_webhook(r: Reader) -> Secret | None:
    """alerts.webhook: an https:// URL SNS posts each alarm to, plain or a secret (a chat
    webhook's URL is a credential: store it with --secret)."""
    raw = r.raw("webhook")
    if raw is None or not r.has("webhook"):
        return None
    if isinstance(raw, Secret):
        if raw.known and not re.fullmatch(HTTPS_URL, raw.value or ""):
            r.error("webhook", "must be an https:// URL (the secret's value is not shown)")
            return None
        return raw
    if not isinstance(raw, str) or not re.fullmatch(HTTPS_URL, raw):
        r.error("webhook", f"must be an https:// URL like \"https://hooks.example.com/sns\", got "
                           f"{r.show(raw)}")
        return None
    return Secret(raw)


def read_logs(r: Reader, *, prod: bool, ephemeral: bool) -> Logs:
    """logs.*: retention (prod 90 days, ephemeral 7, else 30), access logs (on unless
    ephemeral), flow logs (off unless asked: CloudWatch Logs bills their ingestion)."""
    default = 90 if prod else 7 if ephemeral else 30
    retention = r.raw("retentionDays")
    days = default
    if r.has("retentionDays") and retention is not None:
        days = r.integer("retentionDays", default, 1, 3653, unit="days")
        if days not in RETENTION_DAYS and not r.reported("retentionDays"):
            r.error("retentionDays", f"must be one of the periods CloudWatch Logs keeps logs for: "
                                     f"{', '.join(map(str, RETENTION_DAYS))}; got {days}")
            days = default
    access = bool(r.boolean("accessLogs", not ephemeral))
    flow = bool(r.boolean("flowLogs", False))
    r.finish()
    return Logs(retention_days=days, access_logs=access, flow_logs=flow)
