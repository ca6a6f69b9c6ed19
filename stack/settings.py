"""The stack's settings: read once from the stack config, validated completely, frozen.

`load(raw, stack=..., project_dir=...)` takes the project's config keys (without the
``flask-stack:`` prefix) and returns `Settings` or raises `SettingsError` listing every problem,
each naming its key path. Nothing else in the program reads config; defaults live here only.

Where the values come from:
- under `pulumi up`/`preview`: `from_pulumi()` (the CLI hands the decrypted config over);
- offline (`python -m stack render`): `from_stack_file()` reads ``Pulumi.<stack>.yaml``; its
  ``secure:`` values cannot be decrypted there and become unknown `Secret`s.
"""

from __future__ import annotations

import ast
import contextlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.reader import Reader, Secret, SettingsError, _as_int, _text, cidr_item, describe

PROJECT = "flask-stack"
PLATFORMS = ("digitalocean", "aws", "existing")
CLOUDS = ("digitalocean", "aws")
IMAGES = ("debian-12", "ubuntu-24.04", "ubuntu-22.04")
ARCHES = ("x86_64", "aarch64")
FRONTS = ("nginx", "haproxy")
WORKER_CLASSES = ("gthread", "sync", "gevent")
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"

# Per-platform defaults: the smallest sizes that run the default app well.
PLATFORM_DEFAULTS: dict[str, dict[str, str]] = {
    "digitalocean": {"hostSize": "s-1vcpu-1gb", "databaseSize": "db-s-1vcpu-1gb", "sshUser": "root"},
    "aws": {"hostSize": "t3.small", "databaseSize": "db.t4g.micro", "sshUser": "admin"},
    "existing": {"hostSize": "", "databaseSize": "", "sshUser": ""},
}
# Login user of the cloud images when ssh.user is not set (DigitalOcean always logs in as root).
IMAGE_USERS = {"debian-12": "admin", "ubuntu-24.04": "ubuntu", "ubuntu-22.04": "ubuntu"}
# The exact version of each image's system Python (`python3`, which the release venv uses), as
# the distributions ship it: Debian 12 python3.11 3.11.2-6+deb12u* (packages.debian.org/bookworm,
# and `apt-cache policy python3.11` on a bookworm machine), Ubuntu 24.04 python3.12 3.12.3-1ubuntu*
# and Ubuntu 22.04 python3.10 3.10.12-1~22.04.* (packages.ubuntu.com noble, jammy). Their
# security updates backport fixes and keep the upstream version, so it stays what markers see.
IMAGE_PYTHON = {"debian-12": "3.11.2", "ubuntu-24.04": "3.12.3", "ubuntu-22.04": "3.10.12"}

# Names that would collide with system users, units or paths on the host.
RESERVED_APP_NAMES = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "nobody", "nginx", "haproxy", "ssh", "sshd", "systemd",
    "postgres", "postgresql", "admin", "ubuntu", "debian", "deploy", "cron", "dbus", "network",
    "networking", "journal",
})
RESERVED_ENV = frozenset({"DATABASE_URL", "PATH", "HOME", "USER", "PYTHONPATH", "LISTEN_FDS",
                          "LISTEN_PID", "NOTIFY_SOCKET", "FLASK_STACK_RELEASE"})
PROD_STACKS = frozenset({"prod", "production"})
RESERVED_DB_USERS = frozenset({"postgres", "admin", "rdsadmin", "doadmin", "root", "public"})

_NAME = r"[a-z][a-z0-9-]{0,30}[a-z0-9]"
_HOSTNAME = r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
_IDENT = r"[a-z_][a-z0-9_]{0,62}"
_ENV_KEY = r"[A-Za-z_][A-Za-z0-9_]*"


# -- the settings ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Hosts:
    count: int
    size: str
    image: str
    arch: str  # x86_64 | aarch64: what the release's wheels are built for
    python: str  # "3.11.2": the hosts' python3, which the requirements are resolved for
    addresses: tuple[str, ...]  # platform existing only
    trusted_proxies: tuple[str, ...]  # platform existing: CIDRs of a load balancer of the user's
    disk_gb: int  # aws: the root volume (DigitalOcean sizes fix the disk)


@dataclass(frozen=True)
class Database:
    engine_version: str
    size: str
    storage_gb: int
    backup_retention_days: int
    high_availability: bool
    name: str
    user: str
    url: Secret | None  # platform existing: the database the user already has


@dataclass(frozen=True)
class App:
    name: str
    path: Path
    entry: str  # module:attr or module:factory(...)
    env: tuple[tuple[str, str], ...]
    secret_env: tuple[tuple[str, Secret], ...]
    workers: int | None  # None: from the host's CPUs
    worker_class: str
    threads: int
    timeout: int
    graceful_timeout: int
    keepalive: int
    max_requests: int
    listen: str  # "unix" or a loopback host:port
    static_url: str
    static_dir: str | None  # relative to the app; None when the app has none
    max_body_size: str
    release_command: str | None

    @property
    def module(self) -> str:
        return self.entry.split(":", 1)[0]

    @property
    def attribute(self) -> str:
        return self.entry.split(":", 1)[1]


@dataclass(frozen=True)
class Domain:
    name: str | None
    www_redirect: bool
    certificate_arn: str | None  # aws: an ACM certificate the load balancer serves
    route53_zone: str | None  # aws: the public hosted zone to issue a certificate and records in
    dns_records: bool  # point the domain (and www) at the load balancer in the cloud's DNS

    @property
    def server_names(self) -> tuple[str, ...]:
        return (self.name,) if self.name else ()


