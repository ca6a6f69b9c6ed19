"""Checks of single values that several sections share: names, addresses, keys, certificates.

Each `check_*` takes the text and returns None when it is fine, or the message that says what is
wrong; the `*_item` factories check one list entry and report through the reader."""

from __future__ import annotations

import ast
import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from stack.settings.reader import Reader, describe

NAME = r"[a-z][a-z0-9-]{0,30}[a-z0-9]"
# A top-level domain is letters, or an internationalised one in its punycode form (xn--p1ai).
HOSTNAME = r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{1,59})"
IDENT = r"[a-z_][a-z0-9_]{0,62}"
ENV_KEY = r"[A-Za-z_][A-Za-z0-9_]*"
LOGIN = r"[a-z_][a-z0-9_-]{0,31}"
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521")
PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s*\n[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


def check_one_line(text: str) -> str | None:
    if "\n" in text or "\r" in text or "\0" in text:
        return "must be one line"
    return None


def check_entry(text: str) -> str | None:
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


def check_listen(text: str) -> str | None:
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
    # Imported here: stack.render imports stack.settings, so a module-level import is circular.
    from stack.render import ACME_PORT

    if int(port) == ACME_PORT:
        return (f"port {port} is the stack's own: certbot answers certificate challenges on "
                f"127.0.0.1:{port} (HAProxy passes /.well-known/acme-challenge/ to it); pick "
                'another, e.g. "127.0.0.1:8000", or use "unix"')
    return None


ACME_CHALLENGE = "/.well-known/acme-challenge/"


def check_url_path(text: str) -> str | None:
    """A path asked the same way by everyone: no empty, "." or ".." segment. The gate's curl
    normalises them away; a load balancer's health check sends the path as written, which Nginx
    refuses (a 400 when it climbs above the root) or resolves to another location."""
    segments = text.split("/")[1:]
    if any(s in (".", "..") for s in segments) or "" in segments[:-1]:
        return (f'must not contain "//", "/./" or "/../", got {describe(text)}: the gate\'s curl '
                "would ask another path than the load balancer's health check, which Nginx may "
                "refuse; write the path out")
    return None


def check_health_path(text: str) -> str | None:
    if (text + "/").startswith(ACME_CHALLENGE):
        return (f"{describe(text)} is under {ACME_CHALLENGE}, which the front keeps for "
                "certbot's certificate challenges and never passes to the app; use a path of "
                'the app\'s, e.g. "/healthz"')
    return check_url_path(text)


def exact_choice(r: Reader, name: str, choices: tuple[str, ...], default: Any) -> Any:
    """`r.choice`, with the exact word as the fix when only its case is wrong (the documented
    values are lower case, and the templates compare them as written)."""
    value = r.raw(name)
    if isinstance(value, str) and value not in choices and value.lower() in choices:
        r.error(name, f'must be written "{value.lower()}" (lower case, one of '
                      f"{', '.join(choices)}), got {describe(value)}")
        return default
    return r.choice(name, choices, default)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_hostname(text: str, expect: str) -> str | None:
    """None when `text`, lower-cased, is a host name; else what is wrong. A name with letters
    beyond ASCII gets its punycode form as the fix (DNS, certificates and Nginx take only that)."""
    value = text.strip().lower()
    if re.fullmatch(HOSTNAME, value):
        return None
    if not value.isascii():
        try:
            puny = value.encode("idna").decode("ascii")
        except UnicodeError:
            return (f"expected {expect}, got {describe(text)}: a name with non-ASCII letters must "
                    "be given in its punycode (xn--) form")
        if re.fullmatch(HOSTNAME, puny):
            return f'{describe(text)} has non-ASCII letters; give its punycode form, "{puny}"'
    return f"expected {expect}, got {describe(text)}"


# "This network" (RFC 1122): no server has an address in it.
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


def check_server_ip(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """None when `addr` can be one server's unicast address (private ones included); else why not."""
    if addr.is_unspecified:
        return f"{addr} is the unspecified address (any/none), not a server's"
    if addr.is_loopback:
        return f"{addr} is a loopback address: it would be the machine running pulumi, not a server"
    if addr.is_multicast:
        return f"{addr} is a multicast address, not one server's"
    if addr.is_link_local:
        return f"{addr} is link-local: it is only reachable on the server's own network segment"
    if addr.version == 4 and addr == ipaddress.IPv4Address("255.255.255.255"):
        return f"{addr} is the broadcast address, not one server's"
    if addr.version == 4 and addr in THIS_NETWORK:
        return f"{addr} is in 0.0.0.0/8 (\"this network\"), not a server's address"
    if addr.version == 4 and addr.is_reserved:
        return f"{addr} is in the reserved range 240.0.0.0/4, which is not routed"
    return None


def check_address(text: str) -> str | None:
    """A server's address: an IP address a server can have, or a host name."""
    value = text.strip().lower()
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return check_hostname(text, 'an IP address or host name like "203.0.113.5"')
    problem = check_server_ip(addr)
    return f"{problem}; give the server's own address or host name" if problem else None


def check_public_key(text: str) -> str | None:
    if "PRIVATE KEY" in text:  # never echo a private key pasted into the wrong place
        return ("is a private key (not shown); give the public key, the contents of the .pub file, "
                "and keep the private key in ssh.privateKey as a secret")
    if "\n" in text.strip() or "\r" in text or "\0" in text:
        return "must be one line: a single OpenSSH public key"
    parts = text.split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        return (f'expected an OpenSSH public key ("{KEY_TYPES[0]} AAAA..."), got {describe(text)}; '
                "use the contents of the .pub file")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return f"the key's base64 part is damaged, got {describe(text)}"
    if not blob[4:].startswith(parts[0].encode()):
        return f"the key's type does not match its data, got {describe(text)}"
    return None


def check_pem_certificates(text: str) -> str | None:
    """None when `text` is one or more PEM certificates and nothing else."""
    rest = PEM_CERT.sub("", text.strip()).strip()
    if not PEM_CERT.search(text) or rest:
        return ("expected PEM certificates (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----) "
                "of the CA behind the ACME server's HTTPS, and nothing else (never a private key)")
    return None


def address_item(r: Reader) -> Callable[[str, Any], str | None]:
    """A server's address in a list: an IP address (normalised) or a lower-case host name."""
    def check(path: str, value: Any) -> str | None:
        if not isinstance(value, str):
            r.error_at(path, f'expected an IP address or host name like "203.0.113.10", '
                             f"got {describe(value)}")
            return None
        problem = check_address(value)
        if problem:
            r.error_at(path, problem)
            return None
        text = value.strip().lower()
        return str(ipaddress.ip_address(text)) if is_ip(text) else text

    return check


def cidr_item(
    r: Reader,
    *,
    allow_world: bool = False,
    world: str = 'opens SSH to the whole internet; give your own address (e.g. "203.0.113.7/32") '
                 "or use ssh.bastion",
) -> Callable[[str, Any], str | None]:
    def check(path: str, value: Any) -> str | None:
        if not isinstance(value, str):
            r.error_at(path, f'expected a CIDR like "203.0.113.7/32", got {describe(value)}')
            return None
        try:
            net = ipaddress.ip_network(value.strip(), strict=True)
        except ValueError as exc:
            r.error_at(path, f'expected a CIDR like "203.0.113.7/32", got {describe(value)} ({exc})')
            return None
        if net.prefixlen == 0 and not allow_world:
            r.error_at(path, f"{value} {world}")
            return None
        return str(net)

    return check


# -- how much of the internet a list of ranges opens ------------------------------------------
# Ranges that hold no public address: what a list covers inside them is not counted. The
# documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are
# counted as public: examples and tests use them to stand for public addresses, and together
# they are far below either limit.
NOT_PUBLIC = {
    4: tuple(ipaddress.ip_network(n) for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8", "169.254.0.0/16",  # loopback, link-local
        "192.0.0.0/24", "198.18.0.0/15",  # IETF protocol assignments, benchmarking
        "224.0.0.0/4", "240.0.0.0/4",  # multicast; reserved, with the broadcast address
    )),
    6: tuple(ipaddress.ip_network(n) for n in (
        "::/128", "::1/128", "::ffff:0:0/96",  # unspecified, loopback, IPv4-mapped
        "fc00::/7", "fe80::/10", "ff00::/8",  # unique local, link-local, multicast
    )),
}
# More public addresses than these is "the internet in disguise": a /8 of IPv4, a /32 of IPv6
# (what a regional registry allocates to a whole ISP).
PUBLIC_LIMIT = {4: 2**24, 6: 2**96}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def public_addresses(nets: list[Network]) -> int:
    """How many public addresses `nets` (all of one IP version) cover together, each counted once."""
    total = 0
    for net in ipaddress.collapse_addresses(nets):  # type: ignore[type-var]
        inside = sum(special.num_addresses if special.subnet_of(net) else
                     net.num_addresses if net.subnet_of(special) else 0
                     for special in NOT_PUBLIC[net.version])
        total += net.num_addresses - inside
    return total


def _how_much(count: int, version: int) -> str:
    if version == 6:  # counted in /32s: 2**96 addresses each, the size of an ISP's allocation
        return (f"the public IPv6 addresses of {count / 2**96:,.0f} /32s (a /32 is what a "
                "registry allocates to a whole ISP)")
    share = count / public_addresses([ipaddress.ip_network("0.0.0.0/0")])
    if share >= 0.999:
        of = "the whole internet"
    elif share >= 0.5:
        of = "half the internet" if share < 0.51 else "more than half the internet"
    else:
        of = f"{share:.1%} of the public IPv4 internet"
    return f"{count:,} public IPv4 addresses ({of})"


def ensure_not_the_internet(r: Reader, name: str, cidrs: tuple[str, ...], why: str) -> None:
    """Refuses a list of ranges that together cover more public addresses than a /8 of IPv4 or a
    /32 of IPv6, however it is cut up (0.0.0.0/1 + 128.0.0.0/1 is the internet, like 0.0.0.0/0)."""
    nets = [ipaddress.ip_network(c) for c in cidrs]
    for version in (4, 6):
        mine = [n for n in nets if n.version == version]
        count = public_addresses(mine)
        if count > PUBLIC_LIMIT[version]:
            wide = sorted(mine, key=lambda n: public_addresses([n]), reverse=True)
            named = ", ".join(str(n) for n in wide[:3]) + (", ..." if len(wide) > 3 else "")
            verb = "covers" if len(mine) == 1 else "together cover"
            limit = "a /8 (16,777,216)" if version == 4 else "one /32"
            r.error(name, f"{named} {verb} {_how_much(count, version)}, more than {limit}; {why}")
