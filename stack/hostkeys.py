"""SSH host keys: the key each host is pinned to, and the step that checks it before any other.

Every remote step's connection carries its host's key (pulumi-command's `host_key`), so no step
logs in to a host that presents another. Where the key comes from:

- platform existing: the config, `hosts.hostKeys[address]` or `ssh.hostKey` for every server
  (the settings refuse a deploy without one, showing the `ssh-keyscan` line to run);
- a cloud host: recorded at its first contact. The `<host>-hostkey-record` step (a local command,
  run once per machine) asks the new machine for its key and keeps it in the stack's state as
  its stdout; every later connection to that machine is pinned to it. A replaced machine gets a
  new record. This is trust on first use, at the moment the program created the machine, from
  the machine that created it; docs/security.md ("SSH host keys") weighs it against giving each
  machine a key chosen by the program through its user data.

Before a host's remote steps run, the `<host>-hostkey` step (a local command, triggered by the
same inputs as those steps, so an unchanged deploy runs nothing) compares the key the host
presents with the pinned one. pulumi-command's own refusal says only "ssh: host key mismatch";
this step fails naming the host, both fingerprints and what to do, before anything runs on it.
Both steps run OpenSSH's `ssh` on the deploying machine (through ssh.bastion when there is one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import shlex

from stack.scripts.shell import render
from stack.scripts.steps import Script
from stack.settings import Settings

# A cloud machine still booting (a new one, a resized one) refuses SSH for a while: as long as
# the steps themselves keep dialling (stack.host: 60 x 10 s). A server of yours that does not
# answer within 90 s fails the check, naming it, instead of holding the deploy for 10 minutes.
WAIT = 600
EXISTING_WAIT = 90
RECORD_TYPE = "ssh-ed25519"  # every image the program boots makes one at first boot
# The record step's update: the key recorded at first contact, as pulumi-command hands the
# previous stdout to the next run (add_previous_output_in_env, on by default).
KEEP_RECORD = ('case "${PULUMI_COMMAND_STDOUT:-}" in "ssh-"*|"ecdsa-"*) ;; *) echo "flask-stack: host key '
               'record: no key was recorded at first contact; replace this step to record one" >&2; '
               'exit 1 ;; esac; printf \'%s\\n\' "$PULUMI_COMMAND_STDOUT"')


def fingerprint(key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line ("ssh-ed25519 AAAA... [comment]")."""
    try:
        blob = base64.b64decode(key.split()[1], validate=True)
    except (IndexError, binascii.Error, ValueError):
        return "(not a public key)"
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def algorithms(key_type: str) -> str:
    """The HostKeyAlgorithms that make a server present its key of `key_type`."""
    return "rsa-sha2-512,rsa-sha2-256" if key_type == "ssh-rsa" else key_type


def configured(settings: Settings, address: object) -> str | None:
    """The key the config pins a host to: hosts.hostKeys[address] on platform existing, else
    ssh.hostKey; None on a cloud host whose key is recorded at first contact."""
    if settings.platform == "existing" and isinstance(address, str):
        key = settings.hosts.host_key(address) or settings.ssh.host_key
    else:
        key = settings.ssh.host_key
    return " ".join(key.split()[:2]) if key else None


def source(settings: Settings, address: str) -> str:
    """Where the pinned key of a host comes from, as a message names it."""
    if settings.platform == "existing" and settings.hosts.host_key(address):
        return f'hosts.hostKeys["{address}"]'
    if settings.ssh.host_key:
        return "ssh.hostKey"
    return "recorded at the machine's first contact, in the stack's state"


def fix(settings: Settings, host: str, address: str) -> str:
    """What to do when a host rebuilt on purpose presents a new key."""
    check = "check the new key on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)"
    if settings.platform == "existing" and settings.hosts.host_key(address):
        return (f"{check} and pin it: pulumi config set --path 'hosts.hostKeys[\"{address}\"]' "
                f'"$(ssh-keyscan -t ed25519{port_option(settings)} {address} | cut -d\' \' -f2-)"')
    if settings.ssh.host_key:
        return f'{check} and set it: pulumi config set --path ssh.hostKey "ssh-ed25519 AAAA..."'
    return (f"{check}, then record it again: pulumi up --replace URN, with the URN ending in "
            f"{host}-hostkey-record (pulumi stack --show-urns)")


def port_option(settings: Settings) -> str:
    return "" if settings.ssh.port == 22 else f" -p {settings.ssh.port}"


def bastion_tail(settings: Settings) -> str:
    """The ProxyCommand after `ssh -F /dev/null -i KEY`: a jump through ssh.bastion. Like
    pulumi-command's own proxy connection, it does not pin the bastion's key."""
    b = settings.ssh.bastion
    if b is None:
        return ""
    return shlex.join(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                       "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no",
                       "-o", "ConnectTimeout=10", "-p", str(b.port), "-l", b.user, "-W", "%h:%p",
                       b.host])


def script(settings: Settings, host: str, address: str, pinned: str | None) -> Script:
    """The local script that prints the key `host` presents at `address`: compared with
    `pinned` (failing with both fingerprints when they differ), or, with None, recorded at a
    new machine's first contact (waiting for its sshd to start)."""
    key_type = pinned.split()[0] if pinned else RECORD_TYPE
    tail = bastion_tail(settings)
    body = render("hostkey.sh.j2", bastion=tail,
                  algorithms=algorithms(key_type), port=settings.ssh.port, user=settings.ssh.user,
                  address=address, wait=EXISTING_WAIT if settings.platform == "existing" else WAIT,
                  pinned=pinned or "", fingerprint=fingerprint(pinned) if pinned else "",
                  source=source(settings, address), fix=fix(settings, host, address))
    return Script("host key check" if pinned else "host key record", host, body, address)
