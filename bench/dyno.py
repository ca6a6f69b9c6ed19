"""Static files on a dyno-shaped Gunicorn: Flask's own static route against WhiteNoise with the
archive's precompressed files. Prints figures, asserts nothing.

    .venv/bin/python -m bench.dyno [--rounds 6] [--seconds 5] [--connections 64] [--json out.json]

Both setups are the Heroku archive stack/dyno.py builds for the bench app (bench/app) with a
50 KB stylesheet in its static folder, unpacked and started by its Procfile's web line, as a
dyno starts it: Gunicorn with the generated config, WEB_CONCURRENCY=2 (what the Python buildpack
sets on Basic and Standard-1X dynos), 32 threads per worker, the generated WSGI entry. They
differ in one thing:

- flask: the archive built without a static folder (app.staticDir unset), so the entry has no
  WhiteNoise and Flask's default static route (send_from_directory) answers /static/;
- whitenoise: the archive as a deploy builds it: WhiteNoise answers /static/, with the .gz
  the archive holds for clients that accept gzip.

wrk runs from this machine against Gunicorn's port directly (Heroku's router is not part of the
dyno), with the headers the router adds (X-Forwarded-For, X-Forwarded-Proto: https), so every
request also passes the entry's ProxyFix and HTTPS check; each cell once with no
Accept-Encoding and once with `Accept-Encoding: gzip`. Rounds interleave the setups (the order
alternates), figures are medians over rounds and each ratio the median of the per-round ratios.
wrk and Gunicorn share this machine's cores; the CPU each used is measured (Gunicorn's process
groups from /proc, wrk's rusage, the rest of the machine from /proc/stat), and a run during
which other processes took more than --max-others cores is done again (up to 3 times).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench import cpu, wrk
from stack import dyno

ROOT = Path(__file__).resolve().parent.parent
CSS = "site.css"
CSS_BYTES = 50 * 1024
SETUPS = ("flask", "whitenoise")
ENCODINGS = {"identity": {}, "gzip": {"Accept-Encoding": "gzip"}}
ROUTER_HEADERS = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
WEB_CONCURRENCY = "2"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def stylesheet() -> str:
    """50 KB of CSS that compresses as a real one does (selectors and values vary; ~5x)."""
    rules, i = [], 0
    while sum(map(len, rules)) < CSS_BYTES:
        h = hashlib.sha256(str(i).encode()).hexdigest()
        rules.append(f".c-{h[:6]} .item-{i % 97} > a:hover {{ margin: {int(h[6], 16)}px "
                     f"{int(h[7], 16) * 2}px; color: #{h[8:14]}; border-left: {i % 5}px solid "
                     f"#{h[14:20]}; transition: opacity {int(h[20:22], 16)}ms ease-in; }}\n")
        i += 1
    return "".join(rules)[:CSS_BYTES]


def build(scratch: Path) -> dict[str, Path]:
    """The two unpacked archives: {setup: folder}."""
    from tests.support.heroku import dyno_settings

    project = scratch / "project"
    shutil.copytree(ROOT / "bench" / "app", project / "app")
    (project / "app" / "static" / CSS).write_text(stylesheet())
    config = dyno_settings(project, {"path": "app", "entry": "bench_app:app"})
    out = {}
    for setup in SETUPS:
        no_static = replace(config, app=replace(config.app, static_dir=None))
        settings = config if setup == "whitenoise" else no_static
        rel = dyno.build(settings, scratch / "cache")
        folder = scratch / setup
        with tarfile.open(rel.archive) as tar:
            tar.extractall(folder, filter="data")
        out[setup] = folder
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(folder: Path, port: int) -> subprocess.Popen:
    """The Procfile's web line, with what a dyno's environment holds (the buildpack's exports)."""
    web = next(line.split(":", 1)[1].strip() for line in (folder / "Procfile").read_text().splitlines()
               if line.startswith("web:"))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(folder), "PORT": str(port),
           "WEB_CONCURRENCY": WEB_CONCURRENCY, "FORWARDED_ALLOW_IPS": "*",
           "GUNICORN_CMD_ARGS": "--access-logfile -"}
    proc = subprocess.Popen(["/bin/bash", "-c", web], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                            stderr=(folder / "web.log").open("w"), start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return proc
        time.sleep(0.1)
    raise SystemExit(f"{folder.name}: nothing listens on {port}:\n{(folder / 'web.log').read_text()[-2000:]}")


def one_answer(port: int, headers: dict[str, str]) -> dict:
    """What one request gets: status, the headers that matter here, body and header bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/static/{CSS}", headers={**ROUTER_HEADERS, **headers})
    answer = conn.getresponse()
    body = answer.read()
    head = len(f"HTTP/1.1 {answer.status} {answer.reason}\r\n") + sum(
        len(f"{k}: {v}\r\n") for k, v in answer.getheaders()) + 2
    conn.close()
    return {"status": answer.status, "body_bytes": len(body), "header_bytes": head,
            "content_encoding": answer.getheader("Content-Encoding"),
            "cache_control": answer.getheader("Cache-Control"), "etag": answer.getheader("ETag")}


class GroupMeter(cpu.Meter):
    """cpu.Meter, with "ours" the CPU of the web processes' groups (each web line runs in a
    session of its own: the shell, Gunicorn's master and its workers) instead of a cgroup's."""

    def __init__(self, groups: list[int]):
        super().__init__([])
        self.groups = set(groups)

    def sample(self) -> cpu.Sample:
        used = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) in self.groups:  # pgrp
                    used += (int(fields[11]) + int(fields[12])) / cpu.TICK  # utime + stime
        return cpu.Sample(time.monotonic(), cpu.machine_busy(), used)


def one_run(meter: GroupMeter, url: str, connections: int, seconds: float, max_others: float,
            headers: dict[str, str]) -> dict:
    """One wrk run; done again (up to 3 times) when other processes took too much CPU."""
    best = None
    for attempt in range(4):
        began = meter.start()
        result = wrk.run(url, connections, seconds, headers=headers)
        split = meter.stop(began, result.cpu)
        run = {"rps": result.rps, "p99": result.p99, "p50": result.latency_ms.get("50"),
               "failed": result.failed, "requests": result.requests,
               "bytes_per_response": result.read_bytes / max(1, result.requests),
               "cpu": {"gunicorn": split["hosts"], "wrk": split["wrk"], "others": split["others"]},
               "attempts": attempt + 1}
        if best is None or split["others"] < best["cpu"]["others"]:
            best = run
        if split["others"] <= max_others:
            break
        time.sleep(5)
    return best


def measure(ports: dict[str, int], meter: GroupMeter, rounds: int, seconds: float, connections: int,
            max_others: float) -> dict:
    runs: dict[str, list[dict]] = {}
    for port in ports.values():  # warm-up: every worker has imported the app
        for headers in ENCODINGS.values():
            wrk.run(f"http://127.0.0.1:{port}/static/{CSS}", connections, 1,
                    headers={**ROUTER_HEADERS, **headers})
    for n in range(rounds):
        log(f"round {n + 1}/{rounds}")
        order = SETUPS if n % 2 == 0 else SETUPS[::-1]
        for encoding, headers in ENCODINGS.items():
            for setup in order:
                runs.setdefault(f"{setup}/{encoding}", []).append(one_run(
                    meter, f"http://127.0.0.1:{ports[setup]}/static/{CSS}", connections, seconds,
                    max_others, {**ROUTER_HEADERS, **headers}))
    cells = {key: {"rps": statistics.median(r["rps"] for r in rs),
                   "p99": statistics.median(r["p99"] for r in rs),
                   "p50": statistics.median(r["p50"] for r in rs),
                   "failed": sum(r["failed"] for r in rs),
                   "bytes_per_response": statistics.median(r["bytes_per_response"] for r in rs),
                   "gunicorn_cores": statistics.median(r["cpu"]["gunicorn"] for r in rs),
                   "wrk_cores": statistics.median(r["cpu"]["wrk"] for r in rs),
                   "others_cores": statistics.median(r["cpu"]["others"] for r in rs),
                   "runs": [round(r["rps"]) for r in rs]} for key, rs in runs.items()}
    ratios = {}
    for encoding in ENCODINGS:
        per_round = [w["rps"] / f["rps"] for w, f in zip(runs[f"whitenoise/{encoding}"],
                                                          runs[f"flask/{encoding}"], strict=True)]
        ratios[encoding] = {"ratio": statistics.median(per_round),
                            "per_round": [round(r, 2) for r in per_round]}
    return {"cells": cells, "ratios": ratios, "raw": runs}


def print_report(report: dict) -> None:
    m = report["machine"]
    print(f"\nbench/dyno {report['date']}: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM; "
          f"Gunicorn from the Heroku archive's Procfile, WEB_CONCURRENCY={WEB_CONCURRENCY}, "
          f"{report['rounds']} rounds x {report['seconds']:g} s, wrk -t2 -c{report['connections']} "
          f"on the same machine")
    print(f"GET /static/{CSS} ({CSS_BYTES // 1024} KB)")
    print(f"  {'setup':12}{'encoding':10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'bytes/resp':>12}"
          f"{'failed':>8}  cores: gunicorn wrk others; body, encoding, Cache-Control")
    for setup in SETUPS:
        for encoding in ENCODINGS:
            c = report["measured"]["cells"][f"{setup}/{encoding}"]
            a = report["answers"][f"{setup}/{encoding}"]
            print(f"  {setup:12}{encoding:10}{c['rps']:9.0f}{c['p50']:9.2f}{c['p99']:9.2f}"
                  f"{c['bytes_per_response']:12.0f}{c['failed']:8d}  {c['gunicorn_cores']:.2f} "
                  f"{c['wrk_cores']:.2f} {c['others_cores']:.2f}; {a['body_bytes']} B, "
                  f"{a['content_encoding'] or 'none'}, {a['cache_control'] or 'none'}")
    for encoding, r in report["measured"]["ratios"].items():
        print(f"  whitenoise / flask, {encoding}: {r['ratio']:.2f}x requests/s (median of rounds "
              f"{r['per_round']})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--max-others", type=float, default=0.15,
                        help="cores other processes may use during a run before it is done again")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if not wrk.available():
        raise SystemExit("wrk is not installed: apt-get install -y wrk (bench/run does it)")
    scratch = Path(tempfile.mkdtemp(prefix="bench-dyno-"))
    procs = []
    try:
        folders = build(scratch)
        ports = {setup: free_port() for setup in SETUPS}
        procs = [start(folders[setup], ports[setup]) for setup in SETUPS]
        answers = {f"{setup}/{encoding}": one_answer(ports[setup], headers)
                   for setup in SETUPS for encoding, headers in ENCODINGS.items()}
        report = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
                  "machine": cpu.machine(), "rounds": args.rounds, "seconds": args.seconds,
                  "connections": args.connections, "web_concurrency": WEB_CONCURRENCY,
                  "command": " ".join(["python -m bench.dyno", *sys.argv[1:]]),
                  "loadavg_start": os.getloadavg()[0], "answers": answers,
                  "measured": measure(ports, GroupMeter([p.pid for p in procs]), args.rounds,
                                      args.seconds, args.connections, args.max_others),
                  "loadavg_end": os.getloadavg()[0]}
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=40)
        shutil.rmtree(scratch, ignore_errors=True)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
