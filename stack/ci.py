"""What the GitHub workflows decide, as plain functions with tests: `python -m stack.ci <command>`.
The workflows' shell scripts (.github/scripts/) only glue these to the Pulumi and GitHub CLIs.

  affected STACK...                 which of the stacks a change can alter (changed paths on stdin)
  preview-comment --results DIR     the pull request's preview comment, as GitHub API JSON
  review-comment STACK --state S    the comment with a review stack's address, as GitHub API JSON
  review-config STACK               write Pulumi.pr-<n>.yaml for a review stack on a fresh runner
  allow-ssh-from STACK CIDR         add the runner's address to Pulumi.<stack>.yaml's ssh.adminCidrs
  expired                           the review stacks the scheduled sweep destroys (JSON list)
  has-stack NAME                    exit 0 when `pulumi stack ls --json` (stdin) lists the stack
  find-comment --marker M           the id of the bot's comment holding <!-- M --> (`gh api` on stdin)

Review stacks on a self-managed backend: the stack's config lives in Pulumi.pr-<n>.yaml, which only
exists on the runner that made it, and such backends keep no stack tags. So every run rebuilds the
file from examples/review.yaml (`review-config`), taking the secrets provider's settings (the
passphrase salt, or the KMS key and its encrypted data key) from the stack's own state, and the
sweep judges a stack's age by the one date `pulumi stack ls --json` gives on every backend: its
last update, which each push renews.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stack import comments

PROJECT = "flask-stack"
SSH_KEY, NETWORK_KEY = f"{PROJECT}:ssh", f"{PROJECT}:network"
REVIEW_STACK = re.compile(r"(?:^|/)pr-([1-9][0-9]{0,8})$")  # "pr-12", or "org/project/pr-12" on Pulumi Cloud
SECRETS_SETTINGS = ("secretsprovider", "encryptedkey", "encryptionsalt")

# Paths whose changes never reach a deployed stack (everything else may, so it counts).
NOT_DEPLOYED_DIRS = (".github/", ".ci/", "bench/", "bin/", "docs/", "examples/", "tests/")
NOT_DEPLOYED_FILES = frozenset({".gitignore", "LICENSE", "pyproject.toml", "requirements-ci.txt"})


class CiError(Exception):
    """A problem the workflow run reports and stops on; the message says what to fix."""


# -- which stacks a change touches --------------------------------------------------------------
def affected(changed: Iterable[str], stacks: Sequence[str]) -> list[str]:
    """The stacks (of `stacks`, in order) that a change to the `changed` paths can alter: a
    stack file alters its own stack; docs at the top, tests, CI and examples alter none; any
    other path (the program, templates, the app, requirements) alters all of them."""
    hit = set()
    for path in (p.strip() for p in changed):
        if not path:
            continue
        own = re.fullmatch(r"Pulumi\.([^/]+)\.yaml", path)
        if own:
            hit.add(own.group(1))
        elif not (path.startswith(NOT_DEPLOYED_DIRS) or path in NOT_DEPLOYED_FILES
                  or ("/" not in path and path.endswith(".md"))):
            return list(stacks)
    return [s for s in stacks if s in hit]


# -- review stacks ------------------------------------------------------------------------------
def review_number(stack: str) -> int:
    match = REVIEW_STACK.search(stack)
    if not match:
        raise CiError(f"{stack!r} is not a review stack name (pr-<number>)")
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


def review_stack_file(template: Mapping[str, Any], *, stack: str, secrets: Mapping[str, str],
                      public_key: str = "", admin_cidr: str = "", expires_at: str = "") -> dict[str, Any]:
    """Pulumi.<stack>.yaml of review stack `stack`: the template's config with the stack's own VPC
    range, its expiry (tagged on its resources), the deploy key's public half and the runner's
    address; the private key is set after, with `pulumi config set --secret`, so it is encrypted
    by the stack's secrets provider."""
    number = review_number(stack)
    config = copy.deepcopy(dict(template.get("config") or {}))
    if expires_at:
        config["flask-stack:expiresAt"] = expires_at
    network = dict(config.get(NETWORK_KEY) or {})
    network["vpcCidr"] = review_cidr(number)
    config[NETWORK_KEY] = network
    ssh = dict(config.get(SSH_KEY) or {})
    if public_key:
        ssh["publicKey"] = public_key.strip()
    if admin_cidr:
        ssh["adminCidrs"] = [_cidr(admin_cidr)]
    if ssh:
        config[SSH_KEY] = ssh
    return {**secrets, "config": config}


