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
HOSTNAME = r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
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
    return None


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_address(text: str) -> str | None:
    value = text.strip().lower()
    if is_ip(value) or re.fullmatch(HOSTNAME, value):
        return None
    return f'expected an IP address or host name like "203.0.113.5", got {describe(text)}'


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
        if isinstance(value, str):
            text = value.strip().lower()
            try:
                return str(ipaddress.ip_address(text))
            except ValueError:
                if re.fullmatch(HOSTNAME, text):
                    return text
        r.error_at(path, f'expected an IP address or host name like "203.0.113.10", got {describe(value)}')
        return None

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
