"""A private PostgreSQL cluster on the outer machine, standing in for the managed database.

It runs as the `postgres` user from a directory of its own (initdb + pg_ctl; the distribution's
cluster, if any, is not touched), listens on loopback and the testbed's bridge address only (or on
loopback alone, for a test without hosts: tests/test_heroku_release.py), and accepts password
logins (SCRAM) from loopback and the bridge subnet only. Durability is turned off
(fsync, full_page_writes): it is thrown away with the testbed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PG_USER = "postgres"
DATABASE = "app"
ROLE = "app"


def bindir() -> Path:
    """The newest installed PostgreSQL's server binaries (Debian keeps them off PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL is not installed: apt-get install -y --no-install-recommends postgresql")


def free_port(addresses: list[str]) -> int:
    """A TCP port free on every address (the usual small race until the server binds it)."""
    for _ in range(50):
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(socket.socket())
            first.bind((addresses[0], 0))
            port = first.getsockname()[1]
            try:
                for address in addresses[1:]:
                    stack.enter_context(socket.socket()).bind((address, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {addresses}")


class Postgres:
    """`start()` returns the app's URL; `stop()` removes everything. Also `sql()` for tests."""

    def __init__(self, workdir: Path, *, bridge_address: str = "127.0.0.1", subnet: str | None = None):
        self.workdir = workdir
        self.bridge_address = bridge_address
        self.subnet = subnet
        self.data = workdir / "data"
        self.sockets = workdir / "sockets"
        self.logfile = workdir / "postgres.log"
        self.port: int | None = None
        self.password = secrets.token_hex(16)
        self.url: str | None = None

    def start(self) -> str:
        if self.url:
            return self.url
        bins = bindir()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        for path in (self.workdir, self.sockets):
            shutil.chown(path, PG_USER, PG_USER)
            path.chmod(0o700)
        self._as_postgres([str(bins / "initdb"), "-D", str(self.data), "-U", PG_USER, "-E", "UTF8",
                           "--locale=C", "--auth-local=trust", "--auth-host=reject", "--no-sync"])
        addresses = list(dict.fromkeys(["127.0.0.1", self.bridge_address]))
        self.port = free_port(addresses)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"""
# flask-stack testbed
listen_addresses = '{",".join(addresses)}'
port = {self.port}
unix_socket_directories = '{self.sockets}'
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
""")
        (self.data / "pg_hba.conf").write_text(
            "# flask-stack testbed: sockets for the admin, passwords from loopback and the bridge only\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            + (f"host all all {self.subnet} scram-sha-256\n" if self.subnet else ""))
        self._as_postgres([str(bins / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                           "-w", "-t", "60", "start"])
        self.sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD :'password';\n"
                 f"CREATE DATABASE {DATABASE} OWNER {ROLE};\n", variables={"password": self.password})
        self.url = f"postgresql://{ROLE}:{self.password}@{self.bridge_address}:{self.port}/{DATABASE}"
        return self.url

    def sql(self, script: str, *, database: str = "postgres", variables: dict[str, str] | None = None) -> str:
        """Runs SQL as the superuser over the private socket; returns unaligned, tuples-only output."""
        argv = [str(bindir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", str(self.sockets), "-p", str(self.port), "-U", PG_USER, "-d", database]
        for name, value in (variables or {}).items():
            argv += ["-v", f"{name}={value}"]
        return self._as_postgres(argv, input=script).stdout

    def stop(self) -> None:
        if self.data.is_dir() and (self.data / "postmaster.pid").exists():
            pg_ctl = str(bindir() / "pg_ctl")
            for mode in ("fast", "immediate"):
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._as_postgres([pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "20", "stop"])
                    break
            else:
                kill_postmaster(self.data)
        self.url = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _as_postgres(self, argv: list[str], *, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(argv, user=PG_USER, group=PG_USER, extra_groups=[], cwd=self.workdir,
                                input=input, capture_output=True, text=True, timeout=90, check=False,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"})
        if result.returncode != 0:
            log = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"{Path(argv[0]).name} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}\n{log}")
        return result


def kill_postmaster(data: Path) -> None:
    """Last resort for a cluster left by a crashed run: SIGQUIT (immediate shutdown) the postmaster."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
