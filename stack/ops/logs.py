"""`logs`: the journal of the app's units and the front's logs of every host, merged in time
order, each line led by its time and host. `--follow` streams new lines as they come."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stack.inventory import Host
from stack.ops.remote import Session, Unreachable, named
from stack.ops.status import units_of
from stack.ops.target import OpsError, Target
from stack.paths import Paths
from stack.scripts.shell import render
from stack.scripts.steps import Script, context
from stack.settings import Settings

NGINX_ACCESS = "/var/log/nginx/access.log"
NGINX_ERROR = "/var/log/nginx/error.log"
SINCE = re.compile(r"(\d+)\s*(s|m|min|h|d)")


@dataclass(frozen=True)
class Line:
    time: datetime
    host: str
    source: str  # the unit's identifier, or nginx-access / nginx-error
    text: str

    def show(self) -> str:
        stamp = self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return f"{stamp} {self.host} {self.source}: {self.text}"


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`--since`: 30s, 10m, 2h, 3d ago, or an ISO time (UTC unless it says otherwise)."""
    if not text:
        return None
    now = now or datetime.now(UTC)
    if match := SINCE.fullmatch(text.strip()):
        amount, unit = int(match[1]), match[2]
        seconds = amount * {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}[unit]
        return now - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise OpsError(f"--since {text!r}: give an age like 30s, 10m, 2h or 3d, or a time like "
                       "2026-12-03T05:00") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def choose_units(settings: Settings, host: str, wanted: list[str] | None) -> tuple[list[str], bool]:
    """The units to read on `host`, and whether the front's log files go with them. `wanted`
    names: web, front, alerts (the reports of failed units), a process or schedule, or a unit's
    full name."""
    p = Paths(settings.app.name)
    front = "nginx.service" if settings.front == "nginx" else "haproxy.service"
    everything = units_of(settings, host)
    alerts = p.failure_name.replace("@.", "@*.")  # the reports of failed units
    if not wanted:
        app = [p.service_name, p.unit_prefix + "*", alerts]
        return [*app, front], True
    units: list[str] = []
    with_files = False
    known = {"web": [p.service_name], "front": [front], "alerts": [alerts]}
    for proc in settings.processes:
        known[proc.name] = [p.process_name(proc.name).replace("@.", "@*.")]
    for job in settings.schedules:
        known[job.name] = [p.schedule_name(job.name), p.schedule_name(job.name, "timer")]
    for name in wanted:
        if name in known:
            units += known[name]
            with_files = with_files or name == "front"
        elif name in everything or name.endswith((".service", ".timer", ".socket")):
            units.append(name)
        else:
            entries = ", ".join(sorted(set(known) - {"web", "front", "alerts"})) or "a process name"
            raise OpsError(f"--unit {name!r} is not a unit of stack {settings.stack!r}: give web, "
                           f"front, alerts, {entries} or a unit's full name")
    return units, with_files


def script(settings: Settings, host: Host, *, units: list[str], files: bool, access: bool,
           lines: int, since: datetime | None, grep: str | None, follow: bool,
           cursor: str | None = None) -> Script:
    tagged = []
    if files and settings.front == "nginx":
        tagged.append(("nginx-error", NGINX_ERROR))
        if access:
            tagged.append(("nginx-access", NGINX_ACCESS))
    body = render("ops/logs.sh.j2", **context(settings, host.name, str(host.address)), units=units,
                  files=tagged, lines=lines, grep=grep or "", follow=follow, cursor=cursor or "",
                  since=f"{since.timestamp():.6f}" if since else "")
    return Script("logs", host.name, body, str(host.address))


class Parser:
    """One host's tagged lines as `Line`s; the front's files carry their own times."""

    def __init__(self, host: str):
        self.host = host
        self.offset = UTC
        self.cursor: str | None = None

    def feed(self, raw: str) -> Line | None:
        tag, _, rest = raw.rstrip("\n").partition("\t")
        if tag == "Z":
            with contextlib.suppress(ValueError):
                self.offset = datetime.strptime(rest.strip(), "%z").tzinfo or UTC
            return None
        if tag == "J":
            return self.journal(rest)
        if tag in ("nginx-access", "nginx-error"):
            when = file_time(rest, self.offset)
            return Line(when or datetime.now(UTC), self.host, tag, rest) if rest else None
        return None

    def journal(self, text: str) -> Line | None:
        try:
            entry = json.loads(text)
        except ValueError:
            return None
        self.cursor = entry.get("__CURSOR") or self.cursor
        message = entry.get("MESSAGE")
        if isinstance(message, list):  # not UTF-8: journald gives the bytes
            message = bytes(b for b in message if isinstance(b, int)).decode("utf-8", "replace")
        source = entry.get("SYSLOG_IDENTIFIER") or entry.get("_SYSTEMD_UNIT") or "journal"
        if pid := entry.get("_PID"):
            source = f"{source}[{pid}]"
        usec = int(entry.get("__REALTIME_TIMESTAMP") or 0)
        return Line(datetime.fromtimestamp(usec / 1e6, UTC), self.host, source, str(message or ""))


