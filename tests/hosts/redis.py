"""A private Redis on the outer machine, the broker the queue app's workers on the test hosts use.

It runs from a directory of its own (the distribution's service, if any, is not touched), listens
on loopback and the testbed's bridge address only, wants a password, and keeps nothing on disk.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.hosts.postgres import free_port


class Redis:
    def __init__(self, workdir: Path, *, bridge_address: str):
        self.workdir = workdir
        self.bridge_address = bridge_address
        self.password = secrets.token_hex(16)
        self.port = 0
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        """Starts the server (once); returns the URL the hosts use."""
        if self.process is None:
            server = shutil.which("redis-server")
            if server is None:
                raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.port = free_port(["127.0.0.1", self.bridge_address])
            self.process = subprocess.Popen(
                [server, "--port", str(self.port), "--bind", "127.0.0.1", self.bridge_address,
                 "--requirepass", self.password, "--save", "", "--appendonly", "no",
                 "--dir", str(self.workdir), "--daemonize", "no", "--loglevel", "warning"],
                stdout=(self.workdir / "redis.log").open("w"), stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 20
            while not self._answers():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.workdir / "redis.log").read_text()
                    raise RuntimeError(f"redis-server did not start: {log}")
                time.sleep(0.1)
        return f"redis://:{self.password}@{self.bridge_address}:{self.port}/0"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                return b"PONG" in conn.recv(100)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
