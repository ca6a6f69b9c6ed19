"""The runner's own address in a stack file, so a deploy from CI can reach the hosts over SSH."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from typing import Any

from workflow import WorkflowError, stackfile

ADMIN_CIDRS = "ssh.adminCidrs"


def cidr(text: str) -> str:
    """An address or range as ssh.adminCidrs holds it ("198.51.100.7" -> "198.51.100.7/32");
    never one that opens SSH to every address."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise WorkflowError(f"{text!r} is not an IP address or CIDR") from None
    if net.prefixlen == 0:
        raise WorkflowError(f"{text!r} would open SSH to every address")
    return str(net)


def allow_ssh_from(document: Mapping[str, Any], address: str) -> tuple[dict[str, Any], str]:
    """A stack file with `address` added to ssh.adminCidrs, and what was done. Nothing is added
    when the stack deploys through ssh.bastion (the bastion is what the runner must reach)."""
    address = cidr(address)
    out = copy.deepcopy(dict(document))
    config = out.setdefault("config", {})
    if stackfile.get(config, "platform") == "heroku":
        return out, "platform heroku: the deploy reaches Heroku's API, not a host; nothing to add"
    ssh = stackfile.get(config, "ssh") or {}
    if not isinstance(ssh, Mapping) or set(ssh) == {"secure"}:
        raise WorkflowError(f"{stackfile.key('ssh')[0]} is one secret value; set its keys one by one "
                            "(pulumi config set --path ssh.<key>) so CI can add its address")
    if stackfile.get(config, "ssh.bastion"):
        return out, (f"ssh.bastion is set: the deploy connects through it, so {address} is not added "
                     f"to {ADMIN_CIDRS} (the bastion must let the runner in)")
    cidrs = list(stackfile.get(config, ADMIN_CIDRS) or [])
    if address in cidrs:
        return out, f"{address} is already in {ADMIN_CIDRS}"
    stackfile.put(config, ADMIN_CIDRS, [*cidrs, address])
    return out, f"added {address} to {ADMIN_CIDRS} for this run (the file is not committed)"