@dataclass(frozen=True)
class Tls:
    enabled: bool  # the hosts terminate TLS themselves (single-host mode or existing servers)
    email: str | None
    acme_directory: str
    # PEM of the CA(s) behind a private ACME server's own HTTPS certificate; None for a server
    # with a publicly trusted one (Let's Encrypt).
    acme_ca_bundle: str | None = None


@dataclass(frozen=True)
class RateLimit:
    enabled: bool
    requests_per_second: int
    burst: int


@dataclass(frozen=True)
class Deploy:
    batch_size: int
    health_path: str
    health_timeout: int
    releases_kept: int


@dataclass(frozen=True)
class Bastion:
    host: str
    user: str
    port: int


@dataclass(frozen=True)
class Ssh:
    user: str
    port: int
    public_key: str | None
    private_key: Secret | None
    admin_cidrs: tuple[str, ...]
    host_key: str | None
    bastion: Bastion | None


@dataclass(frozen=True)
class Network:
    vpc_cidr: str
    zones: int  # aws: availability zones the subnets span


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    platform: str
    region: str | None
    load_balancer: bool
    hosts: Hosts
    database: Database
    app: App
    domain: Domain
    tls: Tls
    front: str
    # Nginx worker processes or HAProxy threads; None = auto (Nginx: half the host's CPUs, at
    # least one; HAProxy: one thread per CPU), decided on the host from its CPUs.
    front_workers: int | None
    rate_limit: RateLimit
    deploy: Deploy
    ssh: Ssh
    network: Network
    ephemeral: bool
    expires_at: str | None  # ephemeral stacks: when the cleanup job may destroy it (UTC, ISO 8601)
    do_project: bool  # digitalocean: group the stack's resources in a DigitalOcean project
    deferred: tuple[str, ...] = ()  # offline only: what a deploy will still need set
    warnings: tuple[str, ...] = ()  # valid, but probably not what the user wants: said, not refused

    @property
    def is_prod(self) -> bool:
        """The production stack: protection can never be turned off there."""
        return self.stack in PROD_STACKS

    @property
    def trusted_proxies(self) -> tuple[str, ...]:
        """Networks whose X-Forwarded-* headers the front believes: the cloud load balancer's
        VPC, or the proxies the user named for existing servers; empty when the front faces the
        internet itself."""
        if self.platform in CLOUDS:
            return (self.network.vpc_cidr,) if self.load_balancer else ()
        return self.hosts.trusted_proxies


# -- loading --------------------------------------------------------------------------------
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
    errors: list[str] = []
    deferred: list[str] | None = [] if offline else None
    top = Reader(raw, f"{PROJECT}:", errors, deferred=deferred)

    def section(name: str) -> Reader:
        return top.section(name, secret=name in secret_keys)

    platform = top.choice("platform", PLATFORMS)
    cloud = platform in CLOUDS
    defaults = PLATFORM_DEFAULTS.get(platform or "existing", PLATFORM_DEFAULTS["existing"])

    region = _region(top, platform)
    load_balancer = top.boolean("loadBalancer", cloud)
    if platform == "existing" and load_balancer:
        top.error("loadBalancer", "must be false on platform existing (the program creates no "
                                  "load balancer there; list yours in hosts.trustedProxies)")
        load_balancer = False

    hosts = _hosts(section("hosts"), platform, defaults, errors)
    if cloud and not load_balancer and hosts.count != 1:
        errors.append(f"{PROJECT}:hosts.count: must be 1 when loadBalancer is false (single-host "
                      f"mode), got {hosts.count}; set loadBalancer: true to spread traffic over hosts")
    database = _database(section("database"), platform, defaults)
    app = _app(section("app"), project_dir, errors)
    domain = _domain(section("domain"), platform, region, load_balancer)
    tls = _tls(section("tls"), domain, cloud, load_balancer)
    front = top.choice("front", FRONTS, "nginx")
    front_workers = None  # at most 64: HAProxy's threads in one group
    if top.raw("frontWorkers") not in (None, "auto"):
        front_workers = top.integer("frontWorkers", None, 1, 64)
    rate_limit = _rate_limit(section("rateLimit"))
    deploy = _deploy(section("deploy"), app)
    ssh = _ssh(section("ssh"), platform, hosts.image, defaults, errors)
    network = _network(section("network"), platform, errors)
    ephemeral = _ephemeral(top, stack)
    expires_at = _expires_at(top, ephemeral)
    if ephemeral and platform in CLOUDS:
        hosts, database = _smallest(hosts, database, defaults)
    do_project = top.boolean("doProject", platform == "digitalocean")
    if do_project and platform != "digitalocean" and platform is not None:
        top.error("doProject", "is only for platform digitalocean; remove it")
    top.finish()

    if errors:
        raise SettingsError(errors)
    warnings = []
    if platform == "existing" and hosts.count > 1 and database.url is None:
        warnings.append(
            f"{PROJECT}:database.url: not set, with {hosts.count} hosts: each host keeps its own "
            f"files under /var/lib/{app.name} ($STATE_DIRECTORY), so an app on SQLite gets a "
            "separate database on every host, and app.releaseCommand sets up only the first one's. "
            "Set database.url to a PostgreSQL server all hosts share, or deploy to one host")
    return Settings(
        project=PROJECT, stack=stack, platform=platform, region=region,
        load_balancer=load_balancer, hosts=hosts, database=database, app=app, domain=domain,
        tls=tls, front=front, front_workers=front_workers, rate_limit=rate_limit, deploy=deploy,
        ssh=ssh, network=network,
        ephemeral=ephemeral, expires_at=expires_at, do_project=bool(do_project),
        deferred=tuple(deferred or ()), warnings=tuple(warnings),
    )


