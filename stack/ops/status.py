"""`status`: per host, reachable or not, the release it serves and keeps, its health through the
front, every unit of the app with its state and since when, the certificate's expiry and the
disk its releases take. Exit 1 when a host is unreachable, unhealthy or off the stack's release."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from stack import hostfiles
from stack.inventory import Host
from stack.ops.remote import Session, Unreachable
from stack.ops.target import Target
from stack.paths import Paths
from stack.scripts.shell import render
from stack.scripts.steps import Script, context
from stack.settings import Settings


@dataclass
class Unit:
    name: str
    active: str  # ActiveState: active, inactive, failed, activating...
    sub: str  # SubState: running, listening, waiting, dead...
    since: float | None  # when it entered that state (UNIX time)
    enabled: str  # UnitFileState: enabled, disabled, static...

    @property
    def ok(self) -> bool:
        if self.name.endswith(".timer") or self.name.endswith(".socket"):
            return self.active == "active"
        return self.active == "active" and self.sub == "running"


@dataclass
class HostStatus:
    host: str
    address: str
    reachable: bool
    error: str = ""
    current: str = ""  # the release `current` points at
    deployed: str = ""  # the release the last deploy made current here
    kept: list[tuple[str, float]] = field(default_factory=list)  # (release, unpacked at), newest first
    releases_bytes: int | None = None
    free_bytes: int | None = None
    health_status: int = 0
    health_seconds: float = 0.0
    units: list[Unit] = field(default_factory=list)
    certificate_expires: str | None = None
    certificate_issuer: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.reachable and not self.problems


def units_of(settings: Settings, host: str) -> list[str]:
    """Every unit this host runs for the stack, in the order status shows them."""
    p = Paths(settings.app.name)
    units = [p.socket_name, p.service_name]
    for proc in settings.processes:
        if hostfiles.runs_on(settings, proc, host):
            prefix = p.process_name(proc.name).removesuffix(".service")
            units += [f"{prefix}{i}.service" for i in range(1, proc.count + 1)]
    units += [p.schedule_name(job.name, "timer") for job in settings.schedules
              if hostfiles.runs_on(settings, job, host)]
    units.append("nginx.service" if settings.front == "nginx" else "haproxy.service")
    if settings.tls.enabled:
        units.append("certbot.timer")
    return units


def script(settings: Settings, host: Host) -> Script:
    body = render("ops/status.sh.j2", **context(settings, host.name, str(host.address)),
                  units=units_of(settings, host.name))
    return Script("status", host.name, body, str(host.address))


def parse(host: Host, text: str) -> HostStatus:
    out = HostStatus(host.name, str(host.address), reachable=True)
    for line in text.splitlines():
        kind, *values = line.split("\t")
        if kind == "current":
            out.current = values[0]
        elif kind == "deployed":
            out.deployed = values[0]
        elif kind == "kept":
            out.kept.append((values[0], float(values[1] or 0)))
        elif kind == "disk":
            out.releases_bytes = int(values[0]) if values[0].isdigit() else None
            out.free_bytes = int(values[1]) if len(values) > 1 and values[1].isdigit() else None
        elif kind == "health":
            out.health_status = int(values[0]) if values[0].isdigit() else 0
            out.health_seconds = float(values[1]) if len(values) > 1 and values[1] else 0.0
        elif kind == "unit":
            name, active, sub, since, enabled = (values + [""] * 5)[:5]
            out.units.append(Unit(name, active, sub, float(since) if since.strip() else None, enabled))
        elif kind == "certificate":
            out.certificate_expires = values[0] or None
            out.certificate_issuer = values[1] if len(values) > 1 and values[1] else None
    out.kept.sort(key=lambda k: k[1], reverse=True)
    return out


def judge(target: Target, status: HostStatus) -> None:
    """What is wrong with a host, in the words status prints."""
    s = target.settings
    if not status.current:
        status.problems.append("serves no release (nothing deployed here yet)")
    expected = target.release or status.deployed
    if status.current and expected and status.current != expected:
        if status.current != status.deployed and status.deployed:
            status.problems.append(f"rolled back: serves {status.current}, the stack's release is {expected}")
        else:
            status.problems.append(f"serves {status.current}, not the stack's release {expected}")
    if status.health_status != 200:
        status.problems.append(f"{s.deploy.health_path} answers {status.health_status or 'nothing'} "
                               "through the front")
    for unit in status.units:
        if not unit.ok:
            status.problems.append(f"{unit.name} is {unit.active} ({unit.sub})")


def collect(target: Target, hosts: tuple[Host, ...]) -> list[HostStatus]:
    with Session(target) as ssh:
        def one(host: Host) -> HostStatus:
            try:
                done = ssh.run(host, script(target.settings, host), timeout=60)
            except Unreachable as exc:
                return HostStatus(host.name, str(host.address), reachable=False, error=exc.detail)
            if done.returncode != 0:
                return HostStatus(host.name, str(host.address), reachable=True,
                                  error=done.stderr.strip() or f"exit {done.returncode}",
                                  problems=["its status script failed"])
            status = parse(host, done.stdout)
            judge(target, status)
            return status

        with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
            return list(pool.map(one, hosts))


def ago(when: float | None, now: float) -> str:
    if not when:
        return "-"
    seconds = max(0, int(now - when))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("GB", "MB", "kB"):
        scale = {"GB": 1e9, "MB": 1e6, "kB": 1e3}[unit]
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def report(target: Target, statuses: list[HostStatus], now: float | None = None) -> str:
    now = now or time.time()
    s = target.settings
    release = target.release or "as deployed on each host"
    lines = [f"stack {s.stack} ({s.platform}, {s.front}), release {release}"]
    for st in statuses:
        head = f"{st.host} ({st.address})"
        if not st.reachable:
            lines += ["", f"{head}: UNREACHABLE: {st.error}"]
            continue
        lines += ["", f"{head}: {'ok' if st.healthy else 'PROBLEM'}"]
        if st.error:
            lines.append(f"  error: {st.error}")
        mark = "" if not st.deployed or st.current == st.deployed else f" (deployed: {st.deployed})"
        lines.append(f"  release  {st.current or '-'}{mark}")
        kept = ", ".join(f"{r}{' (current)' if r == st.current else ''}" for r, _ in st.kept)
        lines.append(f"  kept     {kept or '-'}")
        lines.append(f"  health   {s.deploy.health_path} -> {st.health_status or 'no answer'} "
                     f"in {st.health_seconds * 1000:.0f} ms")
        for unit in st.units:
            lines.append(f"  {unit.name:<34} {unit.active + ' (' + unit.sub + ')':<22} "
                         f"{ago(unit.since, now):<12} {unit.enabled}")
        if s.tls.enabled:
            lines.append(f"  tls      expires {st.certificate_expires or '?'}"
                         + (f", issuer {st.certificate_issuer}" if st.certificate_issuer else ""))
        lines.append(f"  disk     releases {size(st.releases_bytes)}, {size(st.free_bytes)} free")
        lines += [f"  ! {problem}" for problem in st.problems]
    return "\n".join(lines) + "\n"


def as_json(target: Target, statuses: list[HostStatus]) -> dict:
    return {"stack": target.settings.stack, "release": target.release,
            "hosts": [{**asdict(st), "healthy": st.healthy} for st in statuses]}


def exit_code(statuses: list[HostStatus]) -> int:
    return 0 if all(st.healthy for st in statuses) else 1

