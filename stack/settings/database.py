"""The `database` section: the managed PostgreSQL a cloud stack creates, or the URL of the user's
own on existing servers."""

from __future__ import annotations

import re

from stack.settings import heroku
from stack.settings.checks import IDENT
from stack.settings.platforms import Platform
from stack.settings.reader import Reader, Secret
from stack.settings.schema import RESERVED_DB_USERS, Database


def read_database(r: Reader, p: Platform, *, prod: bool = False) -> Database:
    url: Secret | None = None
    if p.takes(r, "url"):
        url = r.secret_string(
            "url", required=False,
            how="pulumi config set --secret --path database.url 'postgresql://user:pass@host/db'")
        ensure_postgres_url(r, url)
    size, storage = "", 0
    if p.takes(r, "size"):
        pattern, expect = p.format("database.size")
        size = r.string("size", p.default("database.size"), pattern=pattern, expect=expect)
    if p.takes(r, "storageGb"):
        storage = r.integer("storageGb", p.default("database.storageGb"), 20, 65536, unit="GB")
    max_storage = 0
    if p.takes(r, "maxStorageGb"):
        max_storage = read_max_storage(r, storage)
    version = p.default("database.engineVersion")
    if p.takes(r, "engineVersion"):
        version = r.string("engineVersion", version, pattern=r"1[3-7]",
                           expect='a PostgreSQL major version from "13" to "17"')
    backups = p.default("database.backupRetentionDays")
    if p.takes(r, "backupRetentionDays"):
        backups = r.integer("backupRetentionDays", backups, 1, 35, unit="days")
    autoscale = bool(p.takes(r, "storageAutoscale")
                     and r.boolean("storageAutoscale", p.default("database.storageAutoscale")))
    pool = bool(p.takes(r, "pool") and r.boolean("pool", p.default("database.pool")))
    ha = p.default("database.highAvailability")
    if p.takes(r, "highAvailability"):
        ha = r.boolean("highAvailability", ha)
    if not p.hosted:  # Heroku: database.size is the Postgres plan
        size = heroku.plan(r, r.has("size"), size, bool(ha), prod)
        heroku.check_engine_version(r, version)
    name, user = p.default("database.name"), p.default("database.user")
    if p.takes(r, "name"):
        name = r.string("name", name, pattern=IDENT, expect='a database name like "app"')
    if p.takes(r, "user"):
        user = r.string("user", user, pattern=IDENT, expect='a database user name like "app"')
        ensure_user_allowed(r, user)
    r.finish()
    return Database(engine_version=version, size=size, storage_gb=storage,
                    backup_retention_days=backups, high_availability=ha, name=name, user=user,
                    url=url, max_storage_gb=max_storage,
                    storage_autoscale=autoscale, pool=pool)


def read_max_storage(r: Reader, storage: int) -> int:
    """database.maxStorageGb: storage autoscaling's ceiling (RDS max_allocated_storage), default
    4 x storageGb; 0 turns autoscaling off. RDS wants it at least 10% above storageGb."""
    default = min(4 * storage, 65536)
    value = r.integer("maxStorageGb", default, 0, 65536, unit="GB", also="or 0 (off)")
    least = -(-storage * 11 // 10)
    if value and storage and value < least and not r.reported("maxStorageGb"):
        r.error("maxStorageGb", f"must be 0 (no storage autoscaling) or at least {least} (10% "
                                f"above database.storageGb, {storage}), got {value}")
        return default
    return value


def ensure_user_allowed(r: Reader, user: str | None) -> None:
    if user in RESERVED_DB_USERS:
        r.error("user", f'"{user}" is reserved by the database service; pick another name')
    elif user and user.startswith("pg_"):
        r.error("user", f'"{user}" starts with pg_, which PostgreSQL reserves for its own roles '
                        f'(creating it fails); pick another name, e.g. "{user[3:] or "app"}"')


def ensure_postgres_url(r: Reader, url: Secret | None) -> None:
    if url is not None and url.known and not re.match(r"postgres(ql)?://", url.value or ""):
        r.error("url", "must start with postgresql:// (the secret's value is not shown)")