def _region(top: Reader, platform: str | None) -> str | None:
    if platform == "digitalocean":
        return top.string("region", pattern=r"[a-z]{3}[0-9]", expect='a DigitalOcean region like "nyc3"')
    if platform == "aws":
        return top.string("region", pattern=r"[a-z]{2}(-gov)?-[a-z]+-[0-9]",
                          expect='an AWS region like "eu-west-1"')
    if top.has("region") and platform == "existing":
        top.error("region", "has no meaning on platform existing; remove it")
    top.raw("region")
    return None


def _hosts(r: Reader, platform: str | None, defaults: dict[str, str], errors: list[str]) -> Hosts:
    cloud = platform in CLOUDS
    addresses: tuple[str, ...] = ()
    if platform == "existing":
        addresses = r.string_list("addresses", _address_item(errors))
        if not addresses and not any(e.startswith(r.key("addresses")) for e in errors):
            r.error("addresses", 'is required on platform existing: list the servers, e.g. '
                                 '["203.0.113.10", "app2.example.com"]')
        if len(set(addresses)) != len(addresses):
            r.error("addresses", "lists the same server twice")
        if r.has("count") and addresses and _as_int(r.raw("count")) != len(addresses):
            r.error("count", "is taken from hosts.addresses on platform existing; remove it")
        count = len(addresses) or 1
        r.raw("count")
    else:
        count = r.integer("count", 2, 1, 100)
        if platform is None:  # missing or unknown: already reported, judge nothing that depends on it
            r.raw("addresses")
    size = ""
    if cloud:
        if platform == "aws":
            size = r.string("size", defaults["hostSize"], pattern=r"[a-z][a-z0-9-]*\.[a-z0-9]+",
                            expect='an EC2 instance type like "t3.small"')
        else:
            size = r.string("size", defaults["hostSize"], pattern=r"[a-z0-9]+(-[a-z0-9]+)+",
                            expect='a droplet size slug like "s-1vcpu-1gb"')
    elif r.has("size") and platform == "existing":
        r.error("size", "has no meaning on platform existing; remove it")
    r.raw("size")
    image = r.choice("image", IMAGES, "debian-12")
    # AWS Graviton families carry a "g" after the generation digit (t4g, m7g, c7gn, r6gd).
    graviton = platform == "aws" and bool(size) and re.match(r"[a-z]+[0-9]+[a-z]*g[a-z]*\.", size)
    arch = r.choice("arch", ARCHES, "aarch64" if graviton else "x86_64")
    if platform == "digitalocean" and arch == "aarch64":
        r.error("arch", "DigitalOcean droplets are x86_64 only; remove it")
    elif platform == "aws" and arch and size and (arch == "aarch64") != bool(graviton):
        r.error("arch", f"{arch} does not match the instance type {size} "
                        f"({'Graviton, aarch64' if graviton else 'x86_64'}); remove hosts.arch")
    python = r.string("python", IMAGE_PYTHON.get(image, IMAGE_PYTHON["debian-12"]),
                      pattern=r"3\.[0-9]{1,2}\.[0-9]{1,3}",
                      expect=f'the hosts\' exact python3 version like "3.11.4" (default: the image\'s, '
                             f'{IMAGE_PYTHON.get(image, IMAGE_PYTHON["debian-12"])})')
    disk = 0
    if platform == "aws":
        disk = r.integer("diskGb", 20, 8, 16384, unit="GB")
    elif r.has("diskGb") and platform is not None:
        r.error("diskGb", "is only for platform aws (a droplet size fixes its disk); remove it"
                if platform == "digitalocean" else "has no meaning on platform existing; remove it")
    r.raw("diskGb")
    proxies: tuple[str, ...] = ()
    r.raw("trustedProxies")
    if r.has("trustedProxies"):
        if cloud:
            r.error("trustedProxies", "is only for platform existing; on a cloud platform the load "
                                      "balancer's network is trusted automatically")
            r.raw("trustedProxies")
        else:
            proxies = r.string_list("trustedProxies", cidr_item(
                errors, world="would let any client forge X-Forwarded-For; list only your load "
                              "balancer's addresses"))
    r.finish()
    return Hosts(count=count, size=size, image=image, arch=arch or "x86_64", python=python,
                 addresses=addresses,
                 trusted_proxies=proxies, disk_gb=disk or 0)


def _address_item(errors: list[str]):
    def check(path: str, value: Any) -> str | None:
        if isinstance(value, str):
            text = value.strip().lower()
            try:
                return str(ipaddress.ip_address(text))
            except ValueError:
                if re.fullmatch(_HOSTNAME, text):
                    return text
        errors.append(f'{path}: expected an IP address or host name like "203.0.113.10", '
                      f"got {describe(value)}")
        return None

    return check


