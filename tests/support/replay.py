"""Replaying the program's remote steps on real hosts, the way pulumi-command would run them.

The program runs under Pulumi's mocks (tests/support/mocks.py) and declares its
`remote.Command` and `remote.CopyToRemote` resources; the replayer takes exactly those payloads
(the create/update command lines, stdin, the archive and its remote path, the connection) and
executes them over real SSH/SFTP in dependency order (a `local.Command`, the host key check, on
this machine). Like a `pulumi up`, it keeps the inputs of
every step that succeeded and, on the next replay, runs only the steps whose inputs changed
(`update` if the step has one, else `create`); a failed step leaves its old state, and nothing
that depends on it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.mocks import Registered, Run, plain

COMMAND = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
LOCAL = "command:local:Command"  # the host key steps: run on this machine


class StepFailed(Exception):
    def __init__(self, step: str, result: subprocess.CompletedProcess):
        self.step = step
        self.result = result
        super().__init__(f"{step} failed (exit {result.returncode}):\n{result.stderr[-20000:]}")


@dataclass
class Outcome:
    ran: list[str] = field(default_factory=list)  # step names, in the order they ran
    seconds: dict[str, float] = field(default_factory=dict)
    stdout: dict[str, str] = field(default_factory=dict)
    failed: StepFailed | None = None


def comparable(inputs: dict[str, Any]) -> str:
    """The inputs that decide whether a step runs again, in a stable form."""
    data = plain(inputs)
    if "source" in data:  # an asset: its path stands for it (the path carries the content hash)
        data["source"] = str(getattr(data["source"], "path", data["source"]))
    return json.dumps(data, sort_keys=True, default=str)


def order(steps: list[Registered]) -> list[Registered]:
    """Topological order over the recorded dependencies (resource URNs)."""
    by_urn = {s.urn: s for s in steps}
    done: set[str] = set()
    out: list[Registered] = []

    def deps(step: Registered) -> list[str]:
        return [d for d in step.dependencies if d in by_urn]

    def visit(step: Registered, trail: tuple[str, ...] = ()) -> None:
        if step.urn in done:
            return
        assert step.urn not in trail, f"dependency cycle through {step.name}"
        for dep in deps(step):
            visit(by_urn[dep], (*trail, step.urn))
        done.add(step.urn)
        out.append(step)

    for step in steps:
        visit(step)
    return out


class Replayer:
    """One stack's state across replays (what `pulumi up` keeps in its state file)."""

    def __init__(self, workdir: Path):
        self.state: dict[str, str] = {}
        self.workdir = workdir

    def _ssh_base(self, conn: dict[str, Any]) -> list[str]:
        key = self.workdir / f"key-{abs(hash(conn['privateKey'])) % 10**8}"
        if not key.exists():
            key.write_text(conn["privateKey"].rstrip("\n") + "\n")
            key.chmod(0o600)
        options = ["-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=15",
                   "-o", "ServerAliveInterval=10", "-o", "LogLevel=ERROR"]
        if conn.get("hostKey"):
            known = self.workdir / f"known-{conn['host']}"
            known.write_text(f"{conn['host']} {conn['hostKey']}\n")
            options += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
        else:
            options += ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"]
        return options

    def run_command(self, step: Registered, first_time: bool, timeout: float) -> subprocess.CompletedProcess:
        inputs = plain(step.inputs)
        conn = inputs["connection"]
        line = inputs["create"] if first_time or not inputs.get("update") else inputs["update"]
        target = f"{conn['user']}@{conn['host']}"
        argv = ["ssh", *self._ssh_base(conn), "-p", str(int(conn.get("port") or 22)), target, line]
        return subprocess.run(argv, input=inputs.get("stdin") or "", capture_output=True, text=True,
                              timeout=timeout, check=False)

    def run_copy(self, step: Registered, timeout: float) -> subprocess.CompletedProcess:
        inputs = plain(step.inputs)
        conn = inputs["connection"]
        source = getattr(inputs["source"], "path", None) or inputs["source"]["path"]
        target = f"{conn['user']}@{conn['host']}:{inputs['remotePath']}"
        argv = ["scp", "-q", *self._ssh_base(conn), "-P", str(int(conn.get("port") or 22)),
                str(source), target]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def run_local(self, step: Registered, first_time: bool, timeout: float) -> subprocess.CompletedProcess:
        inputs = plain(step.inputs)
        line = inputs["create"] if first_time or not inputs.get("update") else inputs["update"]
        argv = [*(inputs.get("interpreter") or ["/bin/sh", "-c"]), line]
        return subprocess.run(argv, input=inputs.get("stdin") or "", capture_output=True, text=True,
                              timeout=timeout, check=False)

    def replay(self, run: Run, *, timeout: float = 600, stop_on_failure: bool = True) -> Outcome:
        steps = [r for r in run.monitor.registered if r.type in (COMMAND, COPY, LOCAL)]
        outcome = Outcome()
        blocked: set[str] = set()
        for step in order(steps):
            if any(d in blocked for d in step.dependencies):
                blocked.add(step.urn)
                continue
            current = comparable(step.inputs)
            if self.state.get(step.urn) == current:
                continue
            started = time.monotonic()
            if step.type == COPY:
                result = self.run_copy(step, timeout)
            elif step.type == LOCAL:
                result = self.run_local(step, step.urn not in self.state, timeout)
            else:
                result = self.run_command(step, step.urn not in self.state, timeout)
            outcome.seconds[step.name] = time.monotonic() - started
            outcome.ran.append(step.name)
            outcome.stdout[step.name] = result.stdout
            if result.returncode != 0:
                outcome.failed = outcome.failed or StepFailed(step.name, result)
                blocked.add(step.urn)
                if stop_on_failure:
                    break
                continue
            self.state[step.urn] = current
        return outcome


def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="flask-stack-replay-"))
    os.chmod(path, 0o700)
    return path
