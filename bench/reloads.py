"""Failed requests while a host's front reloads or its Gunicorn takes a HUP, for both fronts, on
real test hosts deployed by the program: prints figures, asserts nothing.

    .venv/bin/python -m bench.reloads [--reloads 5] [--interval 3] [--json out.json]

Two test hosts get the bench app (bench/app) deployed with the defaults, one with each front:
`n` (Nginx) and `h` (HAProxy, which the program sets up with `idle-close-on-response` and
`hard-stop-after`). wrk runs from this machine, as two kinds of client: 64 keep-alive
connections, or 32 clients that close every connection (`Connection: close`), 100 ms apart.

1. Direct, one host and no balancer (a single server facing its clients): for each front, a
   baseline without reloads, `systemctl reload <front>` and `systemctl reload app` (Gunicorn's
   HUP), each --reloads times, --interval s apart, under each kind of client.
2. Through the stand-in balancer (tests/hosts/balancer.py: HAProxy on this machine, backend
   connections reused across clients, no retry, health checks every 1 s, out after 2 failures
   and back after 2 passes), both hosts behind it, wrk against the balancer: each front reloaded
   plainly, and drained first as the deploy drains a host (the drain file, then the drain
   seconds, the reload, the drain file removed, the undrain seconds: templates/scripts/drain.sh.j2
   with the numbers the program derives for that balancer).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from bench import cpu, wrk
from bench import servehosts as sh
from stack.balancer import DRAIN_MARGIN, Balancing

FRONTS = {"n": "nginx", "h": "haproxy"}
STAND_IN = Balancing("the stand-in, checking every second", interval=1, timeout=1, healthy=2,
                     unhealthy=2, idle=60)
DRAIN = STAND_IN.out_within + DRAIN_MARGIN
UNDRAIN = STAND_IN.back_within
DRAIN_FILE = "/run/app.drain"
CLIENTS = (("keep-alive", False), ("Connection: close", True))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def under_load(url: str, scratch: Path, close: bool, seconds: float, action) -> dict:
    """wrk against `url` for `seconds` while `action()` runs beside it; wrk's counts."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    if close:  # 32 clients, 100 ms apart: a few hundred new connections a second
        result = wrk.run(url, 32, seconds, close=True, script=wrk.paced(scratch, 100))
    else:
        result = wrk.run(url, 64, seconds)
    thread.join(timeout=120)
    return {"requests": result.requests, "failed": result.failed, "errors": result.errors,
            "p99": result.p99}


def repeated(host, command: str | None, count: int, interval: float, done: list[float]):
    def loop():
        time.sleep(interval / 2)
        for _ in range(count if command else 0):
            host.ssh(command, timeout=120)
            done.append(time.monotonic())
            time.sleep(interval)
    return loop


def direct(deployed: dict[str, sh.Deployed], scratch: Path, count: int, interval: float) -> dict:
    out = {}
    for name, front in FRONTS.items():
        d = deployed[name]
        commands = {"none (baseline)": None, f"{front} reload": f"sudo -n systemctl reload {front}",
                    "gunicorn HUP": "sudo -n systemctl reload app"}
        for what, command in commands.items():
            for client, close in CLIENTS:
                done: list[float] = []
                r = under_load(d.url(80, "/"), scratch, close, count * interval + interval,
                               repeated(d.host, command, count, interval, done))
                out[f"{front} front / {what} / {client}"] = {**r, "reloads": len(done)}
                log(f"  {front:8} {what:16} {client:18} {len(done)} reloads, {r['requests']} requests, "
                    f"{r['failed']} failed {r['errors'] or ''}")
    return out


def through_balancer(deployed: dict[str, sh.Deployed], balancer, scratch: Path, count: int,
                     interval: float) -> dict:
    out = {}
    for name, front in FRONTS.items():
        host = deployed[name].host
        reload = f"sudo -n systemctl reload {front}"
        drained = (f"sudo -n touch {DRAIN_FILE} && sleep {DRAIN} && {reload} && "
                   f"sudo -n rm -f {DRAIN_FILE} && sleep {UNDRAIN}")
        for what, command, gap in (("plain reload", reload, interval),
                                   (f"drained reload ({DRAIN} s + {UNDRAIN} s)", drained, 1.0)):
            for client, close in CLIENTS:
                done: list[float] = []
                seconds = count * (interval if gap == interval else DRAIN + UNDRAIN + gap + 1) + interval
                r = under_load(f"http://{balancer.address}:{balancer.port}/", scratch, close, seconds,
                               repeated(host, command, count, gap, done))
                out[f"{front} host behind the stand-in / {what} / {client}"] = {**r, "reloads": len(done)}
                log(f"  {front:8} {what:28} {client:18} {len(done)} reloads, {r['requests']} requests, "
                    f"{r['failed']} failed {r['errors'] or ''}")
                for other in balancer.hosts:
                    balancer.wait_until(other.name, "UP", STAND_IN.back_within + 10)
    return out


def print_report(report: dict) -> None:
    m = report["machine"]
    print(f"\nbench/reloads {report['date']}: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM; "
          f"{report['reloads_per_load']} reloads {report['interval']:g} s apart per load; wrk from "
          f"this machine (64 keep-alive clients, or 32 closing clients 100 ms apart)")
    for section, title in (("direct", "one host, no balancer"),
                           ("balancer", "two hosts behind the stand-in balancer, wrk against it")):
        print(f"\n{title}")
        for key, r in report[section].items():
            print(f"  {key:72} {r['reloads']} reloads {r['requests']:8d} requests {r['failed']:5d} failed "
                  f"{r['errors'] or ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reloads", type=int, default=5, help="reloads per load (default 5)")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between plain reloads")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if not wrk.available():
        raise SystemExit("wrk is not installed: apt-get install -y wrk (bench/run does it)")
    from tests.hosts.balancer import StandIn
    from tests.hosts.harness import Testbed

    started = time.monotonic()
    with Testbed() as testbed:
        scratch = Path(tempfile.mkdtemp(prefix="bench-reloads-"))
        deployed = sh.deploy_all(testbed, {name: ({}, {"front": front}) for name, front in FRONTS.items()},
                                 "rl", scratch, log)
        report = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
                  "machine": cpu.machine(), "reloads_per_load": args.reloads, "interval": args.interval,
                  "stand_in": {"interval": STAND_IN.interval, "unhealthy": STAND_IN.unhealthy,
                               "healthy": STAND_IN.healthy, "drain": DRAIN, "undrain": UNDRAIN}}
        log("direct ...")
        report["direct"] = direct(deployed, scratch, args.reloads, args.interval)
        named = [SimpleNamespace(name=f"web-{i}", address=d.host.address)
                 for i, d in enumerate(deployed.values())]
        balancer = StandIn(scratch / "balancer", testbed.bridge_address, named, STAND_IN).start()
        try:
            for host in named:
                balancer.wait_until(host.name, "UP", STAND_IN.back_within + 10)
            log("through the stand-in balancer ...")
            report["balancer"] = through_balancer(deployed, balancer, scratch, args.reloads, args.interval)
        finally:
            balancer.stop()
        report["minutes"] = (time.monotonic() - started) / 60
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
