"""`python -m stack render <stack> [--out DIR]`: every file each host of a stack would receive,
rendered offline from Pulumi.<stack>.yaml (no Pulumi CLI, no credentials).
`python -m stack check <stack>`: is the config complete enough to deploy (bin/deploy asks first).
`python -m stack diff <stack> [--base REF]`: how the host files change against a git revision.
`python -m stack status|logs|run|rollback|drift <stack>`: the day-2 verbs (stack/ops/).

Without --out the files are printed, each under a `==> host:path <==` line; with --out they are
written to DIR/<host>/<remote path>. A bad config exits 2 with every settings error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stack import inventory, render, settings
from stack.paths import Paths
from stack.release import ReleaseError
from stack.settings import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_render = commands.add_parser("render", help="render every host file of a stack, offline")
    p_render.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    p_render.add_argument("--out", type=Path, help="write the files under this directory")
    p_render.add_argument("--dir", type=Path, default=None,
                          help="project directory holding Pulumi.<stack>.yaml (default: this project)")
    p_check = commands.add_parser(
        "check", help="check a stack's config is complete for a deploy; prints its platform")
    p_check.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    p_check.add_argument("--dir", type=Path, default=None, help="project directory")
    p_diff = commands.add_parser(
        "diff", help="unified diff of every host file between a git revision and the working tree")
    p_diff.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    p_diff.add_argument("--base", default=None,
                        help="git revision to compare with (default: origin/main, else main)")
    p_diff.add_argument("--exit-code", action="store_true",
                        help="exit 1 when a host file changes (like git diff --exit-code)")
    from stack.ops import cli as ops_cli

    ops_cli.add_parsers(commands)
    argv, words = ops_cli.split_command(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if words:
        args.words = [*args.words, *words]
    if args.command in ops_cli.VERBS:
        return ops_cli.dispatch(args)
    if args.command == "check":
        return cmd_check(args.stack, args.dir)
    if args.command == "diff":
        return cmd_diff(args.stack, args.base, args.exit_code)
    return cmd_render(args.stack, args.out, args.dir)


def cmd_check(stack: str, directory: Path | None) -> int:
    """Exit 0 and print the platform when a deploy has everything it needs from the config."""
    try:
        config = settings.from_stack_file(stack, directory)
    except SettingsError as exc:
        print(exc.report(stack), file=sys.stderr)
        return 2
    from stack import advice

    for note in config.warnings:
        print(f"warning: {note}", file=sys.stderr)
    for note in advice.notes(config):
        print(f"note: {note}", file=sys.stderr)
    if config.deferred:
        count = len(config.deferred)
        print(f"stack {stack!r}: {count} setting{'s' if count != 1 else ''} still to set before a deploy:",
              file=sys.stderr)
        for note in config.deferred:
            print(f"  - {note}", file=sys.stderr)
        return 2
    print(config.platform)
    return 0


def cmd_diff(stack: str, base: str | None, exit_code: bool) -> int:
    from stack import diff

    try:
        report, changed = diff.run(stack, base, settings.project_dir())
    except diff.DiffError as exc:
        print(f"stack diff: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(report)
    return 1 if exit_code and changed else 0


def cmd_render(stack: str, out: Path | None, directory: Path | None) -> int:
    try:
        config = settings.from_stack_file(stack, directory)
    except SettingsError as exc:
        print(exc.report(stack), file=sys.stderr)
        return 2
    if config.platform == settings.HEROKU:
        from stack import dyno

        try:
            # Paths from the archive's root, as a host's are from /.
            files = {"heroku": {f"/{name}": text for name, text in dyno.offline_files(config).items()}}
        except ReleaseError as exc:
            print(f"stack {stack!r}: {exc}", file=sys.stderr)
            return 2
        print("note: a Heroku stack has no host files; these are the release archive's generated "
              "files (requirements.txt is locked by pulumi up)", file=sys.stderr)
    else:
        files = render.render_all(config, inventory.planned(config))
    if out is None:
        for host, host_files in files.items():
            for path, content in host_files.items():
                print(f"==> {host}:{path} <==")
                sys.stdout.write(content)
                print()
    else:
        for host, host_files in files.items():
            for path, content in host_files.items():
                target = render.local_path(out / host, path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
        count = sum(len(f) for f in files.values())
        print(f"{stack}: wrote {count} files for {len(files)} host(s) under {out}")
    for note in config.warnings:
        print(f"warning: {note}", file=sys.stderr)
    for note in config.deferred:
        print(f"note: a deploy still needs {note}", file=sys.stderr)
    if config.app.secret_env and config.platform != settings.HEROKU:
        names = ", ".join(k for k, _ in config.app.secret_env)
        print(f"note: secret environment ({names}) goes to {Paths(config.app.name).secret_env_file} "
              "at deploy time and is not rendered here", file=sys.stderr)
    return 0