def _database(r: Reader, platform: str | None, defaults: dict[str, str]) -> Database:
    url: Secret | None = None
    size, storage = "", 0
    if platform == "existing":
        url = r.secret_string(
            "url", required=False,
            how="pulumi config set --secret --path database.url 'postgresql://user:pass@host/db'")
        if url is not None and url.known and not re.match(r"postgres(ql)?://", url.value or ""):
            r.error("url", "must start with postgresql:// (the secret's value is not shown)")
    elif platform in CLOUDS:
        if r.has("url"):
            r.error("url", "is made by the program on a cloud platform; remove it")
            r.raw("url")
        if platform == "aws":
            size = r.string("size", defaults["databaseSize"], pattern=r"db\.[a-z0-9]+\.[a-z0-9]+",
                            expect='an RDS instance class like "db.t4g.micro"')
            storage = r.integer("storageGb", 20, 20, 65536, unit="GB")
        else:
            size = r.string("size", defaults["databaseSize"], pattern=r"db-[a-z0-9]+(-[a-z0-9]+)*",
                            expect='a database size slug like "db-s-1vcpu-1gb"')
            if r.has("storageGb"):
                r.error("storageGb", "is set by database.size on DigitalOcean; remove it")
                r.raw("storageGb")
    else:  # missing or unknown platform: already reported
        for key in ("url", "size", "storageGb"):
            r.raw(key)
    version = r.string("engineVersion", "16", pattern=r"1[3-7]",
                       expect='a PostgreSQL major version from "13" to "17"')
    if platform == "digitalocean" and r.has("backupRetentionDays"):
        r.error("backupRetentionDays", "DigitalOcean keeps 7 days of backups of a managed database, "
                                       "with point-in-time recovery; it cannot be changed, remove it")
        r.raw("backupRetentionDays")
    backups = r.integer("backupRetentionDays", 7, 1, 35, unit="days")
    ha = r.boolean("highAvailability", False)
    name = r.string("name", "app", pattern=_IDENT, expect='a database name like "app"')
    user = r.string("user", "app", pattern=_IDENT, expect='a database user name like "app"')
    if user in RESERVED_DB_USERS:
        r.error("user", f'"{user}" is reserved by the database service; pick another name')
    r.finish()
    return Database(engine_version=version, size=size, storage_gb=storage,
                    backup_retention_days=backups, high_availability=ha, name=name, user=user,
                    url=url)


def _app(r: Reader, project_dir: Path, errors: list[str]) -> App:
    name = r.string("name", "app", pattern=_NAME,
                    expect='a short lower-case name like "myapp" (letters, digits, dashes)')
    if name in RESERVED_APP_NAMES:
        r.error("name", f'"{name}" is a system name on the hosts; pick another, e.g. "{name}-app"')
    path_text = r.string("path", "app", expect="the app's directory, relative to Pulumi.yaml",
                         check=_check_one_line)
    path = (project_dir / path_text).resolve() if path_text is not None else project_dir
    entry = r.string("entry", "rocket:app", check=_check_entry,
                     expect='a WSGI entry like "rocket:app" or "myapp:create_app()"')
    if path_text is not None and entry:  # "" is the project's own directory, checked like any other
        _check_app_dir(r, path, path_text, entry)

    env = _env(r, "env", errors)
    secret_env = _secret_env(r, errors)
    clash = sorted(set(dict(env)) & set(dict(secret_env)))
    if clash:
        r.error("secretEnv", f"{', '.join(clash)} also set in app.env; keep each name in one place")

    workers: int | None = None
    if r.raw("workers") not in (None, "auto"):
        workers = r.integer("workers", None, 1, 64)
    worker_class = r.choice("workerClass", WORKER_CLASSES, "gthread")
    threads_set = r.has("threads")
    threads = r.integer("threads", 32 if worker_class == "gthread" else 1, 1, 64)
    if threads_set and worker_class != "gthread" and threads != 1:
        r.error("threads", f"only applies to workerClass gthread (it is {worker_class}); "
                           "remove threads or set workerClass: gthread")
    timeout = r.integer("timeout", 30, 1, 3600, unit="seconds")
    graceful = r.integer("gracefulTimeout", 30, 1, 3600, unit="seconds")
    keepalive = r.integer("keepalive", 20, 0, 3600, unit="seconds")
    max_requests = r.integer("maxRequests", 0, 0, 1_000_000)
    listen = r.string("listen", "unix", check=_check_listen,
                      expect='"unix" or a loopback address like "127.0.0.1:8000"')
    static_url = r.string("staticUrl", "/static", pattern=r"/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*",
                          expect='a URL path like "/static" (no trailing slash)')
    explicit_static = r.has("staticDir")
    static_dir = r.string("staticDir", None, pattern=r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*",
                          expect='a directory inside the app like "static" or "myapp/static"',
                          check=_check_inside)
    if explicit_static and static_dir:
        if _is_dir(path) and not _is_dir(path / static_dir):
            r.error("staticDir", f"{path_text}/{static_dir} is not a directory in the app; point it "
                                 "at the folder Flask serves /static from")
            static_dir = None
    elif not explicit_static:
        static_dir = _flask_static_dir(path, entry)
    body = r.string("maxBodySize", "10m", pattern=r"[1-9][0-9]{0,5}[kKmMgG]?",
                    expect='a size like "10m", "512k" or "1g"')
    if body and _size_bytes(body) > 4 * 1024**3:
        r.error("maxBodySize", f"must be at most 4g, got {describe(body)}")
    release_command = r.string("releaseCommand", None, check=_check_one_line,
                               expect='a command like "flask db upgrade"')
    r.finish()
    return App(name=name, path=path, entry=entry, env=env, secret_env=secret_env, workers=workers,
               worker_class=worker_class, threads=threads, timeout=timeout,
               graceful_timeout=graceful, keepalive=keepalive, max_requests=max_requests,
               listen=listen, static_url=static_url, static_dir=static_dir, max_body_size=body,
               release_command=release_command)


