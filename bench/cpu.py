"""Who used the machine's CPUs during a measurement: the test hosts, wrk, or anyone else.

The test hosts share this machine's cores with wrk and with whatever else runs here (other test
sessions, for one). `Meter` reads the machine's busy time (/proc/stat) and the testbed's own
cgroup (cpu.stat of the slot's cgroup, holding every test host), so a run can tell how much
CPU went to other processes while it measured, and be repeated when that was too much.
"""

from __future__ import annotations

import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """Seconds of CPU time the machine spent busy (all cores) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICK


def cgroup_usage(paths: list[Path]) -> float:
    """Seconds of CPU the first readable cgroup (v2 cpu.stat) used since it was made."""
    for path in paths:
        try:
            text = (path / "cpu.stat").read_text()
        except OSError:
            continue
        found = re.search(r"^usage_usec (\d+)$", text, re.M)
        if found:
            return int(found.group(1)) / 1e6
    return 0.0


def unit_seconds(root: str) -> dict[str, float]:
    """CPU seconds (user + system, all threads) of the live processes under the cgroup `root`
    (a test slot's, "/flask-stack/<slot>/"), summed per host and systemd unit: "sv1/nginx.service".

    Read from each process's /proc entry on this machine, so it needs no cgroup controller
    inside the containers; the time of processes that exited meanwhile is not in it, which is
    fine for the long-lived Nginx and Gunicorn processes it is for."""
    found: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            groups = (entry / "cgroup").read_text()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        path = next((line.split(":", 2)[2] for line in groups.splitlines() if root in line), None)
        if path is None:
            continue
        host = path.split(root, 1)[1].split("/", 1)[0]
        unit = next((part for part in reversed(path.split("/")) if part.endswith(".service")), "other")
        key = f"{host}/{unit}"
        found[key] = found.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return found


def per_request(before: dict[str, float], after: dict[str, float], requests: int,
                wrk_seconds: float) -> dict[str, float]:
    """Microseconds of CPU per request for each unit that used any, and for wrk."""
    used = {key: after[key] - before.get(key, 0.0) for key in after}
    out = {key: value * 1e6 / max(requests, 1) for key, value in sorted(used.items()) if value > 0}
    out["wrk"] = wrk_seconds * 1e6 / max(requests, 1)
    return out


@dataclass
class Sample:
    wall: float
    busy: float
    ours: float


class Meter:
    """`start()` then `stop(extra_cpu)`: CPU seconds per second used by the test hosts, by
    `extra_cpu` (wrk) and by everything else on the machine."""

    def __init__(self, cgroups: list[Path]):
        self.cgroups = cgroups

    def sample(self) -> Sample:
        return Sample(time.monotonic(), machine_busy(), cgroup_usage(self.cgroups))

    def start(self) -> Sample:
        return self.sample()

    def stop(self, begin: Sample, extra_cpu: float = 0.0) -> dict[str, float]:
        end = self.sample()
        wall = max(end.wall - begin.wall, 1e-6)
        busy = (end.busy - begin.busy) / wall
        hosts = (end.ours - begin.ours) / wall
        wrk = extra_cpu / wall
        return {"busy": busy, "hosts": hosts, "wrk": wrk, "others": max(0.0, busy - hosts - wrk)}


def wakeup_round_trip(count: int = 20_000) -> dict[str, float]:
    """Microseconds for one process to wake another through a pipe and be woken back, with both
    on the same CPU and with each on its own CPU (a hop between Nginx and Gunicorn is such a
    wake-up). Measured on CPUs 0 and 1; empty on a machine with one CPU."""
    mine = os.sched_getaffinity(0)
    cpus = sorted(mine)
    if len(cpus) < 2:
        return {}
    out = {}
    try:
        for name, (here, there) in {"same_cpu_us": (cpus[0], cpus[0]),
                                    "across_cpus_us": (cpus[0], cpus[1])}.items():
            ping_r, ping_w = os.pipe()
            pong_r, pong_w = os.pipe()
            child = os.fork()
            if child == 0:  # answers every byte, on its own CPU
                try:
                    os.sched_setaffinity(0, {there})
                    for _ in range(count + 1):
                        os.read(ping_r, 1)
                        os.write(pong_w, b".")
                finally:
                    os._exit(0)
            os.sched_setaffinity(0, {here})
            os.write(ping_w, b".")
            os.read(pong_r, 1)
            began = time.perf_counter()
            for _ in range(count):
                os.write(ping_w, b".")
                os.read(pong_r, 1)
            out[name] = (time.perf_counter() - began) / count * 1e6
            os.waitpid(child, 0)
            for fd in (ping_r, ping_w, pong_r, pong_w):
                os.close(fd)
    finally:
        os.sched_setaffinity(0, mine)
    return out


def machine() -> dict[str, str]:
    """nproc, CPU model and RAM, as docs/benchmarks.md's table states them."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {"nproc": str(os.cpu_count()), "cpu": model, "ram": f"{mem_kb / 1024 / 1024:.0f} GiB",
            "kernel": platform.release()}
