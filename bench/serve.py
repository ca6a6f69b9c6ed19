"""Serving benchmark on real test hosts deployed by the program: prints figures, asserts nothing.

    .venv/bin/python -m bench.serve [--rounds 6] [--seconds 5] [--json out.json]

Hosts (bench/servehosts.py says exactly how each setup is made):
  a   the bench app (bench/app) deployed with the defaults; on the same host, started after the
      deploy: the classic recipe's naive setup, Gunicorn alone and Nginx alone;
  g   the same app deployed with `workerClass: gevent` (docs/benchmarks.md's I/O-bound recommendation);
  t   the same app deployed with `threads: 64` (the recommendation for apps that cannot use gevent);
  h   the same app deployed with `front: haproxy` (HAProxy where Nginx was; the app serves static
      files, as HAProxy does not read them from disk).

wrk runs from this machine against every setup, interleaved: each round measures every setup of a
route and connection count back to back (A B C D, B A C D, ...), so load from elsewhere on the
machine hits them alike. The two setups a target compares run first and next to each other, in
turn first and second (hence an even number of rounds), so the machine's drift over a round
favours neither. Figures are medians over rounds, and each ratio is the median of the per-round
ratios. A run during which other processes used more than --max-others cores is done again (up to
3 times), and the CPU split (test hosts, wrk, others) is reported.

Then failed requests during reloads, on each front's host: `systemctl reload nginx` or
`systemctl reload haproxy`, and `systemctl reload app` (HUP), each several times under load from
keep-alive clients and from clients that close every connection (`Connection: close`), counted
separately, with a baseline without reloads (bench/reloads adds the balancer stand-in).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import cpu, wrk
from bench import servehosts as sh

IO_WAIT = 0.020
CONNECTIONS = (64, 256)
ROUTES = {"hello": "/", "static": f"/static/{sh.STATIC_FILE}", "io": "/io"}
# Which setups each route is measured on (Nginx alone has no app, so no /io). For hello and
# static the first two are the pair their target compares (/io's targets are against the limit).
SETUPS = {
    "hello": ("stack", "gunicorn", "haproxy", "naive", "nginx", "io-gevent", "io-threads", "gunicorn-log"),
    "static": ("stack", "nginx", "haproxy", "naive", "gunicorn"),
    "io": ("stack", "naive", "haproxy", "gunicorn", "io-gevent", "io-threads", "gunicorn-log"),
}
DESCRIBE = {
    "stack": "the rendered stack, defaults",
    "naive": "naive: 1 sync worker, plain proxy_pass",
    "gunicorn": "Gunicorn alone, same config",
    "nginx": "Nginx alone (ceiling)",
    "io-gevent": "stack with workerClass: gevent",
    "io-threads": "stack with threads: 64",
    "gunicorn-log": "Gunicorn alone + access log",
    "haproxy": "the stack with front: haproxy",
}
# host: (app settings, top-level settings) it is deployed with
VARIANTS = {"a": ({}, {}), "g": ({"workerClass": "gevent"}, {}), "t": ({"threads": 64}, {}),
            "h": ({}, {"front": "haproxy"})}
# setups served by the stack on port 80 of another host than `a`
ON_HOST = {"io-gevent": "g", "io-threads": "t", "haproxy": "h"}
TARGETS = [
    # (name, route, setup, against, connections, minimum)
    ("hello vs Gunicorn alone", "hello", "stack", "gunicorn", 64, 0.85),
    ("hello vs Gunicorn alone", "hello", "stack", "gunicorn", 256, 0.85),
    ("static vs Nginx alone", "static", "stack", "nginx", 64, 0.95),
    ("static vs Nginx alone", "static", "stack", "nginx", 256, 0.95),
    ("/io vs 64/20 ms, defaults", "io", "stack", "limit", 64, 0.5),
    ("/io vs 64/20 ms, gevent (recommended)", "io", "io-gevent", "limit", 64, 0.85),
    # The HAProxy front against the same references. Static files: the app serves them behind
    # HAProxy, so Gunicorn alone (which serves them the same way) is the reference, not Nginx.
    ("hello vs Gunicorn alone, HAProxy front", "hello", "haproxy", "gunicorn", 64, 0.85),
    ("hello vs Gunicorn alone, HAProxy front", "hello", "haproxy", "gunicorn", 256, 0.85),
    ("static vs Gunicorn alone, HAProxy front", "static", "haproxy", "gunicorn", 64, 0.85),
    ("static vs Gunicorn alone, HAProxy front", "static", "haproxy", "gunicorn", 256, 0.85),
    ("/io vs 64/20 ms, HAProxy front, defaults", "io", "haproxy", "limit", 64, 0.5),
    # For information (no target): do more threads help on these two cores?
    ("/io vs 64/20 ms, threads 64", "io", "io-threads", "limit", 64, None),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, deployed: dict[str, sh.Deployed], meter: cpu.Meter, seconds: float,
                 max_others: float, scratch: Path, units_root: str):
        self.deployed = deployed
        self.units_root = units_root
        self.scratch = scratch
        self.meter = meter
        self.seconds = seconds
        self.max_others = max_others

    def url(self, setup: str, route: str) -> str:
        host = ON_HOST.get(setup, "a")
        port = sh.PORTS["stack"] if host != "a" else sh.PORTS[setup]
        return self.deployed[host].url(port, ROUTES[route])

    def measure(self, url: str, connections: int, seconds: float | None = None, **options) -> dict:
        """One wrk run; done again (up to 3 times) when other processes took too much CPU."""
        best = None
        for attempt in range(4):
            units = cpu.unit_seconds(self.units_root)
            began = self.meter.start()
            result = wrk.run(url, connections, seconds or self.seconds, **options)
            split = self.meter.stop(began, result.cpu)
            per_request = cpu.per_request(units, cpu.unit_seconds(self.units_root), result.requests,
                                          result.cpu)
            run = {"rps": result.rps, "requests": result.requests, "p50": result.latency_ms.get("50"),
                   "p99": result.p99, "errors": result.errors, "failed": result.failed,
                   "cpu": split, "us_per_request": per_request, "attempts": attempt + 1}
            if best is None or split["others"] < best["cpu"]["others"]:
                best = run
            if split["others"] <= self.max_others:
                break
            time.sleep(5)
        return best


def medians(runs: list[dict]) -> dict:
    units = sorted({unit for r in runs for unit in r["us_per_request"]})
    return {"rps": statistics.median(r["rps"] for r in runs),
            "p99": statistics.median(r["p99"] for r in runs),
            "failed": sum(r["failed"] for r in runs),
            "others": statistics.median(r["cpu"]["others"] for r in runs),
            "hosts": statistics.median(r["cpu"]["hosts"] for r in runs),
            "wrk": statistics.median(r["cpu"]["wrk"] for r in runs),
            "runs": [round(r["rps"]) for r in runs],
            "us_per_request": {unit: statistics.median(r["us_per_request"].get(unit, 0.0) for r in runs)
                               for unit in units}}


def cells(round_number: int) -> list[tuple[str, int, str]]:
    """Every (route, connections, setup) in the order of one round: a target's pair first, and
    which of the two goes first alternates from round to round."""
    order = []
    for route, setups in SETUPS.items():
        first, second, *rest = setups
        pair = [first, second] if round_number % 2 == 0 else [second, first]
        order += [(route, conns, setup) for conns in CONNECTIONS for setup in pair + rest]
    return order


def serving(bench: Bench, rounds: int) -> dict:
    log(f"warming up {len(cells(0))} setups ...")
    for route, conns, setup in cells(0):
        wrk.run(bench.url(setup, route), conns, 1)
    runs: dict[str, list[dict]] = {}
    for n in range(rounds):
        log(f"round {n + 1}/{rounds}")
        for route, conns, setup in cells(n):
            runs.setdefault(f"{route}/{conns}/{setup}", []).append(
                bench.measure(bench.url(setup, route), conns))
    results = {key: medians(value) for key, value in runs.items()}
    ratios = {}
    for name, route, setup, against, conns, minimum in TARGETS:
        mine = runs[f"{route}/{conns}/{setup}"]
        if against == "limit":
            per_round = [r["rps"] / (conns / IO_WAIT) for r in mine]
        else:
            theirs = runs[f"{route}/{conns}/{against}"]
            per_round = [a["rps"] / b["rps"] for a, b in zip(mine, theirs, strict=True)]
        ratio = statistics.median(per_round)
        met = None if minimum is None else ratio >= minimum
        ratios[f"{name} @{conns}"] = {"ratio": ratio, "target": minimum, "met": met,
                                      "per_round": [round(r, 3) for r in per_round]}
    return {"cells": results, "ratios": ratios, "raw": runs}


# (what, host, the setup whose `/` the clients ask, command run on that host)
RELOADS = [("none (baseline)", "a", "stack", None),
           ("nginx reload", "a", "stack", "sudo -n systemctl reload nginx"),
           ("gunicorn HUP", "a", "stack", "sudo -n systemctl reload app"),
           ("haproxy reload", "h", "haproxy", "sudo -n systemctl reload haproxy"),
           ("gunicorn HUP (HAProxy front)", "h", "haproxy", "sudo -n systemctl reload app")]


def reloads(bench: Bench, count: int, interval: float) -> dict:
    """Failed requests on each front's `/` while it or Gunicorn reloads, per kind of client."""
    out = {}
    for what, on, setup, command in RELOADS:
        host, url = bench.deployed[on].host, bench.url(setup, "hello")
        for client, close in (("keep-alive", False), ("Connection: close", True)):
            stop = threading.Event()
            done: list[float] = []

            def reload_loop(command=command, stop=stop, done=done, host=host):
                time.sleep(interval / 2)
                for _ in range(count):
                    if stop.is_set() or command is None:
                        return
                    host.ssh(command, timeout=60)
                    done.append(time.monotonic())
                    stop.wait(interval)

            thread = threading.Thread(target=reload_loop, daemon=True)
            thread.start()
            if close:  # 32 clients, 100 ms apart: a few hundred new connections a second
                result = wrk.run(url, 32, count * interval + interval, close=True,
                                 script=wrk.paced(bench.scratch, 100))
            else:
                result = wrk.run(url, 64, count * interval + interval)
            stop.set()
            thread.join(timeout=60)
            out[f"{what} / {client}"] = {"reloads": len(done), "requests": result.requests,
                                         "failed": result.failed, "errors": result.errors,
                                         "p99": result.p99}
            log(f"  {what:28} {client:18} {len(done)} reloads, {result.requests} requests, "
                f"{result.failed} failed {result.errors or ''}")
    return out