def allow_ssh_from(document: Mapping[str, Any], cidr: str) -> tuple[dict[str, Any], str]:
    """A stack file with `cidr` added to ssh.adminCidrs, and what was done. Nothing is added when
    the stack deploys through ssh.bastion (the bastion is what the runner must reach)."""
    cidr = _cidr(cidr)
    out = copy.deepcopy(dict(document))
    config = out.setdefault("config", {})
    ssh = config.get(SSH_KEY) or {}
    if not isinstance(ssh, Mapping) or set(ssh) == {"secure"}:
        raise CiError(f"{SSH_KEY} is one secret value; set its keys one by one "
                      "(pulumi config set --path ssh.<key>) so CI can add its address")
    if ssh.get("bastion"):
        return out, (f"ssh.bastion is set: the deploy connects through it, so {cidr} is not added "
                     "to ssh.adminCidrs (the bastion must let the runner in)")
    cidrs = list(ssh.get("adminCidrs") or [])
    if cidr in cidrs:
        return out, f"{cidr} is already in ssh.adminCidrs"
    config[SSH_KEY] = {**ssh, "adminCidrs": [*cidrs, cidr]}
    return out, f"added {cidr} to ssh.adminCidrs for this run (the file is not committed)"


def _cidr(text: str) -> str:
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise CiError(f"{text!r} is not an IP address or CIDR") from None
    if net.prefixlen == 0:
        raise CiError(f"{text!r} would open SSH to every address")
    return str(net)


# -- the scheduled sweep ------------------------------------------------------------------------
@dataclass(frozen=True)
class Expired:
    name: str  # as `pulumi stack ls` printed it, for `pulumi destroy --stack`
    number: int
    reason: str


def parse_time(text: Any) -> datetime | None:
    """A time as `pulumi stack ls --json` prints it ("2026-11-24T08:00:00.000Z", or with an
    offset in older CLIs); None when absent or unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def expired(stacks: Iterable[Mapping[str, Any]], *, now: datetime, ttl: timedelta,
            open_prs: set[int] | None = None) -> list[Expired]:
    """The review stacks to destroy: those whose pull request is no longer open (when the open
    ones are known), and those not updated for longer than `ttl`. A stack with no update yet is
    being created (or its first update failed): it is left alone while its pull request is open."""
    found = []
    for entry in stacks:
        name = str(entry.get("name", ""))
        match = REVIEW_STACK.search(name)
        if not match:
            continue
        number = int(match.group(1))
        if entry.get("updateInProgress"):  # Pulumi Cloud says so; an update runs right now
            continue
        if open_prs is not None and number not in open_prs:
            found.append(Expired(name, number, f"pull request #{number} is closed"))
            continue
        last = parse_time(entry.get("lastUpdate"))
        if last is not None and now - last > ttl:
            days = (now - last).days
            found.append(Expired(name, number, f"no push for {days} days (last update "
                                               f"{last.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"))
    return found


def has_stack(listing: Iterable[Mapping[str, Any]], name: str) -> bool:
    """Whether `pulumi stack ls --json` lists `name` (plain, or qualified as on Pulumi Cloud)."""
    return any(str(e.get("name", "")) == name or str(e.get("name", "")).endswith(f"/{name}")
               for e in listing)


# -- pull-request comments ------------------------------------------------------------------------
BOT = "github-actions[bot]"


def json_values(text: str) -> list[Any]:
    """Every JSON value in `text`: `gh api --paginate` prints one array per page, back to back."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return values
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError as exc:
            raise CiError(f"not JSON at character {at}: {exc}") from None
        values.append(value)


