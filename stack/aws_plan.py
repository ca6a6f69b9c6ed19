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
