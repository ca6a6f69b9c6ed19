"""The AWS site's decisions as plain data: subnet ranges, the image query, tags, who may reach
SSH, names AWS accepts, the database URL. Pure functions with no Pulumi and no `pulumi_aws`
(stack/aws.py wires them into resources), so they are tested directly.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote

from stack.settings import Settings

# The newest TLS 1.3 policy AWS recommends for an ALB's HTTPS listener (the console's default):
# TLS 1.3, TLS 1.2 with forward-secret AEAD ciphers only, and hybrid post-quantum key exchange.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
# The official publishers' accounts: an image by name alone could come from anyone.
DEBIAN_OWNER = "136693071363"
CANONICAL_OWNER = "099720109477"
SUBNET_BITS = 4  # the VPC is cut into 16 equal slots: public subnets first, private from slot 8
PRIVATE_SLOT = 8
POSTGRES_PORT = 5432
HTTP_PORT = 80
HTTPS_PORT = 443
WORLD_V4 = "0.0.0.0/0"


@dataclass(frozen=True)
class AmiQuery:
    owner: str
    name: str  # a name pattern with * (the newest match wins)
    architecture: str  # as EC2 names it: x86_64 | arm64


def ami_query(image: str, arch: str) -> AmiQuery:
    """The official image for hosts.image on hosts.arch."""
    deb = {"x86_64": "amd64", "aarch64": "arm64"}[arch]
    ec2 = {"x86_64": "x86_64", "aarch64": "arm64"}[arch]
    if image == "debian-12":
        return AmiQuery(DEBIAN_OWNER, f"debian-12-{deb}-*", ec2)
    if image == "ubuntu-24.04":
        return AmiQuery(CANONICAL_OWNER, f"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{deb}-server-*", ec2)
    if image == "ubuntu-22.04":
        return AmiQuery(CANONICAL_OWNER, f"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-{deb}-server-*", ec2)
    raise ValueError(f"no AWS image for {image!r}")


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """(public, private) subnet ranges, one of each per zone. The VPC is cut into 16 equal
    slots whatever the zone count, so adding a zone adds subnets without renumbering any."""
    slots = list(ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=SUBNET_BITS))
    if not 1 <= zones <= PRIVATE_SLOT:
        raise ValueError(f"zones must be 1 to {PRIVATE_SLOT}, got {zones}")
    return ([str(s) for s in slots[:zones]],
            [str(s) for s in slots[PRIVATE_SLOT:PRIVATE_SLOT + zones]])


def tags(settings: Settings) -> dict[str, str]:
    """Every resource's tags (the provider's default tags); an ephemeral stack's carry its expiry."""
    tags = {"Project": settings.project, "Stack": settings.stack, "ManagedBy": "pulumi"}
    if settings.expires_at:
        tags["ExpiresAt"] = settings.expires_at
    return tags


def label(settings: Settings) -> str:
    """project-stack as AWS identifiers take it: lower-case letters, digits and single dashes,
    starting with a letter (snapshot identifiers, Name tags)."""
    text = re.sub(r"[^a-z0-9]+", "-", f"{settings.project}-{settings.stack}".lower()).strip("-")
    return text if text[:1].isalpha() else f"s-{text}"


@dataclass(frozen=True)
class SshSource:
    cidr: str
    ipv6: bool
    why: str  # the rule's description

    @property
    def slug(self) -> str:
        """The source as part of a resource name (stable when the list is reordered)."""
        return re.sub(r"[^0-9a-z]+", "-", self.cidr.lower()).strip("-")


def ssh_sources(settings: Settings) -> list[SshSource]:
    """Who may reach the hosts' SSH port: ssh.adminCidrs, plus the bastion when it is given as
    an address (a bastion given by name must be in adminCidrs). Nothing by default."""
    out: dict[str, SshSource] = {}
    for cidr in settings.ssh.admin_cidrs:
        net = ipaddress.ip_network(cidr)
        out[str(net)] = SshSource(str(net), net.version == 6, "ssh.adminCidrs")
    bastion = settings.ssh.bastion
    if bastion:
        try:
            addr = ipaddress.ip_address(bastion.host)
        except ValueError:
            addr = None
        if addr is not None:
            net = ipaddress.ip_network(addr)
            out.setdefault(str(net), SshSource(str(net), net.version == 6, "ssh.bastion.host"))
    return list(out.values())