def find_comment(pages: Iterable[Any], marker: str, author: str = BOT) -> int | None:
    """The id of the first comment by `author` that holds `<!-- marker -->`; a comment by anyone
    else is never edited, even if it quotes the marker."""
    tag = f"<!-- {marker} -->"
    for page in pages:
        for item in page if isinstance(page, list) else [page]:
            if not isinstance(item, Mapping):
                continue
            login = (item.get("user") or {}).get("login")
            if login == author and tag in str(item.get("body") or ""):
                return int(item["id"])
    return None


# -- command line -------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.ci", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("affected", help="the stacks a change can alter (changed paths on stdin)")
    p.add_argument("stacks", nargs="*")

    p = commands.add_parser("preview-comment", help="the preview comment as GitHub API JSON")
    p.add_argument("--results", type=Path, required=True, help="directory .github/scripts/pr-preview filled")
    p.add_argument("--title", required=True)
    p.add_argument("--footer", default="")
    p.add_argument("--where", default="the workflow run's log", help="where the whole outputs are")

    p = commands.add_parser("review-comment", help="the review stack comment as GitHub API JSON")
    p.add_argument("stack")
    p.add_argument("--state", choices=("up", "failed", "destroyed"), required=True)
    p.add_argument("--url", default="")
    p.add_argument("--sha", default="")
    p.add_argument("--ttl-days", type=float, default=7)
    p.add_argument("--reason", default="")
    p.add_argument("--run-url", default="")

    p = commands.add_parser("review-config", help="write Pulumi.<stack>.yaml of a review stack")
    p.add_argument("stack")
    p.add_argument("--template", type=Path, default=Path("examples/review.yaml"))
    p.add_argument("--export", type=Path, help="`pulumi stack export` of the stack, when it exists")
    p.add_argument("--public-key", default="")
    p.add_argument("--admin-cidr", default="")
    p.add_argument("--ttl-days", type=float, default=7,
                   help="expiresAt = now + this (the sweep's REVIEW_STACK_TTL_DAYS)")
    p.add_argument("--dir", type=Path, default=Path("."))

    p = commands.add_parser("allow-ssh-from", help="add an address to Pulumi.<stack>.yaml's ssh.adminCidrs")
    p.add_argument("stack")
    p.add_argument("cidr")
    p.add_argument("--dir", type=Path, default=Path("."))

    p = commands.add_parser("expired", help="review stacks to destroy, from `pulumi stack ls --json`")
    p.add_argument("--stack-ls", type=Path, help="its output (default: stdin)")
    p.add_argument("--open-prs", type=Path, help="`gh pr list --state open --json number` output")
    p.add_argument("--ttl-days", type=float, default=7)
    p.add_argument("--now", help="ISO time to judge by (default: now)")
    p.add_argument("--only", help="judge this stack (pr-<n>) only; an empty list: keep it")

    p = commands.add_parser("has-stack", help="exit 0 when `pulumi stack ls --json` (stdin) lists NAME")
    p.add_argument("name")

    p = commands.add_parser("find-comment", help="id of the bot's comment holding the marker")
    p.add_argument("--marker", required=True)
    p.add_argument("--author", default=BOT)

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CiError as exc:
        print(f"stack.ci {args.command}: {exc}", file=sys.stderr)
        return 2


def _affected(args: argparse.Namespace) -> int:
    for stack in affected(sys.stdin.read().splitlines(), args.stacks):
        print(stack)
    return 0


def _preview_comment(args: argparse.Namespace) -> int:
    body = comments.preview_comment(args.results, title=args.title, footer=args.footer, where=args.where)
    json.dump({"body": body}, sys.stdout)
    return 0


def _review_comment(args: argparse.Namespace) -> int:
    body = comments.review_comment(args.stack, state=args.state, url=args.url, sha=args.sha,
                                   ttl_days=args.ttl_days, reason=args.reason, run_url=args.run_url,
                                   now=datetime.now(UTC))
    json.dump({"body": body}, sys.stdout)
    return 0


