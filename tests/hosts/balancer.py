"""A stand-in for a cloud load balancer in front of the test hosts: HAProxy (Debian's) on the
outer machine's bridge address, behaving toward the hosts the way the ALB and DigitalOcean's
balancer do, with the numbers the program declares for them (stack/balancer.py):

- HTTP health checks of `deploy.healthPath` every `interval` s, each given `timeout` s; a host
  is taken out after `unhealthy` failures in a row and back after `healthy` passes (ALB target
  group health checks; DigitalOcean's load balancer health check settings).
- Connections to the hosts are kept and reused across clients (`http-reuse always`), idle up to
  the balancer's idle timeout (60 s on both: the ALB's idle_timeout, DigitalOcean's
  http_idle_timeout_seconds), as both clouds pool their backend connections (DigitalOcean's
  enable_backend_keepalive).
- A request that was sent is never sent again to another host (`retries 0`, `retry-on none`):
  the ALB answers 502 when a target closes a connection under a request, and does not retry it
  (Elastic Load Balancing user guide, "HTTP 502: Bad gateway"); nor does DigitalOcean's.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from stack.balancer import Balancing
from tests.hosts.postgres import free_port

CONFIG = """global
    stats socket {dir}/admin.sock mode 600 level admin
    maxconn 2000

defaults
    mode http
    timeout connect 5s
    timeout client {idle}s
    timeout server {idle}s
    timeout http-keep-alive {idle}s
    option http-keep-alive
    retries 0
    retry-on none

frontend balancer
    bind {address}:{port}
    default_backend hosts

backend hosts
    balance roundrobin
    http-reuse always
    option httpchk
    http-check send meth GET uri {path} ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check inter {interval}s fall {unhealthy} rise {healthy} pool-purge-delay {idle}s
{servers}
"""


@dataclass
class StandIn:
    """`address`/`port`/`name` make it a target for the tests' load generators."""

    workdir: Path
    bridge_address: str
    hosts: list
    balancing: Balancing
    health_path: str = "/healthz"
    name: str = "balancer"
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return self.bridge_address

    def start(self) -> StandIn:
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            raise RuntimeError("haproxy is not installed: apt-get install -y haproxy")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port([self.bridge_address])
        b = self.balancing
        servers = "\n".join(f"    server {h.name} {h.address}:80" for h in self.hosts)
        config = self.workdir / "balancer.cfg"
        config.write_text(CONFIG.format(dir=self.workdir, idle=b.idle, address=self.bridge_address,
                                        port=self.port, path=self.health_path, interval=b.interval,
                                        unhealthy=b.unhealthy, healthy=b.healthy, servers=servers))
        self.process = subprocess.Popen([haproxy, "-db", "-f", str(config)],
                                        stdout=(self.workdir / "balancer.log").open("w"),
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stand-in balancer did not start: "
                                   f"{(self.workdir / 'balancer.log').read_text()}")
            time.sleep(0.1)
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection((self.bridge_address, self.port), timeout=1):
                return True
        except OSError:
            return False

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(self.workdir / "admin.sock"))
            conn.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def add(self, host) -> None:
        """Registers one more host while the balancer runs (a new target in a target group, a
        droplet joining a DigitalOcean balancer), with the same health checks; HAProxy adds a
        server in maintenance, so its checks and then the server are enabled."""
        b = self.balancing
        name = f"hosts/{host.name}"
        for command in (f"add server {name} {host.address}:80 check inter {b.interval}s "
                        f"fall {b.unhealthy} rise {b.healthy} pool-purge-delay {b.idle}s",
                        f"enable health {name}", f"enable server {name}"):
            answer = self.admin(command).strip()
            if answer and answer != "New server registered.":
                raise RuntimeError(f"the stand-in balancer refused {command!r}: {answer}")
        self.hosts.append(host)

    def stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's statistics row of each host (its "show stat" columns: status, chkdown...)."""
        lines = self.admin("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "hosts" and row.get("svname") not in ("BACKEND", "FRONTEND"):
                out[row["svname"]] = row
        return out

    def states(self) -> dict[str, str]:
        """Each host's state as the balancer sees it: UP, DOWN, or a transition (UP 1/3...)."""
        return {name: row["status"] for name, row in self.stats().items()}

    def times_taken_out(self) -> dict[str, int]:
        """How often the balancer has taken each host out (UP to DOWN) since it started."""
        return {name: int(row["chkdown"] or 0) for name, row in self.stats().items()}

    def wait_until(self, host: str, state: str, timeout: float) -> float:
        """Seconds until `host` is in `state` (UP or DOWN); fails after `timeout`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.states().get(host) == state:
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"{host} not {state} within {timeout} s: {self.states()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
