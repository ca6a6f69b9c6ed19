"""`drift`: every host file of the file table (stack/hostfiles.py) compared with what the stack
renders now, content and owner/mode; the units enabled and active as the stack runs them; and
nothing foreign among the front's enabled sites. A unified diff per drifted file; exit 1 on any
drift. `--fix` runs, on the drifted hosts only, the deploy's own steps that install those files
(configure, and env where the secrets are known), validated and health-gated as in a deploy."""

from __future__ import annotations

import base64
import difflib
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from stack import hostfiles, render, scripts
from stack.hostfiles import HostFile, Step
from stack.inventory import Host
from stack.ops.remote import Session, Unreachable, named
from stack.ops.status import units_of
from stack.ops.target import OpsError, Target
from stack.paths import Paths
from stack.rollout import secret_env_text
from stack.scripts.shell import render as render_script
from stack.scripts.steps import Script, context


@dataclass
class Drifted:
    path: str
    step: Step | None  # the deploy step that installs it; None: not a file
    what: str  # "content", "mode 644 (the stack sets 600)", "missing", ...
    diff: str = ""


@dataclass
class HostDrift:
    host: Host
    reachable: bool = True
    error: str = ""
    items: list[Drifted] = field(default_factory=list)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rows_of(target: Target, host: Host) -> list[HostFile]:
    return hostfiles.files_of(target.settings, host.name)


def script(target: Target, host: Host, files: dict[str, str]) -> Script:
    s = target.settings
    checked = [(row.remote(s), sha(files[row.remote(s)]) if row.template else "-")
               for row in rows_of(target, host)]
    body = render_script("ops/drift.sh.j2", **context(s, host.name, str(host.address)),
                         files=checked, units=units_of(s, host.name), nginx=s.front == "nginx")
    return Script("drift", host.name, body, str(host.address))


def compare(target: Target, host: Host, files: dict[str, str], text: str) -> HostDrift:
    s = target.settings
    rows = {row.remote(s): row for row in rows_of(target, host)}
    seen: dict[str, list[str]] = {}
    contents: dict[str, str] = {}
    out = HostDrift(host)
    for line in text.splitlines():
        kind, *values = line.split("\t")
        if kind == "file":
            seen[values[0]] = values[1:]
        elif kind == "content":
            contents[values[0]] = base64.b64decode(values[1]).decode("utf-8", "replace")
        elif kind == "unit":
            name, enabled, active = (values + ["", ""])[:3]
            if enabled not in ("enabled", "static", "indirect", "generated"):
                state = enabled or "not installed"
                out.items.append(Drifted(name, None, f"unit is {state}, the stack enables it"))
            if active != "active":
                out.items.append(Drifted(name, None, f"unit is {active or 'unknown'}, the stack runs it"))
        elif kind == "site":
            site, points = values[0], (values[1] if len(values) > 1 else "")
            if site != Paths(s.app.name).nginx_site_link:
                out.items.append(Drifted(site, None, "a site the stack does not have is enabled "
                                                     f"(-> {points or 'nothing'}); remove it if it "
                                                     "is not yours"))
    for path, row in rows.items():
        values = seen.get(path)
        if values is None or values[0] == "missing":
            out.items.append(Drifted(path, row.step, "missing"))
            continue
        mode, user, group, _ = (values + [""] * 4)[:4]
        if int(mode or "0", 8) != int(row.mode, 8):
            out.items.append(Drifted(path, row.step, f"mode {mode} (the stack sets {row.mode.lstrip('0')})"))
        want_group = row.group_name(s)
        if (user, group) != ("root", want_group):
            out.items.append(Drifted(path, row.step,
                                     f"owner {user}:{group} (the stack sets root:{want_group})"))
        if path in contents and row.template:
            diff = "".join(difflib.unified_diff(
                files[path].splitlines(keepends=True), contents[path].splitlines(keepends=True),
                fromfile=f"stack {s.stack}: {path}", tofile=f"{host.name}: {path}"))
            out.items.append(Drifted(path, row.step, "content", diff))
    return out