def _check_inside(text: str) -> str | None:
    return 'must stay inside the app (no "..")' if ".." in text.split("/") else None


def _check_entry(text: str) -> str | None:
    how = 'expected "module:attribute" or "module:factory()", e.g. "rocket:app"'
    module, sep, expr = text.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", module):
        return f"{how}, got {describe(text)}"
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return f"{how}, got {describe(text)}"
    if isinstance(node, ast.Call):
        try:
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                ast.literal_eval(arg)
        except (ValueError, TypeError, MemoryError, RecursionError):
            return f"factory arguments must be literals (strings, numbers), got {describe(text)}"
        if any(k.arg is None for k in node.keywords):
            return f"factory arguments must be literals (strings, numbers), got {describe(text)}"
        node = node.func
    while isinstance(node, ast.Attribute):
        node = node.value
    if not isinstance(node, ast.Name):
        return f"{how}, got {describe(text)}"
    return None


def _flask_static_dir(path: Path, entry: str | None) -> str | None:
    """Where Flask keeps the app's static files unless told otherwise: `static/` beside the
    module that makes the app. Tried in order: the app's top folder, then the entry module's own
    folder (a package's `myapp/static`); None when neither exists."""
    candidates = ["static"]
    if entry and _check_entry(entry) is None:
        parts = entry.split(":", 1)[0].split(".")
        if _is_file(path.joinpath(*parts, "__init__.py")):
            candidates.append("/".join([*parts, "static"]))
        elif len(parts) > 1:
            candidates.append("/".join([*parts[:-1], "static"]))
    return next((c for c in candidates if _is_dir(path / c)), None)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # name too long, NUL byte, ...
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _check_app_dir(r: Reader, path: Path, path_text: str, entry: str) -> None:
    if not _is_dir(path):
        r.error("path", f"{path_text} is not a directory (looked at {path}); point it at your "
                        "Flask app's folder")
        return
    module = entry.split(":", 1)[0].split(".")
    as_file = path.joinpath(*module[:-1], module[-1] + ".py")
    as_pkg = path.joinpath(*module, "__init__.py")
    if not _is_file(as_file) and not _is_file(as_pkg):
        r.errors.append(f"{r.key('entry')}: module {'.'.join(module)!r} not found in {path_text} "
                        f"(looked for {as_file.relative_to(path)} and {as_pkg.relative_to(path)})")
    if not _is_file(path / "requirements.txt") and not _is_file(path / "pyproject.toml"):
        r.error("path", f"{path_text} has no requirements.txt or pyproject.toml; the hosts install "
                        "the app's dependencies from one of them")


def _env(r: Reader, name: str, errors: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for key, value in sorted(r.mapping(name).items(), key=lambda kv: str(kv[0])):
        path = f"{r.key(name)}.{key}"
        if not _env_key_ok(path, key, errors):
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = _text(value) if isinstance(value, str | int | float) else None
        if text is None:  # a secret, an object, a list, nothing, or a number too long to write
            errors.append(f"{path}: expected a string, got {describe(value)}"
                          + ("; secrets go in app.secretEnv" if isinstance(value, Secret) else ""))
            continue
        value = text
        problem = _check_one_line(value)
        if problem:
            errors.append(f"{path}: {problem}")
            continue
        out.append((key, value))
    return tuple(out)


def _secret_env(r: Reader, errors: list[str]) -> tuple[tuple[str, Secret], ...]:
    out = []
    for key, value in sorted(r.mapping("secretEnv").items(), key=lambda kv: str(kv[0])):
        path = f"{r.key('secretEnv')}.{key}"
        if not _env_key_ok(path, key, errors):
            continue
        if isinstance(value, str) and r.secret:
            value = Secret(value)
        if not isinstance(value, Secret):
            errors.append(f"{path}: is stored in plain text; it must be a secret: "
                          f"pulumi config set --secret --path app.secretEnv.{key} VALUE")
            continue
        if value.known and "\n" in (value.value or ""):
            errors.append(f"{path}: must be one line (the secret's value is not shown)")
            continue
        out.append((key, value))
    return tuple(out)


def _env_key_ok(path: str, key: Any, errors: list[str]) -> bool:
    if not isinstance(key, str) or not re.fullmatch(_ENV_KEY, key):
        errors.append(f"{path}: is not a valid environment variable name (letters, digits, _)")
        return False
    if key in RESERVED_ENV:
        errors.append(f"{path}: {key} is set by the program itself; pick another name")
        return False
    return True


def _check_one_line(text: str) -> str | None:
    if "\n" in text or "\r" in text or "\0" in text:
        return "must be one line"
    return None


def _check_listen(text: str) -> str | None:
    if text == "unix":
        return None
    how = f'expected "unix" or a loopback address like "127.0.0.1:8000" or "[::1]:8000", got {describe(text)}'
    host, sep, port = text.rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or not 1024 <= int(port) <= 65535:
        return how
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        addr = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        return how
    if (addr.version == 6) != bracketed:  # Gunicorn reads "::1:8000" as host "::1:8000", no port
        return how
    if not addr.is_loopback:
        return (f"Gunicorn must listen on loopback only (it is not built to face the network), "
                f'got {describe(text)}; use "127.0.0.1:{port}" or "unix"')
    return None


def _size_bytes(text: str) -> int:
    unit = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1].lower(), 1)
    return int(text.rstrip("kKmMgG")) * unit


