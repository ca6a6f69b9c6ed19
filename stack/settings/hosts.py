"""The `hosts` and `network` sections: what the servers are and the private network they sit in."""

from __future__ import annotations

import ipaddress
import re

from stack.settings.checks import (
    address_item,
    check_public_key,
    cidr_item,
    ensure_not_the_internet,
    exact_choice,
)
from stack.settings.heroku import read_python
from stack.settings.platforms import DEFAULT_VPC, Platform
from stack.settings.reader import Reader, as_int, describe
from stack.settings.schema import ARCHES, IMAGE_PYTHON, IMAGES, Hosts, Network

MAX_HOSTS = 100  # hosts.count's upper bound, and so the longest hosts.addresses
RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

# AWS Graviton families carry a "g" after the generation digit (t4g, m7g, c7gn, r6gd).
GRAVITON = r"[a-z]+[0-9]+[a-z]*g[a-z]*\."


def read_hosts(r: Reader, p: Platform) -> Hosts:
    addresses: tuple[str, ...] = ()
    if p.takes(r, "addresses"):
        addresses = r.string_list("addresses", address_item(r))
        ensure_addresses_listed_once(r, addresses)
        ensure_count_matches_addresses(r, addresses)
        ensure_not_too_many(r)
        count = len(addresses) or 1
    else:
        count = r.integer("count", 2, 1, MAX_HOSTS)
    size = ""
    if p.takes(r, "size"):
        pattern, expect = p.format("hosts.size")
        size = r.string("size", p.default("hosts.size"), pattern=pattern, expect=expect)
    image = exact_choice(r, "image", IMAGES, "debian-12") if p.takes(r, "image") else "debian-12"
    graviton = p.name == "aws" and bool(size) and bool(re.match(GRAVITON, size))
    arch = "x86_64"
    if p.takes(r, "arch"):
        arch = r.choice("arch", ARCHES, "aarch64" if graviton else "x86_64")
        ensure_arch_fits(r, p, arch, size, graviton)
    if p.hosted:
        python = r.string("python", IMAGE_PYTHON.get(image, IMAGE_PYTHON["debian-12"]),
                          pattern=r"3\.[0-9]{1,2}\.[0-9]{1,3}",
                          expect=f'the hosts\' exact python3 version like "3.11.4" (default: the '
                                 f'image\'s, {IMAGE_PYTHON.get(image, IMAGE_PYTHON["debian-12"])})')
    else:
        python = read_python(r)
    disk = 0
    if p.takes(r, "diskGb"):
        disk = r.integer("diskGb", p.default("hosts.diskGb"), 8, 16384, unit="GB")
    proxies: tuple[str, ...] = ()
    if p.takes(r, "trustedProxies"):
        proxies = r.string_list("trustedProxies", cidr_item(
            r, world="would let any client forge X-Forwarded-For; list only your load "
                     "balancer's addresses"))
        ensure_not_the_internet(r, "trustedProxies", proxies,
                                "any client among them could forge X-Forwarded-For; a load balancer "
                                "has few addresses, list only those (a private range such as "
                                "10.0.0.0/8 is fine)")
    host_keys = read_host_keys(r, addresses) if p.takes(r, "hostKeys") else ()
    r.finish()
    return Hosts(count=count, size=size, image=image, arch=arch or "x86_64", python=python,
                 addresses=addresses, trusted_proxies=proxies, disk_gb=disk or 0,
                 host_keys=host_keys)


