"""The verbs' command line: `python -m stack <verb> <stack> [options]` (or `bin/stack`).

Exit codes: 0 all is well; 1 what the verb checks is not (a host unhealthy, drift, a failed
rollback), or for `run` the command's own code; 2 the verb could not run (bad arguments, a
stack that cannot be read, no way to find its hosts)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stack.ops.target import OpsError, resolve

VERBS = ("status", "logs", "run", "rollback", "drift")


def add_parsers(commands) -> None:
    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help_text)
        p.add_argument("stack", help="stack name: Pulumi.<stack>.yaml, and its outputs via the Pulumi CLI")
        p.add_argument("--dir", type=Path, default=None, help="project directory (default: this project)")
        p.add_argument("--identity", type=Path, default=None,
                       help="SSH private key file (default: the stack's ssh.privateKey when the Pulumi "
                            "CLI can decrypt it, else your agent and ~/.ssh)")
        return p

    p = verb("status", "per host: release, health, units, certificate, disk; exit 1 on a problem")
    p.add_argument("--host", action="append", help="only this host (name or address); repeatable")
    p.add_argument("--json", action="store_true", help="JSON for scripts")
    p = verb("logs", "the app's and the front's logs of every host, merged in time order")
    p.add_argument("--host", action="append", help="only this host (name or address); repeatable")
    p.add_argument("--unit", "--process", action="append", dest="unit",
                   help="web, front, alerts (reports of failed units), a process or schedule "
                        "name, or a unit's full name; repeatable")
    p.add_argument("--access", action="store_true", help="the front's access log too (Nginx's file)")
    p.add_argument("--since", help="an age (30s, 10m, 2h, 3d) or a time (2026-12-03T05:00, UTC)")
    p.add_argument("--grep", help="only lines matching this regular expression")
    p.add_argument("-n", "--lines", type=int, default=100, help="how many lines of history (default 100)")
    p.add_argument("-f", "--follow", action="store_true", help="then print new lines as they come")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p = verb("run", "one command in the app's environment on one host (interactive with a terminal)")
    p.add_argument("--host", help="the host (name or address; default the first)")
    p.add_argument("words", nargs="*", metavar="-- command",
                   help="the command and its arguments, after -- (the last thing on the line)")
    p = verb("rollback", "every host back to the previous release (or RELEASE), batch by batch, gated")
    p.add_argument("release", nargs="?", help="a kept release id (default: the one before the current)")
    p = verb("drift", "host files, units and sites compared with what the stack renders; exit 1 on drift")
    p.add_argument("--host", action="append", help="only this host (name or address); repeatable")
    p.add_argument("--fix", action="store_true",
                   help="run the configure (and env) step on the drifted hosts, as a deploy does")


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """`run`'s command is everything after the first `--`, whatever options it has."""
    if argv[:1] == ["run"] and "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dispatch(args: argparse.Namespace) -> int:
    try:
        target = resolve(args.stack, args.dir, args.identity)
        if args.command == "status":
            from stack.ops import status

            statuses = status.collect(target, target.chosen(args.host))
            if args.json:
                print(json.dumps(status.as_json(target, statuses), indent=2))
            else:
                sys.stdout.write(status.report(target, statuses))
            return status.exit_code(statuses)
        if args.command == "logs":
            from stack.ops import logs

            query = logs.Query(units=args.unit, access=args.access, lines=max(0, args.lines),
                               since=logs.parse_since(args.since), grep=args.grep)
            return logs.show(target, target.chosen(args.host), query, follow_too=args.follow,
                             json_out=args.json, warn=err)
        if args.command == "run":
            from stack.ops import console

            return console.run(target, target.host(args.host), args.words)
        if args.command == "rollback":
            from stack.ops import rollback

            return rollback.rollback(target, args.release, lambda m: print(m, flush=True))
        from stack.ops import drift

        return drift.drift(target, target.chosen(args.host), fix_too=args.fix, say=err,
                           out=lambda text: sys.stdout.write(text))
    except OpsError as exc:
        err(f"python -m stack {args.command} {args.stack}: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
