"""The `ssh` section: how the program logs in to the hosts, and who else may reach SSH."""

from __future__ import annotations

from stack.settings.checks import (
    LOGIN,
    check_address,
    check_public_key,
    cidr_item,
    ensure_not_the_internet,
    is_ip,
)
from stack.settings.platforms import Platform
from stack.settings.reader import Reader, Secret
from stack.settings.schema import Bastion, Ssh


def read_ssh(r: Reader, p: Platform, image: str) -> Ssh:
    default_user = p.default("ssh.user", image)
    user = r.string("user", default_user, pattern=LOGIN, expect='a login name like "deploy"')
    if default_user is None and p.name is not None and r.data.get("user") is None:
        r.needed_to_deploy("user", f"is required on platform {p.name}: the login name with sudo "
                                   'rights on your servers, e.g. "deploy"')
    port = r.integer("port", 22, 1, 65535)
    public_key = None
    if p.takes(r, "publicKey"):
        public_key = r.string("publicKey", None, check=check_public_key,
                              expect='an OpenSSH public key like "ssh-ed25519 AAAA... you@laptop"')
        public_key = public_key.strip() if public_key else None
    if p.cloud and public_key is None and r.data.get("publicKey") is None:
        r.needed_to_deploy("publicKey", "is required to create the hosts' login key: pulumi config "
                                        'set --path ssh.publicKey "$(cat ~/.ssh/id_ed25519.pub)"')
    private_key = r.secret_string(
        "privateKey", required=True,
        how="pulumi config set --secret --path ssh.privateKey < ~/.ssh/id_ed25519")
    ensure_pem_private_key(r, private_key)
    bastion = read_bastion(r.section("bastion"), user) if r.has("bastion") else None
    cidrs: tuple[str, ...] = ()
    if p.takes(r, "adminCidrs"):
        cidrs = r.string_list("adminCidrs", cidr_item(r))
        ensure_not_the_internet(r, "adminCidrs", cidrs,
                                'SSH should be open to your own addresses (e.g. "203.0.113.7/32") '
                                "or reached through ssh.bastion")
        if not cidrs and not r.reported("adminCidrs"):
            ensure_ssh_reachable(r, bastion)
    host_key = r.string("hostKey", None, check=check_public_key,
                        expect='the host\'s public key like "ssh-ed25519 AAAA..."')
    host_key = host_key.strip() if host_key else None
    r.finish()
    return Ssh(user=user or "", port=port, public_key=public_key or None, private_key=private_key,
               admin_cidrs=cidrs, host_key=host_key, bastion=bastion)


def read_bastion(b: Reader, user: str | None) -> Bastion:
    host = b.string("host", check=check_address,
                    expect='the bastion\'s address like "203.0.113.5" or "bastion.example.com"')
    b_user = b.string("user", user or "root", pattern=LOGIN, expect="a login name")
    b_port = b.integer("port", 22, 1, 65535)
    b.finish()
    return Bastion(host=(host or "").strip().lower(), user=b_user or "", port=b_port)


def ensure_pem_private_key(r: Reader, private_key: Secret | None) -> None:
    if private_key is not None and private_key.known:
        text = (private_key.value or "").strip()
        if not (text.startswith("-----BEGIN ") and text.endswith("PRIVATE KEY-----")):
            r.error("privateKey", "is not a PEM/OpenSSH private key (expected -----BEGIN ... "
                                  "PRIVATE KEY-----); the secret's value is not shown")


def ensure_ssh_reachable(r: Reader, bastion: Bastion | None) -> None:
    """A cloud host's firewall opens SSH only to ssh.adminCidrs: with none, a deploy needs a
    bastion whose address the firewall can name."""
    if bastion is None:
        r.needed_to_deploy("adminCidrs", "is empty, so nothing could reach the hosts over SSH to deploy "
                                         'them; add the address you run pulumi from, e.g. '
                                         '["203.0.113.7/32"], or set ssh.bastion')
    elif bastion.host and check_address(bastion.host) is None and not is_ip(bastion.host):
        r.needed_to_deploy("adminCidrs", f"is empty and ssh.bastion.host is a name ({bastion.host}), so "
                                         "the hosts' firewall would let nothing reach SSH; add "
                                         'the bastion\'s public address, e.g. ["198.51.100.20/32"], '
                                         "or give ssh.bastion.host as an IP address")
