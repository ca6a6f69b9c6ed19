"""Own cgroups for each systemd-nspawn: this machine's PID 1 is not systemd, so nspawn runs with
--keep-unit and puts its container under whatever cgroup it was started in ("payload"). Started
from one shared cgroup, every container would share it, and each container's systemd would find
the other containers' processes in its units (h1's nginx.service holding h2's nginx processes).

Hosts' cgroups live at <hierarchy>/flask-stack/<slot>/<name>, in each hierarchy systemd tracks
processes in (cgroup2 and the named v1 "systemd" one on this machine's hybrid layout).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from pathlib import Path

TOP = "flask-stack"
JOIN_FAILED = 125  # exit status of the launcher when it cannot join the cgroups


def mounts() -> list[Path]:
    """The mounted hierarchies systemd tracks processes in: cgroup2 and the v1 name=systemd."""
    found: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        point = Path(fields[4])
        wanted = fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options)
        if wanted and point not in found:
            found.append(point)
    return found


def groups(*parts: str) -> list[Path]:
    """<hierarchy>/flask-stack/<parts...> for every hierarchy."""
    return [mount.joinpath(TOP, *parts) for mount in mounts()]


def launch_argv(argv: list[str], targets: list[Path]) -> list[str]:
    """`argv`, exec'd by a shell that first moves itself into `targets` (created as needed), so
    the process keeps its PID and starts in its own cgroups."""
    if not targets:
        return argv
    join = " && ".join(f"mkdir -p {shlex.quote(str(g))} && echo $$ > {shlex.quote(str(g))}/cgroup.procs"
                       for g in targets)
    script = (f'{join} || {{ echo "testbed: cannot join cgroups {" ".join(map(str, targets))}" >&2; '
              f'exit {JOIN_FAILED}; }}; exec "$@"')
    return ["/bin/sh", "-c", script, "testbed-launch", *argv]


def remove(group: Path) -> None:
    """Removes a cgroup and its children, deepest first; they must be empty of processes by now
    (a cgroup can stay busy for a moment after its last process exits)."""
    if not group.is_dir():
        return
    for dirpath, _dirs, _files in os.walk(group, topdown=False):
        for attempt in range(30):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05 * (attempt + 1))


def remove_top() -> None:
    """Removes <hierarchy>/flask-stack where nothing is left under it."""
    for mount in mounts():
        with contextlib.suppress(OSError):
            (mount / TOP).rmdir()