def print_report(report: dict) -> None:
    m = report["machine"]
    print(f"\nbench/serve {report['date']}: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM; "
          f"{report['rounds']} rounds x {report['seconds']:g} s per setup, interleaved; wrk "
          f"-t2 from this machine, not pinned (it shares the cores with the test hosts)")
    if report.get("wakeup"):
        w = report["wakeup"]
        print(f"wake-up round trip between two processes (a pipe): {w['same_cpu_us']:.1f} us on one CPU, "
              f"{w['across_cpus_us']:.1f} us across two")
    cells = report["serving"]["cells"]
    for route, setups in SETUPS.items():
        for conns in CONNECTIONS:
            print(f"\n{route} ({ROUTES[route]}), {conns} connections"
                  + (f"; limit {conns / IO_WAIT:.0f} req/s" if route == "io" else ""))
            print(f"  {'setup':42}{'req/s':>9}{'p99 ms':>9}{'failed':>8}  cores: hosts wrk others")
            for setup in setups:
                c = cells[f"{route}/{conns}/{setup}"]
                print(f"  {DESCRIBE[setup]:42}{c['rps']:9.0f}{c['p99']:9.1f}{c['failed']:8d}"
                      f"         {c['hosts']:.2f} {c['wrk']:.2f} {c['others']:.2f}")
    print("\nCPU per request, microseconds (medians; per host and systemd unit, then wrk): where "
          "the hello ratios come from")
    for conns in CONNECTIONS:
        for setup in ("stack", "gunicorn", "haproxy", "io-gevent"):
            c = cells[f"hello/{conns}/{setup}"]
            shown = {unit: us for unit, us in c["us_per_request"].items() if us >= 1}
            print(f"  hello @{conns:<4} {DESCRIBE[setup]:34} {sum(shown.values()):5.0f} = "
                  + " + ".join(f"{unit} {us:.0f}" for unit, us in shown.items()))
    print("\ntargets (median of per-round ratios)")
    for name, r in report["serving"]["ratios"].items():
        verdict = ("no target     " if r["target"] is None else
                   f"target >= {r['target']:.2f}  {'met' if r['met'] else 'NOT MET'}")
        print(f"  {name:48} {r['ratio']:6.2f}  {verdict}   rounds {r['per_round']}")
    print("\nfailed requests during reloads (each front's /; 64 keep-alive clients, or 32 closing "
          "clients 100 ms apart)")
    for key, r in report["reloads"].items():
        print(f"  {key:52} {r['reloads']} reloads {r['requests']:8d} requests {r['failed']:5d} failed "
              f"{r['errors'] or ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--reloads", type=int, default=5, help="reloads per load (default 5)")
    parser.add_argument("--max-others", type=float, default=0.15,
                        help="cores other processes may use during a run before it is done again")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if not wrk.available():
        raise SystemExit("wrk is not installed: apt-get install -y wrk (bench/run does it)")
    from tests.hosts import cgroups
    from tests.hosts.harness import Testbed

    started = time.monotonic()
    with Testbed() as testbed:
        scratch = Path(tempfile.mkdtemp(prefix="bench-serve-"))
        deployed = sh.deploy_all(testbed, VARIANTS, "sv", scratch, log)
        hosts = [d.host for d in deployed.values()]
        sh.start_extras(deployed["a"])
        for name in ("g", "t", "h"):
            sh.wait_ok(deployed[name].url(80, "/io"), name)
        # Every test host's cgroup sits in the testbed slot's: that one counts them all.
        meter = cpu.Meter([path.parent for path in hosts[0].cgroup_paths])
        bench = Bench(deployed, meter, args.seconds, args.max_others, scratch,
                      units_root=f"/{cgroups.TOP}/{hosts[0].cgroup_paths[0].parent.name}/")
        report = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
                  "machine": cpu.machine(), "rounds": args.rounds, "seconds": args.seconds,
                  "loadavg_start": os.getloadavg()[0], "wakeup": cpu.wakeup_round_trip()}
        report["serving"] = serving(bench, args.rounds)
        log("reloads ...")
        report["reloads"] = reloads(bench, args.reloads, 3.0)
        report["loadavg_end"] = os.getloadavg()[0]
        report["minutes"] = (time.monotonic() - started) / 60
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