def collect(target: Target, ssh: Session, hosts: tuple[Host, ...]) -> list[HostDrift]:
    def one(host: Host) -> HostDrift:
        files = render.render_host(target.settings, host)
        try:
            done = ssh.run(host, script(target, host, files), timeout=60)
        except Unreachable as exc:
            return HostDrift(host, reachable=False, error=exc.detail)
        if done.returncode != 0:
            return HostDrift(host, error=done.stderr.strip() or f"exit {done.returncode}")
        return compare(target, host, files, done.stdout)

    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
        return list(pool.map(one, hosts))


def report(results: list[HostDrift]) -> str:
    lines = []
    for r in results:
        where = named(r.host)
        if not r.reachable:
            lines.append(f"{where}: UNREACHABLE: {r.error}")
            continue
        if r.error:
            lines.append(f"{where}: the drift check failed: {r.error}")
            continue
        if not r.items:
            lines.append(f"{where}: no drift")
            continue
        lines.append(f"{where}: {len(r.items)} drifted")
        for item in r.items:
            lines.append(f"  {item.path}: {item.what}")
        for item in r.items:
            if item.diff:
                lines.append(item.diff.rstrip("\n"))
    return "\n".join(lines) + "\n"


def drifted(results: list[HostDrift]) -> bool:
    return any(r.items or r.error or not r.reachable for r in results)


def fix(target: Target, ssh: Session, result: HostDrift, say: Callable[[str], None]) -> bool:
    """Run the deploy's steps that install what drifted on this host; True when they all passed."""
    s, host = target.settings, result.host
    files = render.render_host(s, host)
    steps = {item.step for item in result.items}
    if any(item.step is None and item.path.endswith((".service", ".socket", ".timer"))
           for item in result.items):
        steps.add(Step.CONFIGURE)  # it enables and starts the app's units and the front again
    ok = True
    if Step.BOOTSTRAP in steps:
        # The host's sshd drop-in: the bootstrap step checks and installs it (pulumi up would not
        # run that step again, its script being unchanged).
        ok = run_step(ssh, host, scripts.bootstrap(s, host.name, str(host.address), files=files), say) and ok
    if Step.ENV in steps:
        if not target.secrets_known:
            say(f"{named(host)}: the env files drifted, and putting them back needs the stack's "
                "secrets: run where the Pulumi CLI is logged in to the stack, or run pulumi up")
            ok = False
        else:
            env_file = Paths(s.app.name).env_file
            made = scripts.env(s, host.name, files[env_file], str(host.address))
            ok = run_step(ssh, host, made, say, stdin=secret_env_text(s, target.database_url)) and ok
    if Step.CONFIGURE in steps:
        ok = run_step(ssh, host, scripts.configure(s, host.name, files, str(host.address)), say) and ok
    for step in sorted(steps - {Step.BOOTSTRAP, Step.ENV, Step.CONFIGURE, None}, key=str):
        say(f"{named(host)}: files of the {step} step drifted "
            f"({', '.join(i.path for i in result.items if i.step is step)}); that step runs with "
            "pulumi up (for the release step: the next release), not with --fix")
        ok = False
    return ok


def run_step(ssh: Session, host: Host, made: Script, say: Callable[[str], None], stdin: str = "") -> bool:
    try:
        done = ssh.run(host, made, timeout=600, stdin=stdin)
    except Unreachable as exc:
        say(str(exc))
        return False
    for line in done.stdout.strip().splitlines():
        say(f"{named(host)}: {line}")
    if done.returncode != 0:
        say(done.stderr.strip())
        return False
    return True


def drift(target: Target, hosts: tuple[Host, ...], *, fix_too: bool, say: Callable[[str], None],
          out: Callable[[str], None]) -> int:
    if fix_too and not hosts:
        raise OpsError("drift --fix: no hosts")
    with Session(target) as ssh:
        results = collect(target, ssh, hosts)
        out(report(results))
        if not drifted(results):
            return 0
        if not fix_too:
            return 1
        fixable = [r for r in results if r.reachable and not r.error and r.items]
        for result in fixable:
            fix(target, ssh, result, say)
        after = collect(target, ssh, tuple(r.host for r in fixable))
        out("after --fix:\n" + report(after))
        return 1 if drifted(after) or any(not r.reachable or r.error for r in results) else 0