def _domain(r: Reader, platform: str | None, region: str | None, load_balancer: bool) -> Domain:
    name = r.string("name", None, pattern=_HOSTNAME, expect='a domain name like "example.com"')
    www = r.boolean("wwwRedirect", True)
    if name and name.startswith("www.") and www:
        r.error("name", f'give the bare domain ("{name[4:]}"); www.{name[4:]} is redirected to it '
                        "(or set wwwRedirect: false)")
    arn = zone = None
    if platform == "aws":
        arn = r.string("certificateArn", None,
                       pattern=r"arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}",
                       expect='an ACM certificate ARN like "arn:aws:acm:eu-west-1:123456789012:'
                              'certificate/0a1b2c3d-..."')
        if arn and region and arn.split(":")[3] != region:
            r.error("certificateArn", f"is in region {arn.split(':')[3]}, but the load balancer is in "
                                      f"{region}; an ALB can only use a certificate from its own region")
        zone = r.string("route53Zone", None, pattern=_HOSTNAME,
                        expect='the Route 53 public hosted zone name like "example.com"')
        if arn and zone:
            r.error("certificateArn", "and domain.route53Zone both give the load balancer a "
                                      "certificate; keep one (route53Zone issues one for you)")
        if zone and name and not (name == zone or name.endswith("." + zone)):
            r.error("route53Zone", f"{zone} does not hold domain.name {name}")
        if (arn or zone) and not name:
            r.error("certificateArn" if arn else "route53Zone", "needs domain.name")
        if arn and not load_balancer:
            r.error("certificateArn", "is for the load balancer; in single-host mode (loadBalancer: "
                                      "false) the host gets its certificate itself (tls.enabled)")
        if name and load_balancer and not r.has("certificateArn") and not r.has("route53Zone"):
            r.error("name", "needs a certificate for the load balancer's HTTPS listener: set "
                            "domain.route53Zone (the public hosted zone; a certificate is issued "
                            "and validated through it) or domain.certificateArn (an ACM certificate "
                            "you already have)")
    else:
        for key in ("certificateArn", "route53Zone"):
            if r.has(key) and platform is not None:
                r.error(key, "is only for platform aws; remove it")
            r.raw(key)
    records = r.boolean("dnsRecords", platform in CLOUDS)
    if records and platform == "existing":
        r.error("dnsRecords", "has no meaning on platform existing (the program manages no DNS "
                              "there); remove it")
    r.finish()
    return Domain(name=name, www_redirect=www, certificate_arn=arn, route53_zone=zone,
                  dns_records=bool(records) and bool(name) and platform in CLOUDS
                  and (platform != "aws" or bool(zone)))


def _tls(r: Reader, domain: Domain, cloud: bool, load_balancer: bool) -> Tls:
    enabled = r.boolean("enabled", False)
    email = r.string("email", None, pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+",
                     expect='an email address like "ops@example.com"')
    directory = r.string("acmeDirectory", LETS_ENCRYPT, pattern=r"https://[^\s]+",
                         expect="an https:// ACME directory URL")
    bundle = r.string("acmeCaBundle", None, check=_pem_certificates,
                      expect="PEM certificates (-----BEGIN CERTIFICATE----- ...)")
    if enabled:
        if not domain.name:
            r.error("enabled", "needs domain.name: certificates are issued for a domain")
        if cloud and load_balancer:
            r.error("enabled", "hosts terminate TLS only in single-host mode (loadBalancer: false); "
                               "behind the load balancer, domain.name gives the balancer a certificate")
        if not email:
            r.error("email", "is required when tls.enabled is true (the ACME account's contact)")
    if bundle and directory == LETS_ENCRYPT:
        r.error("acmeCaBundle", "is for a private ACME server (tls.acmeDirectory); Let's Encrypt's "
                                "certificate is publicly trusted, so remove it")
    r.finish()
    return Tls(enabled=enabled, email=email, acme_directory=directory,
               acme_ca_bundle=bundle.strip() + "\n" if bundle else None)


