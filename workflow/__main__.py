"""What the GitHub workflows decide, as plain functions with tests: `python -m workflow <command>`.
The workflows' shell scripts (.github/scripts/) only glue these to the Pulumi and GitHub CLIs.

  affected STACK...                 which of the stacks a change can alter (changed paths on stdin)
  preview-comment --results DIR     the pull request's preview comment, as GitHub API JSON
  review-comment STACK --state S    the comment with a review stack's address, as GitHub API JSON
  review-config STACK               write Pulumi.pr-<n>.yaml for a review stack on a fresh runner
  allow-ssh-from STACK CIDR         add the runner's address to Pulumi.<stack>.yaml's ssh.adminCidrs
  expired                           the review stacks the scheduled sweep destroys (JSON list)
  platform FILE                     the platform a stack file names
  has-stack NAME                    exit 0 when `pulumi stack ls --json` (stdin) lists the stack
  find-comment --marker M           the id of the bot's comment holding <!-- M --> (`gh api` on stdin)

A stack file is written only once the settings loader accepts it; otherwise the command fails
with the loader's report and leaves the file as it was.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from workflow import WorkflowError, comments, github, review, runner, stackfile, sweep
from workflow.affected import affected

PROG = "python -m workflow"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)

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

    p = commands.add_parser("platform", help="the platform a stack file names")
    p.add_argument("file", type=Path)

    p = commands.add_parser("has-stack", help="exit 0 when `pulumi stack ls --json` (stdin) lists NAME")
    p.add_argument("name")

    p = commands.add_parser("find-comment", help="id of the bot's comment holding the marker")
    p.add_argument("--marker", required=True)
    p.add_argument("--author", default=github.BOT)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except WorkflowError as exc:
        print(f"workflow {args.command}: {exc}", file=sys.stderr)
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
    existing = stackfile.read_yaml(target) if target.is_file() else None
    export = stackfile.read_json(args.export) if args.export else None
    secrets = review.secrets_settings(existing, export)
    expires = (datetime.now(UTC) + timedelta(days=args.ttl_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = review.review_stack_file(stackfile.read_yaml(args.template), stack=args.stack,
                                        secrets=secrets, public_key=args.public_key,
                                        admin_cidr=args.admin_cidr, expires_at=expires)
    stackfile.write(args.dir, args.stack, document,
                    f"Review stack {args.stack}, written by `{PROG} review-config` from "
                    f"{args.template.as_posix()}: not to be committed.")
    kind = ", ".join(sorted(secrets)) or "none yet"
    vpc = review.review_cidr(review.review_number(args.stack))
    print(f"wrote {target} (vpcCidr {vpc}; secrets settings: {kind})", file=sys.stderr)
    return 0


def _allow_ssh_from(args: argparse.Namespace) -> int:
    target = args.dir / f"Pulumi.{args.stack}.yaml"
    if not target.is_file():
        raise WorkflowError(f"{target} does not exist")
    document, done = runner.allow_ssh_from(stackfile.read_yaml(target), args.cidr)
    stackfile.write(args.dir, args.stack, document,
                    f"Pulumi.{args.stack}.yaml with this CI run's address in {runner.ADMIN_CIDRS}.")
    print(f"{args.stack}: {done}", file=sys.stderr)
    return 0


def _expired(args: argparse.Namespace) -> int:
    listing = stackfile.read_json(args.stack_ls) if args.stack_ls else json.loads(sys.stdin.read() or "[]")
    if not isinstance(listing, list):
        raise WorkflowError("expected the JSON list `pulumi stack ls --json` prints")
    open_prs = None
    if args.open_prs:
        prs = stackfile.read_json(args.open_prs)
        open_prs = {int(pr["number"]) for pr in prs if isinstance(pr, Mapping) and "number" in pr}
    now = sweep.parse_time(args.now) if args.now else datetime.now(UTC)
    if now is None:
        raise WorkflowError(f"--now {args.now!r} is not an ISO time")
    found = sweep.expired(listing, now=now, ttl=timedelta(days=args.ttl_days), open_prs=open_prs)
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


def _platform(args: argparse.Namespace) -> int:
    print(stackfile.get(stackfile.read_yaml(args.file).get("config") or {}, "platform") or "")
    return 0


def _has_stack(args: argparse.Namespace) -> int:
    listing = json.loads(sys.stdin.read() or "[]")
    if not isinstance(listing, list):
        raise WorkflowError("expected the JSON list `pulumi stack ls --json` prints")
    return 0 if sweep.has_stack(listing, args.name) else 1


def _find_comment(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[a-z0-9-]+", args.marker):
        raise WorkflowError(f"marker {args.marker!r}: use lower-case letters, digits and dashes")
    found = github.find_comment(github.json_values(sys.stdin.read()), args.marker, args.author)
    if found is not None:
        print(found)
    return 0


COMMANDS = {"affected": _affected, "preview-comment": _preview_comment, "review-comment": _review_comment,
            "review-config": _review_config, "allow-ssh-from": _allow_ssh_from, "expired": _expired,
            "has-stack": _has_stack, "find-comment": _find_comment, "platform": _platform}


if __name__ == "__main__":
    sys.exit(main())