def _review_config(args: argparse.Namespace) -> int:
    target = args.dir / f"Pulumi.{args.stack}.yaml"
    existing = _load_yaml(target) if target.is_file() else None
    export = _load_json(args.export) if args.export else None
    secrets = secrets_settings(existing, export)
    expires = (datetime.now(UTC) + timedelta(days=args.ttl_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = review_stack_file(_load_yaml(args.template), stack=args.stack, secrets=secrets,
                                 public_key=args.public_key, admin_cidr=args.admin_cidr,
                                 expires_at=expires)
    _write_yaml(target, document, f"Review stack {args.stack}, written by `python -m stack.ci "
                                  f"review-config` from {args.template.as_posix()}: not to be committed.")
    kind = ", ".join(sorted(secrets)) or "none yet"
    print(f"wrote {target} (vpcCidr {review_cidr(review_number(args.stack))}; secrets settings: {kind})",
          file=sys.stderr)
    return 0


def _allow_ssh_from(args: argparse.Namespace) -> int:
    target = args.dir / f"Pulumi.{args.stack}.yaml"
    if not target.is_file():
        raise CiError(f"{target} does not exist")
    document, done = allow_ssh_from(_load_yaml(target), args.cidr)
    _write_yaml(target, document, f"Pulumi.{args.stack}.yaml with this CI run's address in ssh.adminCidrs.")
    print(f"{args.stack}: {done}", file=sys.stderr)
    return 0


def _expired(args: argparse.Namespace) -> int:
    listing = _load_json(args.stack_ls) if args.stack_ls else json.loads(sys.stdin.read() or "[]")
    if not isinstance(listing, list):
        raise CiError("expected the JSON list `pulumi stack ls --json` prints")
    open_prs = None
    if args.open_prs:
        prs = _load_json(args.open_prs)
        open_prs = {int(pr["number"]) for pr in prs if isinstance(pr, Mapping) and "number" in pr}
    now = parse_time(args.now) if args.now else datetime.now(UTC)
    if now is None:
        raise CiError(f"--now {args.now!r} is not an ISO time")
    found = expired(listing, now=now, ttl=timedelta(days=args.ttl_days), open_prs=open_prs)
    # Plain pr-<n> names: the workflows run in the project's directory, and a stack's concurrency
    # group (flask-stack-pr-<n>) must be the same whoever runs on it.
    names = [f"pr-{item.number}" for item in found]
    if args.only:
        names = [name for name in names if name == args.only]
    for item in found:
        if not args.only or f"pr-{item.number}" == args.only:
            print(f"pr-{item.number}: {item.reason}", file=sys.stderr)
    print(json.dumps(names))
    return 0


def _has_stack(args: argparse.Namespace) -> int:
    listing = json.loads(sys.stdin.read() or "[]")
    if not isinstance(listing, list):
        raise CiError("expected the JSON list `pulumi stack ls --json` prints")
    return 0 if has_stack(listing, args.name) else 1


def _find_comment(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[a-z0-9-]+", args.marker):
        raise CiError(f"marker {args.marker!r}: use lower-case letters, digits and dashes")
    found = find_comment(json_values(sys.stdin.read()), args.marker, args.author)
    if found is not None:
        print(found)
    return 0


COMMANDS = {"affected": _affected, "preview-comment": _preview_comment, "review-comment": _review_comment,
            "review-config": _review_config, "allow-ssh-from": _allow_ssh_from, "expired": _expired,
            "has-stack": _has_stack, "find-comment": _find_comment}


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CiError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict):
        raise CiError(f"{path}: expected a mapping")
    return document


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text() or "null")
    except (OSError, ValueError) as exc:
        raise CiError(f"cannot read {path}: {exc}") from None


def _write_yaml(path: Path, document: Mapping[str, Any], note: str) -> None:
    import yaml

    text = yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False, width=120)
    path.write_text(f"# {note}\n{text}")


if __name__ == "__main__":
    sys.exit(main())