_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s*\n[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


def _pem_certificates(text: str) -> str | None:
    """None when `text` is one or more PEM certificates and nothing else."""
    rest = _PEM_CERT.sub("", text.strip()).strip()
    if not _PEM_CERT.search(text) or rest:
        return ("expected PEM certificates (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----) "
                "of the CA behind the ACME server's HTTPS, and nothing else (never a private key)")
    return None


def _rate_limit(r: Reader) -> RateLimit:
    enabled = r.boolean("enabled", False)
    rps = r.integer("requestsPerSecond", 10, 1, 100_000)
    burst = r.integer("burst", 20, 0, 1_000_000)
    r.finish()
    return RateLimit(enabled=enabled, requests_per_second=rps, burst=burst)


def _deploy(r: Reader, app: App) -> Deploy:
    batch = r.integer("batchSize", 1, 1, 100)
    health = r.string("healthPath", "/healthz", pattern=r"/[A-Za-z0-9._~/-]*",
                      expect='a URL path like "/healthz"')
    if health and app.static_url and (health + "/").startswith(app.static_url + "/"):
        r.error("healthPath", f"is under app.staticUrl ({app.static_url}), so the front would serve "
                              "it from disk and never ask the app")
    timeout = r.integer("healthTimeout", 60, 5, 900, unit="seconds")
    kept = r.integer("releasesKept", 5, 2, 50)
    r.finish()
    return Deploy(batch_size=batch, health_path=health, health_timeout=timeout, releases_kept=kept)


def _ssh(r: Reader, platform: str | None, image: str, defaults: dict[str, str],
         errors: list[str]) -> Ssh:
    cloud = platform in CLOUDS
    default_user = defaults["sshUser"]
    if platform == "aws":
        default_user = IMAGE_USERS.get(image, "admin")
    user_pattern = r"[a-z_][a-z0-9_-]{0,31}"
    user = r.string("user", default_user or None, pattern=user_pattern,
                    expect='a login name like "deploy"')
    if platform == "existing" and r.data.get("user") is None:
        r.needed_to_deploy("user", 'is required on platform existing: the login name with sudo rights '
                                   'on your servers, e.g. "deploy"')
    port = r.integer("port", 22, 1, 65535)
    public_key = r.string("publicKey", None, check=_check_public_key,
                          expect='an OpenSSH public key like "ssh-ed25519 AAAA... you@laptop"')
    public_key = public_key.strip() if public_key else None
    if cloud and public_key is None and r.data.get("publicKey") is None:
        r.needed_to_deploy("publicKey", "is required to create the hosts' login key: pulumi config "
                                        'set --path ssh.publicKey "$(cat ~/.ssh/id_ed25519.pub)"')
    private_key = r.secret_string(
        "privateKey", required=True,
        how="pulumi config set --secret --path ssh.privateKey < ~/.ssh/id_ed25519")
    if private_key is not None and private_key.known:
        text = (private_key.value or "").strip()
        if not (text.startswith("-----BEGIN ") and text.endswith("PRIVATE KEY-----")):
            r.error("privateKey", "is not a PEM/OpenSSH private key (expected -----BEGIN ... "
                                  "PRIVATE KEY-----); the secret's value is not shown")
    bastion = None
    if r.has("bastion"):
        b = r.section("bastion")
        host = b.string("host", check=_check_address,
                        expect='the bastion\'s address like "203.0.113.5" or "bastion.example.com"')
        b_user = b.string("user", user or "root", pattern=user_pattern, expect="a login name")
        b_port = b.integer("port", 22, 1, 65535)
        b.finish()
        bastion = Bastion(host=(host or "").strip().lower(), user=b_user or "", port=b_port)
    cidrs = r.string_list("adminCidrs", cidr_item(errors))
    cidrs_bad = any(e.startswith(r.key("adminCidrs")) for e in errors)
    if cloud and not cidrs and bastion is None and not cidrs_bad:
        r.needed_to_deploy("adminCidrs", "is empty, so nothing could reach the hosts over SSH to deploy "
                                         'them; add the address you run pulumi from, e.g. '
                                         '["203.0.113.7/32"], or set ssh.bastion')
    if (cloud and not cidrs and bastion is not None and bastion.host
            and _check_address(bastion.host) is None and not _is_ip(bastion.host) and not cidrs_bad):
        r.needed_to_deploy("adminCidrs", f"is empty and ssh.bastion.host is a name ({bastion.host}), so "
                                         "the hosts' firewall would let nothing reach SSH; add "
                                         'the bastion\'s public address, e.g. ["198.51.100.20/32"], '
                                         "or give ssh.bastion.host as an IP address")
    host_key = r.string("hostKey", None, check=_check_public_key,
                        expect='the host\'s public key like "ssh-ed25519 AAAA..."')
    host_key = host_key.strip() if host_key else None
    r.finish()
    return Ssh(user=user or "", port=port, public_key=public_key or None, private_key=private_key,
               admin_cidrs=cidrs, host_key=host_key, bastion=bastion)


_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
              "ecdsa-sha2-nistp521")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_address(text: str) -> str | None:
    value = text.strip().lower()
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        if re.fullmatch(_HOSTNAME, value):
            return None
    return f'expected an IP address or host name like "203.0.113.5", got {describe(text)}'


def _check_public_key(text: str) -> str | None:
    import base64
    import binascii

    if "PRIVATE KEY" in text:  # never echo a private key pasted into the wrong place
        return ("is a private key (not shown); give the public key, the contents of the .pub file, "
                "and keep the private key in ssh.privateKey as a secret")
    if "\n" in text.strip() or "\r" in text or "\0" in text:
        return "must be one line: a single OpenSSH public key"
    parts = text.split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        return (f'expected an OpenSSH public key ("{_KEY_TYPES[0]} AAAA..."), got {describe(text)}; '
                "use the contents of the .pub file")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return f"the key's base64 part is damaged, got {describe(text)}"
    if not blob[4:].startswith(parts[0].encode()):
        return f"the key's type does not match its data, got {describe(text)}"
    return None