def database_url(user: str, password: str, host: str, port: int | float | str, name: str) -> str:
    """The DATABASE_URL the app gets: TLS required (the server refuses anything else anyway)."""
    return (f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{int(port)}/"
            f"{quote(name, safe='')}?sslmode=require")


def site_names(settings: Settings) -> list[str]:
    """The names the certificate covers and DNS points at: the domain, and www when redirected."""
    name = settings.domain.name
    if not name:
        return []
    return [name, f"www.{name}"] if settings.domain.www_redirect else [name]


def has_certificate(settings: Settings) -> bool:
    """Does the load balancer serve HTTPS (a certificate given or one to issue)?"""
    d = settings.domain
    return settings.load_balancer and bool(d.name) and bool(d.certificate_arn or d.route53_zone)


# -- alarms, logs, the database's operations ---------------------------------------------------
GB = 1024 ** 3
MB = 1024 ** 2
ALB_LOG_PREFIX = "alb"  # the access logs' folder in the bucket (AWS adds AWSLogs/<account>/...)
# The principal that writes ALB access logs (the ELB docs, enable-access-logging): a service
# principal, not the regional ELB account of the older policies.
ELB_LOG_DELIVERY = "logdelivery.elasticloadbalancing.amazonaws.com"
RDS_MONITORING = "monitoring.rds.amazonaws.com"
FLOW_LOGS = "vpc-flow-logs.amazonaws.com"
RDS_MONITORING_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
RDS_LOG_EXPORTS = ("postgresql", "upgrade")
RDS_MONITORING_SECONDS = 60  # enhanced monitoring's interval (OS metrics; CloudWatch Logs bills it)
PERFORMANCE_INSIGHTS_DAYS = 7  # the free retention
NO_EXTENDED_SUPPORT = "open-source-rds-extended-support-disabled"
ERROR_RATE_MIN_REQUESTS = 20  # a minute with fewer requests never counts as a 5xx rate


@dataclass(frozen=True)
class Alarm:
    """One CloudWatch alarm, as data: `on` says which resource its dimensions name ("balancer",
    "target", "db", or "host:<name>"); a `math` alarm computes its value from `metrics`."""

    part: str  # its resource name's suffix: <site>-alarm-<part>
    on: str
    namespace: str
    metric: str  # the metric, or the math expression's label
    statistic: str  # Average, Maximum, Minimum, Sum, or a percentile (p95)
    comparison: str
    threshold: float
    period: int  # seconds
    periods: int  # evaluation periods
    datapoints: int  # of those, breaching to alarm
    missing: str  # treat_missing_data
    description: str
    math: str | None = None
    metrics: tuple[tuple[str, str, str], ...] = ()  # math: (id, metric, statistic)

    @property
    def percentile(self) -> bool:
        return re.fullmatch(r"p[0-9]+(\.[0-9]+)?", self.statistic) is not None


