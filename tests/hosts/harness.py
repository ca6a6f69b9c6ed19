"""Real Debian 12 test hosts on this machine: systemd-nspawn containers on a private bridge.

    with Testbed() as tb:
        h1, h2 = tb.boot(2)                     # booted in parallel, sshd answering
        h1.ssh("sudo -n systemctl is-system-running --wait")
        url = tb.postgres()                     # postgresql://app:...@<bridge address>:<port>/app

Each host is an overlayfs over the cached image (tests/hosts/image.py) with its own upper layer,
booted by `systemd-nspawn --boot` with systemd as PID 1, a veth on the testbed's bridge and a
static address from systemd-networkd. Hosts reach the outer machine (PostgreSQL, a package index
the tests serve) at `bridge_address` and nothing else: no default route, no NAT.

A testbed takes a free slot (tests/hosts/slots.py): slot N owns the bridge `fsbrN`, the subnet
10.147.(83+N).0/24 and the machine names `fsN-<name>`, so concurrent sessions do not collide,
and whatever a crashed session left in a slot is cleaned up by the next one that takes it. Each
container runs in cgroups of its own (tests/hosts/cgroups.py says why). Everything is torn down
when the context exits, after failures and KeyboardInterrupt too (SIGTERM is turned into
KeyboardInterrupt while a testbed is open in the main thread).

Debugging: `python -m tests.hosts.harness shell -n 2` boots hosts and keeps them up, printing the
ssh command lines; `python -m tests.hosts.harness cleanup` clears slots a crashed run left behind.
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import contextlib
import ipaddress
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.hosts import cgroups
from tests.hosts import image as image_mod
from tests.hosts.postgres import Postgres
from tests.hosts.slots import (
    BRIDGE,
    FIRST_OCTET3,
    MACHINE,
    RUN_DIR,
    STOP_TIMEOUT,
    SUBNET,
    HostError,
    Slot,
    children,
    cleanup_all,
    cleanup_slot,
    ip,
    take_slot,
    unmount_under,
)

FIRST_HOST = 11  # hosts get .11, .12, ...; the outer machine is .1
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,7}")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
REBOOT_EXIT = 133  # systemd-nspawn's exit status when the container asked for a reboot
BOOT_TIMEOUT = 120.0
REQUIRED_TOOLS = {"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap", "zstd": "zstd",
                  "ip": "iproute2", "mount": "mount", "ssh": "openssh-client",
                  "ssh-keygen": "openssh-client", "scp": "openssh-client"}


class HostCommandError(subprocess.CalledProcessError):
    """A command run over ssh failed; str() names the host and shows the ends of its output."""

    def __init__(self, host: str, command: str, result: subprocess.CompletedProcess):
        super().__init__(result.returncode, command, result.stdout, result.stderr)
        self.host = host

    def __str__(self) -> str:
        out, err = (self.stdout or "")[-3000:], (self.stderr or "")[-3000:]
        return (f"{self.host}: `{self.cmd}` exited {self.returncode}\n"
                f"--- stdout (end)\n{out}\n--- stderr (end)\n{err}")


@dataclass(eq=False)
class TestHost:
    __test__ = False  # not a pytest test class

    name: str
    address: str
    root: Path  # the merged overlay, as seen from the outer machine
    machine: str = field(repr=False)
    dir: Path = field(repr=False)  # upper/, work/, root/, console.log, known_hosts
    testbed: Testbed = field(repr=False)
    boot_seconds: float | None = field(default=None, repr=False)  # nspawn start to ssh login, last boot
    exits: list[int] = field(default_factory=list, repr=False)  # nspawn exit statuses so far
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _generation: int = field(default=0, init=False, repr=False)  # nspawn launches so far
    _want_up: bool = field(default=False, init=False, repr=False)

    # -- files ------------------------------------------------------------------------------------
    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def host_key(self) -> str:
        """The host's ed25519 public key line, "ssh-ed25519 AAAA..." (made at its first boot)."""
        path = self.root / "etc/ssh/ssh_host_ed25519_key.pub"
        try:
            kind, blob = path.read_text().split()[:2]
        except (OSError, ValueError) as e:
            raise HostError(f"{self.name}: no ssh host key yet ({path}): {e}") from e
        return f"{kind} {blob}"

    # -- commands ---------------------------------------------------------------------------------
    def ssh_options(self) -> list[str]:
        """Options for ssh/scp/sftp: the session key, this host's pinned key, no user config."""
        return ["-F", "/dev/null", "-i", str(self.testbed.private_key_path),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6", "-o", "LogLevel=ERROR"]

    def ssh_argv(self, user: str = image_mod.DEPLOY_USER) -> list[str]:
        """`ssh ... user@address`: append a command, or use it for an interactive shell."""
        return ["ssh", *self.ssh_options(), "-l", user, self.address]

    def ssh(self, command: str, *, user: str = image_mod.DEPLOY_USER, check: bool = True,
            timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        """Runs `command` through the user's login shell over real SSH; text in, text out."""
        result = subprocess.run([*self.ssh_argv(user), "--", command], input=input, capture_output=True,
                                text=True, timeout=timeout, check=False,
                                stdin=subprocess.DEVNULL if input is None else None)
        if check and result.returncode != 0:
            raise HostCommandError(self.name, command, result)
        return result

    def put(self, local: str | Path, remote: str, *, user: str = image_mod.DEPLOY_USER,
            timeout: float = 120) -> None:
        """Copies a local file or directory to the host over SFTP (scp -s)."""
        self._scp([str(local), f"{user}@{self.address}:{remote}"], timeout)

    def get(self, remote: str, local: str | Path, *, user: str = image_mod.DEPLOY_USER,
            timeout: float = 120) -> None:
        """Copies a file or directory from the host over SFTP (scp -s)."""
        self._scp([f"{user}@{self.address}:{remote}", str(local)], timeout)

    def _scp(self, paths: list[str], timeout: float) -> None:
        argv = ["scp", "-s", "-q", "-r", "-p", *self.ssh_options(), *paths]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise HostCommandError(self.name, shlex.join(["scp", *paths]), result)

    def journal(self, unit: str | None = None, lines: int = 100) -> str:
        """The last lines of the host's journal (of one unit if given), for failure messages."""
        command = ["sudo", "-n", "journalctl", "--no-pager", "-o", "short-precise", "-n", str(lines)]
        if unit:
            command += ["-u", unit]
        result = self.ssh(shlex.join(command), check=False, timeout=30)
        return result.stdout + result.stderr

    def failed_units(self) -> list[str]:
        result = self.ssh("systemctl --failed --no-legend --plain", check=False, timeout=30)
        return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]

    def system_state(self, timeout: float = 60) -> str:
        """`systemctl is-system-running --wait`: "running", "degraded", ..."""
        result = self.ssh(f"timeout {int(timeout)} systemctl is-system-running --wait", check=False,
                          timeout=timeout + 10)
        return result.stdout.strip()

    @property
    def boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id", timeout=30).stdout.strip()

    def nsenter(self, command: str, *, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs a command inside the container without ssh (as root), for when sshd is the problem."""
        leader = self.leader_pid()
        if leader is None:
            raise HostError(f"{self.name} is not running")
        return subprocess.run(["nsenter", f"--target={leader}", "--mount", "--uts", "--ipc", "--net",
                               "--pid", "--", "/bin/sh", "-c", command],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def leader_pid(self) -> int | None:
        """The container's PID 1 as seen from the outer machine (a child of systemd-nspawn)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return None
        kids = children(proc.pid)
        return kids[0] if kids else None

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def start(self, *, timeout: float = BOOT_TIMEOUT) -> None:
        """Boots the container (a no-op when it runs) and waits until ssh logins work."""
        self.launch()
        self.wait_ssh(timeout=timeout)

    def launch(self) -> None:
        """Starts systemd-nspawn in the background without waiting (boot() launches all, then waits)."""
        with self._cond:
            if self._want_up and self._thread and self._thread.is_alive():
                return
            self._want_up = True
            generation = self._generation
            self._thread = threading.Thread(target=self._supervise, name=f"nspawn-{self.name}", daemon=True)
            self._thread.start()
            if not self._cond.wait_for(lambda: self._generation > generation or not self._want_up, 30):
                raise HostError(f"{self.name}: systemd-nspawn did not start")

    def _supervise(self) -> None:
        """Runs nspawn; starts it again when the container reboots (exit 133), as systemd would."""
        while True:
            with self._cond:
                if not self._want_up:
                    break
                with self.console_log.open("a") as console:
                    console.write(f"\n==== testbed: starting {self.machine} ({time.strftime('%H:%M:%S')})\n")
                    console.flush()
                    # In a session of its own: a terminal's Ctrl-C reaches us, not the containers.
                    self._proc = subprocess.Popen(
                        cgroups.launch_argv(self._nspawn_argv(), self.cgroup_paths), stdin=subprocess.DEVNULL,
                        stdout=console, stderr=console, start_new_session=True)
                self._generation += 1
                self._cond.notify_all()
                proc = self._proc
            status = proc.wait()
            for group in self.cgroup_paths:
                cgroups.remove(group)
            with self._cond:
                self.exits.append(status)
                self._proc = None
                if status != REBOOT_EXIT:
                    self._want_up = False
                self._cond.notify_all()

    @property
    def cgroup_paths(self) -> list[Path]:
        """This host's own cgroups (see tests/hosts/cgroups.py for why it needs them)."""
        return cgroups.groups(self.dir.parent.name, self.name)

    def _nspawn_argv(self) -> list[str]:
        # --console=passive rather than the recipe's pipe: systemd writes its boot and shutdown
        # status only to a terminal, and this one lands in console.log for failure messages.
        return ["systemd-nspawn", "--boot", f"--directory={self.root}", f"--machine={self.machine}",
                f"--hostname={self.name}", "--register=no", "--keep-unit",
                f"--network-bridge={self.testbed.bridge}", "--console=passive", "--link-journal=no",
                "--resolv-conf=off", "--timezone=off", "--", "systemd.show_status=true"]

    def wait_ssh(self, *, timeout: float = BOOT_TIMEOUT) -> None:
        """Waits until sshd answers and a login with the pinned host key succeeds."""
        started = time.monotonic()
        deadline = started + timeout
        last = "sshd never answered"
        while time.monotonic() < deadline:
            if self.testbed.aborting.is_set():
                raise HostError(f"{self.name}: testbed closing")
            with self._cond:
                down = not self._want_up
            if down:
                raise HostError(f"{self.name}: systemd-nspawn exited {self.exits[-1:]}\n"
                                f"{self.console_tail()}")
            if _ssh_banner(self.address):
                try:
                    self.known_hosts.write_text(f"{self.address} {self.host_key}\n")
                    self.ssh("true", timeout=15)
                    self.boot_seconds = time.monotonic() - started
                    return
                except (HostError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                    last = str(e)
            time.sleep(0.1)
        raise HostError(f"{self.name} ({self.address}): no ssh login within {timeout:.0f} s: {last}\n"
                        f"{self.console_tail()}")

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return ""
        kept = [line for line in ANSI_RE.sub("", text).replace("\r", "").splitlines() if line.strip()]
        return "--- console (end)\n" + "\n".join(kept[-lines:])

    def stop(self, *, timeout: float = STOP_TIMEOUT) -> None:
        """Clean shutdown: SIGTERM to nspawn (it halts the container's systemd), wait; escalate
        only after `timeout`: SIGKILL the container's PID 1, and nspawn itself last of all."""
        with self._cond:
            self._want_up = False
            proc, thread = self._proc, self._thread
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.testbed.log(f"testbed: {self.name} did not halt within {timeout:.0f} s; killing its "
                                 f"PID 1\n{self.console_tail(15)}")
                leader = self.leader_pid()
                if leader is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(leader, signal.SIGKILL)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        if thread is not None:
            thread.join(10)

    def reboot(self, *, timeout: float = BOOT_TIMEOUT) -> None:
        """`systemctl reboot` inside the host; waits for the new boot's ssh login."""
        with self._cond:
            generation = self._generation
        old_boot = self.boot_id
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ssh("sudo -n systemctl reboot", check=False, timeout=30)
        with self._cond:
            if not self._cond.wait_for(lambda: self._generation > generation or not self._want_up, timeout):
                raise HostError(f"{self.name}: did not restart within {timeout:.0f} s\n{self.console_tail()}")
        self.wait_ssh(timeout=timeout)
        if self.boot_id == old_boot:
            raise HostError(f"{self.name}: reboot kept the boot id {old_boot}")


class Testbed:
    """A bridge, an SSH key pair, hosts booted from the cached image, optionally PostgreSQL."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, packages: tuple[str, ...] = image_mod.PACKAGES,
                 log: Callable[[str], None] | None = None, handle_sigterm: bool = True):
        self.packages = packages
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.handle_sigterm = handle_sigterm
        self.hosts: list[TestHost] = []
        self.timings: dict[str, float] = {}
        self.aborting = threading.Event()
        self.image: image_mod.Image | None = None
        self.slot: Slot | None = None
        self.dir: Path | None = None
        self.bridge = ""
        self.bridge_address = ""
        self.subnet = ""
        self.private_key = ""
        self.public_key = ""
        self.private_key_path: Path | None = None
        self.pg: Postgres | None = None
        self._next_index = 0
        self._names: set[str] = set()
        self._old_sigterm = None
        self._closed = False

    # -- context ------------------------------------------------------------------------------------
    def __enter__(self) -> Testbed:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise
            self.log("testbed: teardown failed too (the original error follows):\n" + traceback.format_exc())

    def _open(self) -> None:
        if os.geteuid() != 0:
            raise HostError("the testbed needs root (systemd-nspawn, bridges, mounts)")
        missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if not _which(tool)})
        if missing:
            raise HostError(f"missing tools: apt-get install -y --no-install-recommends {' '.join(missing)}")
        atexit.register(self.close)
        if self.handle_sigterm and threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        self.image = image_mod.ensure_image(self.packages, log=self.log)
        self.timings["image_ready"] = self.image.ready_seconds
        if self.image.built_seconds is not None:
            self.timings["image_build"] = self.image.built_seconds
        self.slot = take_slot()
        cleanup_slot(self.slot.number, log=self.log)
        n = self.slot.number
        network = ipaddress.ip_network(SUBNET.format(third=FIRST_OCTET3 + n))
        self.subnet = str(network)
        self.bridge = BRIDGE.format(slot=n)
        self.bridge_address = str(network.network_address + 1)
        self.dir = RUN_DIR / f"slot{n}"
        self.dir.mkdir(parents=True)
        self.dir.chmod(0o755)  # the postgres user traverses it to its own directory
        ip("link", "add", self.bridge, "type", "bridge")
        with contextlib.suppress(OSError):
            Path(f"/proc/sys/net/ipv6/conf/{self.bridge}/disable_ipv6").write_text("1\n")
        ip("addr", "add", f"{self.bridge_address}/{network.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        keys = self.dir / "keys"
        keys.mkdir(mode=0o700)
        self.private_key_path = keys / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"flask-stack-testbed-{n}",
                        "-f", str(self.private_key_path)], check=True, capture_output=True)
        self.private_key = self.private_key_path.read_text()
        self.public_key = self.private_key_path.with_suffix(".pub").read_text().strip()

    def _on_sigterm(self, signum, frame) -> None:
        if not self._closed and not self.aborting.is_set():
            raise KeyboardInterrupt(f"signal {signum}")

    # -- hosts --------------------------------------------------------------------------------------
    def host_key(self, host: TestHost) -> str:
        return host.host_key

    def boot(self, n: int, *, prefix: str = "h", timeout: float = BOOT_TIMEOUT) -> list[TestHost]:
        """`n` fresh hosts from the image, started in parallel; returns once every one takes ssh logins."""
        if self.dir is None:
            raise HostError("use the Testbed as a context manager (with Testbed() as tb: ...)")
        started = time.monotonic()
        hosts = [self._new_host(self._next_name(prefix)) for _ in range(n)]
        for host in hosts:
            host.launch()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(n, 1), thread_name_prefix="wait-ssh")
        try:
            futures = [pool.submit(host.wait_ssh, timeout=timeout) for host in hosts]
            for future in futures:
                future.result()
        except Exception:
            # The error carries the console; the testbed stays usable without these hosts.
            with contextlib.suppress(Exception):
                self.destroy(*hosts)
            raise
        except BaseException:  # KeyboardInterrupt: every wait gives up, close() tears down
            self.aborting.set()
            raise
        finally:
            pool.shutdown(wait=not self.aborting.is_set(), cancel_futures=True)
        self.timings[f"boot_{n}"] = time.monotonic() - started
        return hosts

    def _next_name(self, prefix: str) -> str:
        i = 1
        while f"{prefix}{i}" in self._names:
            i += 1
        name = f"{prefix}{i}"
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"host name {name!r}: want {NAME_RE.pattern} (the veth name is limited)")
        return name

    def _new_host(self, name: str) -> TestHost:
        assert self.dir is not None and self.image is not None and self.slot is not None
        index = self._next_index
        if FIRST_HOST + index > 250:
            raise HostError("no addresses left on the testbed's subnet")
        self._next_index += 1
        self._names.add(name)
        address = str(ipaddress.ip_network(self.subnet).network_address + FIRST_HOST + index)
        hostdir = self.dir / name
        for sub in ("upper", "work", "root"):
            (hostdir / sub).mkdir(parents=True)
        host = TestHost(name=name, address=address, root=hostdir / "root",
                        machine=MACHINE.format(slot=self.slot.number, name=name), dir=hostdir, testbed=self)
        self.hosts.append(host)
        layers = f"lowerdir={self.image.rootfs},upperdir={hostdir / 'upper'},workdir={hostdir / 'work'}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", layers, str(host.root)],
                       check=True, capture_output=True)
        self._personalise(host)
        return host

    def _personalise(self, host: TestHost) -> None:
        """Writes what makes a clone this host: address, machine id, authorised keys."""
        assert self.image is not None
        root = host.root
        prefixlen = ipaddress.ip_network(self.subnet).prefixlen
        (root / "etc/systemd/network/10-testbed.network").write_text(
            "# flask-stack testbed: a static address on the bridge, no gateway, no IPv6\n"
            "[Match]\nName=host0\n\n"
            f"[Network]\nAddress={host.address}/{prefixlen}\n"
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
        (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        for home, uid, gid in ((root / "home" / image_mod.DEPLOY_USER, self.image.deploy_uid,
                                self.image.deploy_gid), (root / "root", 0, 0)):
            ssh_dir = home / ".ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            keys = ssh_dir / "authorized_keys"
            keys.write_text(self.public_key + "\n")
            keys.chmod(0o600)
            for path in (ssh_dir, keys):
                os.chown(path, uid, gid)

    def destroy(self, *hosts: TestHost) -> None:
        """Stops the hosts (in parallel) and removes their overlays: their changes are gone."""
        if len(hosts) > 1:
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts)) as pool:
                for future in [pool.submit(self.destroy, host) for host in hosts]:
                    future.result()
            return
        for host in hosts:
            with self._slow(f"destroying {host.name}"):
                host.stop()
                unmount_under(host.dir)
                shutil.rmtree(host.dir, ignore_errors=True)
            if host in self.hosts:
                self.hosts.remove(host)

    @contextlib.contextmanager
    def _slow(self, what: str, limit: float = 5.0):
        """Logs a step that took longer than it should (teardown is normally well under a second)."""
        started = time.monotonic()
        yield
        if (took := time.monotonic() - started) > limit:
            self.log(f"testbed: {what} took {took:.1f} s")

    # -- database -----------------------------------------------------------------------------------
    def postgres(self) -> str:
        """Starts (once) a private PostgreSQL listening on loopback and the bridge address only;
        returns "postgresql://app:PASSWORD@BRIDGE_ADDRESS:PORT/app". `self.pg.sql()` runs SQL as admin."""
        if self.dir is None:
            raise HostError("use the Testbed as a context manager (with Testbed() as tb: ...)")
        if self.pg is None:
            self.pg = Postgres(self.dir / "pg", bridge_address=self.bridge_address, subnet=self.subnet)
        return self.pg.start()

    # -- teardown -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Tears everything down (idempotent): hosts, overlays, PostgreSQL, bridge, slot."""
        if self._closed:
            return
        self._closed = True
        self.aborting.set()
        errors: list[str] = []
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(self.hosts), 1)) as pool:
                for host, future in [(h, pool.submit(self.destroy, h)) for h in list(self.hosts)]:
                    try:
                        future.result()
                    except Exception as e:  # keep tearing down the rest
                        errors.append(f"{host.name}: {e}")
            if self.pg is not None:
                try:
                    with self._slow("stopping PostgreSQL"):
                        self.pg.stop()
                except Exception as e:
                    errors.append(f"postgres: {e}")
            if self.slot is not None:
                try:
                    with self._slow("cleaning the slot"):
                        cleanup_slot(self.slot.number, log=self.log)  # what is left: bridge, directory
                except Exception as e:
                    errors.append(f"slot {self.slot.number}: {e}")
        finally:
            if self.slot is not None:
                self.slot.lock.close()
                self.slot = None
            if self._old_sigterm is not None:
                signal.signal(signal.SIGTERM, self._old_sigterm)
                self._old_sigterm = None
            atexit.unregister(self.close)
        if errors:
            raise HostError("testbed teardown: " + "; ".join(errors))


def _which(tool: str) -> str | None:
    return shutil.which(tool) or next((p for d in ("/usr/sbin", "/sbin") if os.access(p := f"{d}/{tool}",
                                                                                     os.X_OK)), None)


def _ssh_banner(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=1) as conn:
            conn.settimeout(2)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


# -- CLI ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hosts.harness", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    shell = sub.add_parser("shell", help="boot hosts and keep them up until Ctrl-C")
    shell.add_argument("-n", type=int, default=1, help="how many hosts (default 1)")
    shell.add_argument("--prefix", default="h")
    shell.add_argument("--postgres", action="store_true", help="start PostgreSQL too")
    sub.add_parser("image", help="build (or reuse) the cached image and print where it is")
    sub.add_parser("cleanup", help="clean slots that crashed runs left behind")
    args = parser.parse_args(argv)
    if args.command == "image":
        img = image_mod.ensure_image()
        built = f"built in {img.built_seconds:.1f} s" if img.built_seconds else "cached"
        print(f"{img.rootfs} ({built}, ready in {img.ready_seconds:.1f} s)\n{img.tarball}")
        return 0
    if args.command == "cleanup":
        print(f"cleaned slots: {cleanup_all()}")
        return 0
    with Testbed() as tb:
        hosts = tb.boot(args.n, prefix=args.prefix)
        print(f"bridge {tb.bridge} {tb.bridge_address} ({tb.subnet}); key {tb.private_key_path}")
        if args.postgres:
            print(f"database: {tb.postgres()}")
        for host in hosts:
            print(f"{host.name} {host.address} up in {host.boot_seconds:.1f} s  root={host.root}\n"
                  f"  {shlex.join(host.ssh_argv())}")
        print("Ctrl-C to tear down.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\ntearing down ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
