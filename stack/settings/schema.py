"""The settings' shape: frozen dataclasses, one per config section, and the constants other
modules use. Nothing here reads config; the section modules fill these in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stack.settings.reader import Secret

PROJECT = "flask-stack"
PLATFORMS = ("digitalocean", "aws", "existing", "heroku")
CLOUDS = ("digitalocean", "aws")  # the clouds whose machines the program creates
HOSTED = ("digitalocean", "aws", "existing")  # platforms with hosts it logs in to over SSH
HEROKU = "heroku"
IMAGES = ("debian-12", "ubuntu-24.04", "ubuntu-22.04")
ARCHES = ("x86_64", "aarch64")
FRONTS = ("nginx", "haproxy")
WORKER_CLASSES = ("gthread", "sync", "gevent")
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"

# Login user of the cloud images when ssh.user is not set (DigitalOcean always logs in as root).
IMAGE_USERS = {"debian-12": "admin", "ubuntu-24.04": "ubuntu", "ubuntu-22.04": "ubuntu"}
# The exact version of each image's system Python (`python3`, which the release venv uses), as
# the distributions ship it: Debian 12 python3.11 3.11.2-6+deb12u* (packages.debian.org/bookworm,
# and `apt-cache policy python3.11` on a bookworm machine), Ubuntu 24.04 python3.12 3.12.3-1ubuntu*
# and Ubuntu 22.04 python3.10 3.10.12-1~22.04.* (packages.ubuntu.com noble, jammy). Their
# security updates backport fixes and keep the upstream version, so it stays what markers see.
IMAGE_PYTHON = {"debian-12": "3.11.2", "ubuntu-24.04": "3.12.3", "ubuntu-22.04": "3.10.12"}

PROD_STACKS = frozenset({"prod", "production"})
RESERVED_DB_USERS = frozenset({"postgres", "admin", "rdsadmin", "doadmin", "root", "public"})


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
    # platform existing: (address, SSH host public key) pairs, in the order of hosts.addresses
    host_keys: tuple[tuple[str, str], ...] = ()

    def host_key(self, address: str) -> str | None:
        return dict(self.host_keys).get(address)


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
    max_storage_gb: int = 0  # aws: storage autoscaling's ceiling (max_allocated_storage); 0 = off
    storage_autoscale: bool = False  # digitalocean: the cluster grows its storage (storage_autoscale)
    pool: bool = False  # digitalocean: the app connects through a PgBouncer pool
    pool_size: int = 0  # digitalocean: the pool's backend connections (stack/settings/budget.py)


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
    drain_seconds: int | None = None  # None: from the stack's balancer (stack/balancer.py)
    undrain_seconds: int | None = None


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
class Alerts:
    """aws and digitalocean: where alarms go and when they fire (stack/settings/alerts.py has
    the defaults)."""

    enabled: bool  # the SNS topic and the CloudWatch alarms are declared (off on ephemeral stacks)
    email: tuple[str, ...]  # SNS email subscriptions (each confirms by a link in a mail)
    webhook: Secret | None  # an https:// endpoint subscribed to the topic (secret: it often is one)
    cpu_percent: int  # hosts' and database's average CPU above this
    error_rate_percent: int  # the app's 5xx answers, in % of the requests
    response_time_ms: int  # the app's p95 response time (TargetResponseTime) above this
    free_storage_gb: int  # the database's free storage below this
    free_memory_mb: int  # the database's freeable memory below this
    database_connections: int  # the database's connections above this
    memory_percent: int = 90  # digitalocean: droplets' and database's memory use above this
    disk_percent: int = 90  # digitalocean: droplets' and database's disk use above this
    slack_channel: str | None = None  # digitalocean: the channel alerts.webhook (Slack) posts to


@dataclass(frozen=True)
class Logs:
    """aws: what the stack keeps of its traffic, and for how long."""

    retention_days: int  # access logs (S3 lifecycle) and flow logs (CloudWatch Logs retention)
    access_logs: bool  # the load balancer's access logs to an S3 bucket the stack creates
    flow_logs: bool  # the VPC's flow logs to CloudWatch Logs


@dataclass(frozen=True)
class Heroku:
    """platform heroku: the app the program creates and what it runs on."""

    app_name: str  # the Heroku app (a global name): heroku.appName, default flask-stack-<stack>
    team: str | None  # the Heroku team that owns the app; None: the API key's own account
    stack: str  # the Heroku stack (base image) the slug runs on: "heroku-24"


@dataclass(frozen=True)
class Process:
    """One entry of `processes`: a long-running command next to the web app."""

    name: str  # e.g. "worker": the units <app>-<name>@<i>.service, the Procfile's type
    command: tuple[str, ...]  # its words; $NAME / ${NAME} in a word is that variable's value
    count: int  # on each host that runs it (Heroku: dynos of this type)
    on: str  # "all" hosts, or the "first" (a singleton such as a clock)
    stop_timeout: int  # seconds from SIGTERM to SIGKILL
    env: tuple[tuple[str, str], ...]  # on top of the app's environment
    size: str | None = None  # Heroku: the dyno size (None: hosts.size)


@dataclass(frozen=True)
class Schedule:
    """One entry of `schedules`: a command systemd runs at calendar times (hosts only)."""

    name: str  # the units <app>-<name>.service and <app>-<name>.timer
    command: tuple[str, ...]
    on_calendar: str  # systemd.time(7) calendar expression
    on: str  # "first" (once per stack, the default) or "all" hosts
    timeout: int  # seconds a run may take before systemd stops it
    random_delay: int  # seconds: RandomizedDelaySec, spreading runs


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
    heroku: Heroku | None = None  # platform heroku only
    alerts: Alerts | None = None  # platforms aws and digitalocean
    logs: Logs | None = None  # platform aws only
    processes: tuple[Process, ...] = ()  # sorted by name
    schedules: tuple[Schedule, ...] = ()  # sorted by name; hosts only
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

