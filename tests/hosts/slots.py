"""Testbed slots, and what a crashed run leaves behind in one.

A testbed takes a free slot, a lock file under RUN_DIR held for its lifetime: slot N owns the
bridge `fsbrN`, the subnet 10.147.(83+N).0/24, the machine names `fsN-<name>`, the directory
RUN_DIR/slotN (overlays, keys, PostgreSQL) and the cgroups flask-stack/slotN. Concurrent sessions
on one machine do not collide, and whoever takes a slot next clears what a killed session left
in it: nspawn processes, overlay mounts, PostgreSQL, the directory, cgroups and the bridge.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.hosts import cgroups
from tests.hosts.postgres import Postgres

RUN_DIR = Path(os.environ.get("FLASK_STACK_RUN_DIR", "/run/flask-stack"))
MAX_SLOTS = 10
SUBNET = "10.147.{third}.0/24"  # third octet = FIRST_OCTET3 + slot
FIRST_OCTET3 = 83
BRIDGE = "fsbr{slot}"
MACHINE = "fs{slot}-{name}"  # the veth is "vb-" + this: at most 15 characters in all
STOP_TIMEOUT = 30.0


class HostError(RuntimeError):
    """A host did not come up, stop or answer as asked; the message says which and shows why."""


@dataclass
class Slot:
    number: int
    lock: object  # the open lock file; closing it frees the slot


def take_slot() -> Slot:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    for number in range(MAX_SLOTS):
        lock = (RUN_DIR / f"slot{number}.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return Slot(number, lock)
    raise HostError(f"all {MAX_SLOTS} testbed slots are in use ({RUN_DIR}/slot*.lock)")


def cleanup_slot(number: int, *, log: Callable[[str], None] = print) -> None:
    """Removes whatever is left in a slot whose lock we hold: nspawn processes of its machines,
    overlay mounts, its PostgreSQL, its directory and its bridge."""
    prefix = "--machine=" + MACHINE.format(slot=number, name="")
    stale = [pid for pid, argv in processes()
             if argv and Path(argv[0]).name == "systemd-nspawn" and any(a.startswith(prefix) for a in argv)]
    if stale:
        log(f"testbed: stopping {len(stale)} stale nspawn process(es) of slot {number}")
        terminate(stale)
    for group in cgroups.groups(f"slot{number}"):
        cgroups.remove(group)
    cgroups.remove_top()
    slotdir = RUN_DIR / f"slot{number}"
    pgdir = slotdir / "pg"
    if (pgdir / "data" / "postmaster.pid").exists():
        log(f"testbed: stopping a stale PostgreSQL of slot {number}")
        Postgres(pgdir, bridge_address="127.0.0.1", subnet="127.0.0.1/32").stop()
    unmount_under(slotdir)
    shutil.rmtree(slotdir, ignore_errors=True)
    bridge = BRIDGE.format(slot=number)
    if Path("/sys/class/net", bridge).exists():
        ip("link", "del", bridge)


def cleanup_all(*, log: Callable[[str], None] = print) -> list[int]:
    """Cleans every slot no live testbed holds; returns the slot numbers cleaned."""
    cleaned = []
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    for number in range(MAX_SLOTS):
        with (RUN_DIR / f"slot{number}.lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            cleanup_slot(number, log=log)
            cleaned.append(number)
    return cleaned


def processes() -> list[tuple[int, list[str]]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            found.append((int(entry.name), [a.decode(errors="replace") for a in argv if a]))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return sorted(int(c) for t in tasks for c in (t / "children").read_text().split())
    except OSError:
        return []


def terminate(pids: list[int], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait; after `timeout` SIGKILL what is left (their containers' PID 1s first)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in [p for p in pids if alive(p)]:
        for victim in (*children(pid), pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix) or point == str(path):
            points.append(point)
    return points


def unmount_under(path: Path) -> None:
    for point in sorted(mounts_under(path), key=len, reverse=True):
        for attempt in range(20):
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1 * (attempt + 1))
        else:
            subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    left = mounts_under(path)
    if left:
        raise HostError(f"still mounted: {left}")


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HostError(f"ip {' '.join(args)}: {result.stderr.strip()}")
