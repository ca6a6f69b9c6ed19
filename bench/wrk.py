"""wrk, run from the outer machine, and what it prints, as data.

`run(url, connections, seconds)` starts `wrk --latency` and returns a `Result`: requests per
second, latency percentiles, socket errors (connect, read, write, timeout) and non-2xx answers,
the bytes it read (headers and bodies), and the CPU time wrk itself used (it shares the
machine's cores with the test host).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}  # wrk's, base 1024


@dataclass
class Result:
    rps: float
    requests: int
    latency_ms: dict[str, float] = field(default_factory=dict)  # "50", "75", "90", "99"
    errors: dict[str, int] = field(default_factory=dict)  # connect, read, write, timeout, non2xx
    wall: float = 0.0
    cpu: float = 0.0  # seconds of CPU wrk used
    read_bytes: float = 0.0  # what the server sent, headers included (wrk rounds to 2 decimals)
    raw: str = ""

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def p99(self) -> float:
        return self.latency_ms.get("99", float("nan"))


def available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNITS[unit]


def parse(out: str) -> Result:
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rps or not total:
        raise ValueError(f"wrk printed no figures:\n{out[-2000:]}")
    result = Result(rps=float(rps.group(1)), requests=int(total.group(1)), raw=out)
    read = re.search(r"\d+ requests in [0-9.]+\w+, ([0-9.]+)(B|KB|MB|GB|TB) read", out)
    if read:
        result.read_bytes = float(read.group(1)) * SIZES[read.group(2)]
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+([0-9.]+(?:us|ms|s|m))\s*$", out, re.M):
        result.latency_ms[pct] = _ms(value)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors:
        result.errors.update(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()),
                                 strict=True))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        result.errors["non2xx"] = int(non2xx.group(1))
    return result


def argv(url: str, connections: int, seconds: float, *, threads: int = 2, timeout: float = 10,
         close: bool = False, script: Path | None = None, cpus: str | None = None,
         headers: dict[str, str] | None = None) -> list[str]:
    command = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds:g}s",
               f"--timeout={timeout:g}s", "--latency"]
    if close:
        command += ["-H", "Connection: close"]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    if script:
        command += ["-s", str(script)]
    command.append(url)
    if cpus:
        command = ["taskset", "-c", cpus, *command]
    return command


def paced(directory: Path, delay_ms: int) -> Path:
    """A wrk script making each connection wait `delay_ms` between requests. Clients that close
    every connection leave this machine's end in TIME_WAIT for 60 s (wrk closes first), so an
    unpaced run uses up the ~28k local ports in seconds and then mostly waits for them."""
    script = directory / f"paced-{delay_ms}.lua"
    script.write_text(f"function delay()\n  return {int(delay_ms)}\nend\n")
    return script


def run(url: str, connections: int, seconds: float, **options) -> Result:
    command = argv(url, connections, seconds, **options)
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{out[-2000:]}")
    result = parse(out)
    result.wall = time.monotonic() - started
    result.cpu = usage.ru_utime + usage.ru_stime
    return result
