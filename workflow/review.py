"""Review stacks: one per open pull request, named pr-<number>, with a stack file of their own.

On a self-managed backend the stack's config lives in Pulumi.pr-<n>.yaml, which only exists on
the runner that made it. So every run rebuilds the file from examples/review.yaml
(`review_stack_file`), taking the secrets provider's settings (the passphrase salt, or the KMS key
and its encrypted data key) from the file `pulumi stack init` wrote or the stack's own state.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from stack.settings import PROJECT
from workflow import WorkflowError, runner, stackfile

REVIEW_STACK = re.compile(r"(?:^|/)pr-([1-9][0-9]{0,8})$")  # "pr-12", or "org/project/pr-12" on Pulumi Cloud
SECRETS_SETTINGS = ("secretsprovider", "encryptedkey", "encryptionsalt")


def review_number(stack: str) -> int:
    match = REVIEW_STACK.search(stack)
    if not match:
        raise WorkflowError(f"{stack!r} is not a review stack name (pr-<number>)")
    return int(match.group(1))


def review_cidr(number: int) -> str:
    """The VPC range of review stack pr-<number>: a /24 of 10.128.0.0/10, so 16384 pull requests
    in a row get distinct ranges (DigitalOcean refuses overlapping VPCs in an account), clear of
    the dev, staging and prod examples' 10.20/10.30/10.40 and DigitalOcean's reserved 10.244-246."""
    index = number % 16384
    return f"10.{128 + index // 256}.{index % 256}.0/24"


def secrets_settings(existing: Mapping[str, Any] | None, export: Mapping[str, Any] | None) -> dict[str, str]:
    """The secrets provider's lines of a stack file: those of the file `pulumi stack init` just
    wrote, else rebuilt from the stack's state (`pulumi stack export`), which records the
    provider: passphrase (its salt) or a cloud KMS (its URL and the encrypted data key)."""
    if existing:
        kept = {k: str(existing[k]) for k in SECRETS_SETTINGS if existing.get(k)}
        if kept:
            return kept
    deployment = (export or {}).get("deployment") or {}
    provider = deployment.get("secrets_providers") or {}
    state = provider.get("state") or {}
    if provider.get("type") == "passphrase" and state.get("salt"):
        return {"encryptionsalt": str(state["salt"])}
    if provider.get("type") == "cloud" and state.get("url"):
        out = {"secretsprovider": str(state["url"])}
        if state.get("encryptedkey"):
            out["encryptedkey"] = str(state["encryptedkey"])
        return out
    return {}  # Pulumi Cloud's own secrets ("service"), or a stack that was never deployed


def review_app_name(base: str, number: int) -> str:
    """The Heroku app of review stack pr-<number>: the template's app name with -pr-<number>,
    cut to Heroku's 30 characters (app names are global, so it must not be the template's)."""
    suffix = f"-pr-{number}"
    return base[:30 - len(suffix)].rstrip("-") + suffix


def review_stack_file(template: Mapping[str, Any], *, stack: str, secrets: Mapping[str, str],
                      public_key: str = "", admin_cidr: str = "", expires_at: str = "") -> dict[str, Any]:
    """Pulumi.<stack>.yaml of review stack `stack`: the template's config with the stack's own VPC
    range, its expiry (tagged on its resources), the deploy key's public half and the runner's
    address; the private key is set after, with `pulumi config set --secret`, so it is encrypted
    by the stack's secrets provider."""
    number = review_number(stack)
    config = copy.deepcopy(dict(template.get("config") or {}))
    if expires_at:
        stackfile.put(config, "expiresAt", expires_at)
    if stackfile.get(config, "platform") == "heroku":  # an app of its own; no network, no SSH
        base = stackfile.get(config, "heroku.appName") or PROJECT
        stackfile.put(config, "heroku.appName", review_app_name(str(base), number))
        return {**secrets, "config": config}
    stackfile.put(config, "network.vpcCidr", review_cidr(number))
    if public_key:
        stackfile.put(config, "ssh.publicKey", public_key.strip())
    if admin_cidr:
        stackfile.put(config, runner.ADMIN_CIDRS, [runner.cidr(admin_cidr)])
    return {**secrets, "config": config}
