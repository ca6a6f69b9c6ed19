"""`rollback [RELEASE]`: every host back to the release before the one it serves (or the one
named), in the stack's batches (deploy.batchSize) with the deploy's health gate. Nothing
changes until every host has been reached and keeps that release; a host that fails the gate
goes back to what it served, and the hosts after it are not touched."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from stack.inventory import Host
from stack.ops import status as status_verb
from stack.ops.remote import Session, Unreachable, named
from stack.ops.target import OpsError, Target
from stack.paths import Paths
from stack.rollout import batches
from stack.scripts.shell import render
from stack.scripts.steps import PROCESS_SETTLE, Script, context, preflight

RELEASE_ID = re.compile(r"[0-9a-f]{20}")


@dataclass
class Switched:
    host: str
    ok: bool
    message: str


def script(target: Target, host: Host, release: str) -> Script:
    settings = target.settings
    release_dir = f"{Paths(settings.app.name).releases}/{release}"
    body = render("ops/rollback.sh.j2", **context(settings, host.name, str(host.address)),
                  release=release, settle=PROCESS_SETTLE, target=release_dir,
                  **preflight(settings, release_dir, release, '"$entry"'))
    return Script("rollback", host.name, body, str(host.address))


def choose(statuses: list[status_verb.HostStatus], wanted: str | None) -> str:
    """The release to go back to: `wanted`, or the newest release kept on the first host that is
    older than the one it serves. Every host must keep it."""
    for st in statuses:
        if not st.reachable:
            raise OpsError(f"host {st.host} ({st.address}) cannot be reached ({st.error}); nothing was "
                           "rolled back (a rollback switches every host or none)")
    first = statuses[0]
    if wanted is None:
        kept = [release for release, _ in first.kept]
        if first.current not in kept:
            raise OpsError(f"host {first.host} serves no kept release; name the release to go back to")
        older = kept[kept.index(first.current) + 1:]
        if not older:
            raise OpsError(f"host {first.host} keeps no release older than {first.current} "
                           "(deploy.releasesKept); name one of its kept releases")
        wanted = older[0]
    elif not RELEASE_ID.fullmatch(wanted):
        raise OpsError(f"{wanted!r} is not a release id (20 hex digits, as status lists them)")
    for st in statuses:
        if wanted not in [release for release, _ in st.kept]:
            kept = ", ".join(r for r, _ in st.kept) or "none"
            raise OpsError(f"host {st.host} ({st.address}) does not keep release {wanted} (it keeps "
                           f"{kept}); nothing was rolled back")
    return wanted


def rollback(target: Target, wanted: str | None, say: Callable[[str], None]) -> int:
    statuses = status_verb.collect(target, target.hosts)
    release = choose(statuses, wanted)
    say(f"rolling stack {target.settings.stack} back to release {release}, "
        f"{target.settings.deploy.batch_size} host(s) at a time")
    with Session(target) as ssh:
        def one(host: Host) -> Switched:
            try:
                done = ssh.run(host, script(target, host, release),
                               timeout=target.settings.deploy.health_timeout * 4 + 120)
            except Unreachable as exc:
                return Switched(host.name, False, str(exc))
            text = (done.stdout.strip().splitlines() or [""])[-1]
            return Switched(host.name, done.returncode == 0,
                            text if done.returncode == 0 else done.stderr.strip())

        for batch in batches(list(target.hosts), target.settings.deploy.batch_size):
            with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                results = list(pool.map(one, batch))
            for result in results:
                say(result.message if result.ok else f"FAILED: {result.message}")
            failed = [r for r in results if not r.ok]
            if failed:
                rest = [named(h) for h in target.hosts if h.name not in {r.host for r in results}]
                say(f"rollback stopped at {', '.join(r.host for r in failed)}"
                    + (f"; not touched: {', '.join(rest)}" if rest else ""))
                return 1
    say(f"every host serves release {release}. The next pulumi up deploys the working tree again "
        "(docs/operations.md: after a rollback)")
    return 0