ACCESS_TIME = re.compile(r"\[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]")
ERROR_TIME = re.compile(r"^(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})")


def file_time(text: str, offset) -> datetime | None:
    if match := ERROR_TIME.match(text):
        return datetime.strptime(match[1], "%Y/%m/%d %H:%M:%S").replace(tzinfo=offset)
    if match := ACCESS_TIME.search(text):
        return datetime.strptime(match[1], "%d/%b/%Y:%H:%M:%S %z")
    return None


@dataclass
class Query:
    units: list[str] | None = None
    access: bool = False
    lines: int = 100
    since: datetime | None = None
    grep: str | None = None

    def keeps(self, line: Line) -> bool:
        """The filters the journal cannot apply to the front's files itself."""
        if not line.source.startswith("nginx-"):
            return True
        if self.since and line.time < self.since:
            return False
        if self.grep:
            flags = 0 if any(c.isupper() for c in self.grep) else re.IGNORECASE
            return re.search(self.grep, line.text, flags) is not None
        return True


def history(target: Target, ssh: Session, hosts: Iterable[Host], query: Query,
            warn: Callable[[str], None]) -> tuple[list[Line], dict[str, str | None]]:
    """The last `query.lines` lines of every host, merged by time; and the last journal cursor of
    each host that was reached (None: it has no line yet)."""
    merged: list[Line] = []
    cursors: dict[str, str | None] = {}
    for host in hosts:
        units, files = choose_units(target.settings, host.name, query.units)
        made = script(target.settings, host, units=units, files=files, access=query.access,
                      lines=query.lines, since=query.since, grep=query.grep, follow=False)
        try:
            done = ssh.run(host, made, timeout=120)
        except Unreachable as exc:
            warn(str(exc))
            continue
        if done.returncode != 0:
            warn(f"host {named(host)}: reading its logs failed: {done.stderr.strip()}")
        parser = Parser(host.name)
        merged += [line for raw in done.stdout.splitlines()
                   if (line := parser.feed(raw)) is not None and query.keeps(line)]
        cursors[host.name] = parser.cursor
    merged.sort(key=lambda line: line.time)
    return merged[-query.lines:] if query.lines else merged, cursors


def follow(target: Target, ssh: Session, hosts: Iterable[Host], query: Query,
           cursors: dict[str, str | None], warn: Callable[[str], None],
           stop: threading.Event | None = None) -> Iterator[Line]:
    """New lines of every host as they come, until `stop` is set (or forever)."""
    stop = stop or threading.Event()
    lines: queue.Queue[Line | None] = queue.Queue()
    procs: list[subprocess.Popen] = []

    def read(host: Host, proc: subprocess.Popen) -> None:
        parser = Parser(host.name)
        assert proc.stdout is not None
        for raw in proc.stdout:
            if (line := parser.feed(raw)) is not None and query.keeps(line):
                lines.put(line)
        err = proc.stderr.read() if proc.stderr else ""
        if proc.wait() == 255 and not stop.is_set():
            warn(f"host {named(host)}: the connection for --follow ended: {err.strip()}")
        lines.put(None)

    readers = []
    for host in hosts:
        units, files = choose_units(target.settings, host.name, query.units)
        made = script(target.settings, host, units=units, files=files, access=query.access,
                      lines=0, since=None, grep=query.grep, follow=True, cursor=cursors.get(host.name))
        proc = ssh.popen(host, made, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, errors="replace")
        procs.append(proc)
        reader = threading.Thread(target=read, args=(host, proc), daemon=True)
        reader.start()
        readers.append(reader)
    open_streams = len(procs)
    try:
        while open_streams and not stop.is_set():
            try:
                item = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                open_streams -= 1
                continue
            yield item
    finally:
        stop.set()
        for proc in procs:
            if proc.stdin:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def show(target: Target, hosts: tuple[Host, ...], query: Query, *, follow_too: bool,
         json_out: bool, out=sys.stdout, warn: Callable[[str], None] | None = None,
         stop: threading.Event | None = None) -> int:
    warned: list[str] = []

    def say(message: str) -> None:
        warned.append(message)
        (warn or (lambda m: print(m, file=sys.stderr)))(message)

    def emit(line: Line) -> None:
        if json_out:
            out.write(json.dumps({"time": line.time.isoformat(), "host": line.host,
                                  "source": line.source, "message": line.text}) + "\n")
        else:
            out.write(line.show() + "\n")
        out.flush()

    with Session(target) as ssh:
        past, cursors = history(target, ssh, hosts, query, say)
        for line in past:
            emit(line)
        if follow_too:
            reachable = [h for h in hosts if h.name in cursors]
            try:
                for line in follow(target, ssh, reachable, query, cursors, say, stop):
                    emit(line)
            except KeyboardInterrupt:
                pass
    return 1 if warned else 0