def _network(r: Reader, platform: str | None, errors: list[str]) -> Network:
    cidr = r.string("vpcCidr", "10.20.0.0/16", expect='a private CIDR like "10.20.0.0/16"')
    if cidr:
        try:
            net = ipaddress.ip_network(cidr, strict=True)
            if not net.is_private or net.version != 4 or not 16 <= net.prefixlen <= 24:
                r.error("vpcCidr", f"must be a private IPv4 range from /16 to /24 (10.x, 172.16-31.x "
                                   f"or 192.168.x), got {describe(cidr)}")
            elif platform == "aws" and net.prefixlen > 23:
                r.error("vpcCidr", f"must be /16 to /23 on aws, got {describe(cidr)}: the VPC is cut "
                                   "into 16 equal subnets (a public and a private one per zone) and "
                                   "a load balancer's subnets must be /27 or larger")
        except ValueError as exc:
            r.error("vpcCidr", f'expected a private CIDR like "10.20.0.0/16", got {describe(cidr)} ({exc})')
    zones = 0
    if platform == "aws":
        zones = r.integer("zones", 2, 2, 6)
    elif r.has("zones") and platform is not None:
        r.error("zones", "is only for platform aws; remove it")
    r.raw("zones")
    r.finish()
    return Network(vpc_cidr=cidr or "10.20.0.0/16", zones=zones or 0)


def _ephemeral(top: Reader, stack: str) -> bool:
    review = re.fullmatch(r"pr-[0-9]+", stack) is not None
    ephemeral = top.boolean("ephemeral", review)
    if ephemeral and stack in PROD_STACKS:
        top.error("ephemeral", "can never be true on the prod stack: it would turn off deletion "
                               "protection and final snapshots")
        return False
    return bool(ephemeral)


def _expires_at(top: Reader, ephemeral: bool) -> str | None:
    how = ("pulumi config set expiresAt \"$(date -u -d '+7 days' +%Y-%m-%dT%H:%M:%SZ)\" "
           "(the review-stack workflow sets it on every push)")
    value = top.string("expiresAt", None, pattern=r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z",
                       expect='a UTC time like "2026-12-01T18:00:00Z"')
    if value:
        import datetime

        try:
            datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            top.error("expiresAt", f"is not a real time: {describe(value)}")
        if not ephemeral:
            top.error("expiresAt", "is only for ephemeral stacks (pr-<number>, or ephemeral: true); "
                                   "remove it")
    elif ephemeral and top.data.get("expiresAt") is None:
        top.needed_to_deploy("expiresAt", f"is required on an ephemeral stack: every resource is "
                                          f"tagged with it so a cleanup job can destroy the stack "
                                          f"after it; {how}")
    return value


def _smallest(hosts: Hosts, database: Database, defaults: dict[str, str]) -> tuple[Hosts, Database]:
    """An ephemeral stack runs on the smallest sizes whatever the config it was copied from says:
    the platform's default host and database sizes, no standby, the least storage."""
    import dataclasses

    hosts = dataclasses.replace(hosts, size=defaults["hostSize"],
                                arch="x86_64" if hosts.arch == "aarch64" and
                                not re.match(r"[a-z]+[0-9]+[a-z]*g", defaults["hostSize"]) else hosts.arch)
    database = dataclasses.replace(database, size=defaults["databaseSize"], high_availability=False,
                                   storage_gb=min(database.storage_gb, 20) if database.storage_gb else 0)
    return hosts, database


# -- sources --------------------------------------------------------------------------------
def project_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def from_stack_file(stack: str, directory: Path | None = None) -> Settings:
    """Settings from Pulumi.<stack>.yaml, offline: `secure:` values become unknown secrets."""
    directory = directory or project_dir()
    path = directory / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in directory.glob("Pulumi.*.yaml"))
        raise SettingsError([f"{path.name}: no such stack file in {directory}; stacks here: "
                             + (", ".join(known) or "none")])
    return load(read_stack_file(path), stack=stack, project_dir=directory, offline=True)


def read_stack_file(path: Path) -> dict[str, Any]:
    """The project's keys (prefix removed) from a Pulumi stack file, as `load` takes them;
    `secure:` values become unknown secrets."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: not UTF-8, an int too long, ...
        raise SettingsError([f"{path.name}: not valid YAML: {exc}"]) from None
    if not isinstance(document, Mapping):
        raise SettingsError([f"{path.name}: must be a mapping with a config: key"])
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise SettingsError([f"{path.name}: config: must be a mapping of keys to values"])
    raw = {}
    prefix = PROJECT + ":"
    for key, value in config.items():
        if isinstance(key, str) and key.startswith(prefix):
            raw[key[len(prefix):]] = _unwrap_secure(value)
    return raw


def _unwrap_secure(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return Secret(None)
        return {k: _unwrap_secure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secure(v) for v in value]
    return value


def from_pulumi() -> Settings:
    """Settings from the running Pulumi program's config (decrypted by the CLI)."""
    import json

    import pulumi
    from pulumi.runtime import config as runtime_config

    prefix = PROJECT + ":"
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env())
    raw: dict[str, Any] = {}
    secret_keys = set()
    for full_key, text in values.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        raw[key] = text
        if isinstance(text, str) and text[:1] in "[{":
            with contextlib.suppress(ValueError, RecursionError):
                raw[key] = json.loads(text)
        if full_key in secret or runtime_config.is_config_secret(full_key):
            secret_keys.add(key)
    return load(raw, stack=pulumi.get_stack(), project_dir=project_dir(),
                secret_keys=frozenset(secret_keys))