def read_host_keys(r: Reader, addresses: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """hostKeys: each listed server's SSH host public key by its address, in the order of
    hosts.addresses (ensure_host_keys, once ssh is read, says which are missing)."""
    given = r.mapping("hostKeys")
    normal = address_item(r)
    keys: dict[str, str] = {}
    for name, value in given.items():
        path = f'{r.key("hostKeys")}["{name}"]'
        address = normal(path, name)
        if address is None:
            continue
        if address not in addresses:
            r.error_at(path, "is not in hosts.addresses; give each listed server's key under the "
                             "address it is listed by")
            continue
        if not isinstance(value, str):
            r.error_at(path, f'expected the server\'s public host key like "ssh-ed25519 AAAA...", '
                             f"got {describe(value)}")
            continue
        problem = check_public_key(value)
        if problem:
            r.error_at(path, problem)
            continue
        keys[address] = " ".join(value.split()[:2])  # the type and the key; a comment is dropped
    return tuple((address, keys[address]) for address in addresses if address in keys)


def ensure_addresses_listed_once(r: Reader, addresses: tuple[str, ...]) -> None:
    if not addresses and not r.reported("addresses"):
        r.error("addresses", 'is required on platform existing: list the servers, e.g. '
                             '["203.0.113.10", "app2.example.com"]')
    if len(set(addresses)) != len(addresses):
        r.error("addresses", "lists the same server twice")


def ensure_not_too_many(r: Reader) -> None:
    listed = r.raw("addresses")
    if isinstance(listed, list) and len(listed) > MAX_HOSTS:
        r.error("addresses", f"lists {len(listed)} servers; at most {MAX_HOSTS} (as hosts.count "
                             "on a cloud): deploy more as a second stack")


def ensure_count_matches_addresses(r: Reader, addresses: tuple[str, ...]) -> None:
    """Where the addresses are the hosts, a count may only repeat how many there are."""
    count = r.raw("count")
    if r.has("count") and addresses and as_int(count) != len(addresses):
        r.error("count", "is taken from hosts.addresses on platform existing; remove it")


def ensure_arch_fits(r: Reader, p: Platform, arch: str | None, size: str, graviton: bool) -> None:
    """The CPU the wheels are built for must be the hosts' CPU."""
    if p.name == "digitalocean" and arch == "aarch64":
        r.error("arch", "DigitalOcean droplets are x86_64 only; remove it")
    elif p.name == "aws" and arch and size and (arch == "aarch64") != graviton:
        r.error("arch", f"{arch} does not match the instance type {size} "
                        f"({'Graviton, aarch64' if graviton else 'x86_64'}); remove hosts.arch")


def read_network(r: Reader, p: Platform) -> Network:
    cidr = DEFAULT_VPC
    if p.takes(r, "vpcCidr"):
        cidr = r.string("vpcCidr", p.default("network.vpcCidr"),
                        expect='a private CIDR like "10.20.0.0/16"')
        if cidr:
            ensure_private_range(r, p, cidr)
    zones = 0
    if p.takes(r, "zones"):
        zones = r.integer("zones", p.default("network.zones"), 2, 6)
    r.finish()
    return Network(vpc_cidr=cidr or DEFAULT_VPC, zones=zones or 0)


def ensure_private_range(r: Reader, p: Platform, cidr: str) -> None:
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        r.error("vpcCidr", f'expected a private CIDR like "10.20.0.0/16", got {describe(cidr)} ({exc})')
        return
    rfc1918 = net.version == 4 and any(net.subnet_of(block) for block in RFC1918)  # type: ignore[arg-type]
    if not rfc1918 or not 16 <= net.prefixlen <= 24:
        r.error("vpcCidr", f"must be a private IPv4 range from /16 to /24 inside 10.0.0.0/8, "
                           f"172.16.0.0/12 or 192.168.0.0/16 (RFC 1918), got {describe(cidr)}"
                           + _not_private_because(net))
    elif p.name == "aws" and net.prefixlen > 23:
        r.error("vpcCidr", f"must be /16 to /23 on aws, got {describe(cidr)}: the VPC is cut "
                           "into 16 equal subnets (a public and a private one per zone) and "
                           "a load balancer's subnets must be /27 or larger")


def _not_private_because(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """What a range is that Python calls private but RFC 1918 does not."""
    if net.version != 4:
        return ""
    for kind, block in (("loopback", "127.0.0.0/8"), ("link-local", "169.254.0.0/16"),
                        ("carrier-grade NAT space", "100.64.0.0/10")):
        if net.subnet_of(ipaddress.IPv4Network(block)):  # type: ignore[arg-type]
            return f" ({block} is {kind}, not RFC 1918 space)"
    return ""