def alarms(settings: Settings, hosts: list[str]) -> list[Alarm]:
    """Every alarm the stack declares (none when alerts are off): the load balancer's and the
    target group's when there is a balancer, each host's, the database's. prod evaluates the
    balancer's every minute over 3 minutes, other stacks over 5."""
    a = settings.alerts
    if a is None or not a.enabled:
        return []
    quick = 3 if settings.is_prod else 5
    out: list[Alarm] = []
    if settings.load_balancer:
        out += [
            Alarm("unhealthy-hosts", "target", "AWS/ApplicationELB", "UnHealthyHostCount", "Maximum",
                  "GreaterThanThreshold", 0, 60, quick, quick, "breaching",
                  "a host fails the load balancer's health check (missing data: the balancer "
                  "stopped reporting, which counts as failing)"),
            Alarm("target-5xx-rate", "target", "AWS/ApplicationELB", "target 5xx % of requests", "",
                  "GreaterThanThreshold", a.error_rate_percent, 60, quick, quick, "notBreaching",
                  f"the app answers 5xx to more than {a.error_rate_percent}% of the requests (in "
                  f"minutes of {ERROR_RATE_MIN_REQUESTS} requests or more)",
                  math=f"IF(requests >= {ERROR_RATE_MIN_REQUESTS}, 100 * FILL(errors, 0) / requests, 0)",
                  metrics=(("errors", "HTTPCode_Target_5XX_Count", "Sum"),
                           ("requests", "RequestCount", "Sum"))),
            Alarm("response-time-p95", "target", "AWS/ApplicationELB", "TargetResponseTime", "p95",
                  "GreaterThanThreshold", a.response_time_ms / 1000, 60, quick, quick, "notBreaching",
                  f"the app's p95 response time is above {a.response_time_ms} ms"),
            Alarm("balancer-5xx", "balancer", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "Sum",
                  "GreaterThanThreshold", 10, 60, quick, quick, "notBreaching",
                  "the load balancer itself answers 5xx (no healthy host, 502/504 from the hosts) "
                  "more than 10 times a minute"),
        ]
    for host in hosts:
        out += [
            Alarm(f"{host}-status", f"host:{host}", "AWS/EC2", "StatusCheckFailed", "Maximum",
                  "GreaterThanOrEqualToThreshold", 1, 60, 2, 2, "breaching",
                  f"{host} fails its EC2 status checks (missing data: stopped or gone)"),
            Alarm(f"{host}-cpu", f"host:{host}", "AWS/EC2", "CPUUtilization", "Average",
                  "GreaterThanThreshold", a.cpu_percent, 300, 3, 3, "missing",
                  f"{host}'s CPU is above {a.cpu_percent}% for 15 minutes"),
        ]
    out += [
        Alarm("db-cpu", "db", "AWS/RDS", "CPUUtilization", "Average", "GreaterThanThreshold",
              a.cpu_percent, 300, 3, 3, "missing",
              f"the database's CPU is above {a.cpu_percent}% for 15 minutes"),
        Alarm("db-free-storage", "db", "AWS/RDS", "FreeStorageSpace", "Minimum", "LessThanThreshold",
              a.free_storage_gb * GB, 300, 1, 1, "breaching",
              f"the database has less than {a.free_storage_gb} GB of free storage"),
        Alarm("db-connections", "db", "AWS/RDS", "DatabaseConnections", "Maximum",
              "GreaterThanThreshold", a.database_connections, 300, 2, 2, "missing",
              f"more than {a.database_connections} connections to the database for 10 minutes"),
        Alarm("db-free-memory", "db", "AWS/RDS", "FreeableMemory", "Minimum", "LessThanThreshold",
              a.free_memory_mb * MB, 300, 3, 3, "breaching",
              f"the database has less than {a.free_memory_mb} MB of freeable memory for 15 minutes"),
    ]
    return out


def log_bucket_policy(bucket_arn: str, account: str) -> dict:
    """Only the ELB log delivery may write, and only under the access logs' prefix; nothing
    over plain HTTP. The bucket's owner keeps its IAM access; no one else gets any."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ElbLogDelivery", "Effect": "Allow",
             "Principal": {"Service": ELB_LOG_DELIVERY}, "Action": "s3:PutObject",
             "Resource": f"{bucket_arn}/{ALB_LOG_PREFIX}/AWSLogs/{account}/*"},
            {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [bucket_arn, f"{bucket_arn}/*"],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    }


def assume_role_policy(service: str, account: str | None = None) -> dict:
    """A role only `service` may take (for this account's resources, when given)."""
    statement: dict = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if account:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def flow_log_policy(log_group_arn: str) -> dict:
    """What the flow logs' role may do: write to its own log group only (and list groups)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents",
                                       "logs:DescribeLogStreams"],
         "Resource": [log_group_arn, f"{log_group_arn}:*"]},
        # A list call: it takes no log group's ARN.
        {"Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"}]}
