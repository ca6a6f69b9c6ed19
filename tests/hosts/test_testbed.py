"""The test-host harness itself: real hosts boot, take ssh logins, reach PostgreSQL and nothing
beyond the bridge, reboot, and leave nothing behind when the testbed closes."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.hosts import cgroups, harness, slots
from tests.hosts.harness import Testbed, TestHost

pytestmark = pytest.mark.hosts

# A PostgreSQL StartupMessage (protocol 3.0) and the first byte and code of the answer: "R 10" is
# AuthenticationSASL, i.e. pg_hba.conf let this client in to try SCRAM; a rejected client gets "E".
PG_PROBE = r"""
import socket, struct, sys
params = b"user\0app\0database\0app\0\0"
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
    s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    kind = s.recv(1)
    length, code = struct.unpack("!ii", s.recv(8))
    print(kind.decode(), code)
"""


@pytest.fixture(scope="module")
def pair(testbed: Testbed) -> list[TestHost]:
    started = time.monotonic()
    hosts = testbed.boot(2, prefix="t")
    took = time.monotonic() - started
    each = ", ".join(f"{h.name} {h.boot_seconds:.2f} s" for h in hosts)
    print(f"\nboot-to-ssh of 2 hosts in parallel: {took:.2f} s ({each})")
    yield hosts
    testbed.destroy(*hosts)


def test_image_is_cached_and_stock(testbed: Testbed):
    image = testbed.image
    if image.built_seconds is not None:
        print(f"\ncold image build (debootstrap + customisation): {image.built_seconds:.1f} s")
    else:
        recorded = f"{image.recorded_build_seconds:.1f} s" if image.recorded_build_seconds else "unknown"
        print(f"\nimage reused from cache in {image.ready_seconds:.2f} s (its cold build took {recorded})")
    assert image.tarball.is_file() and image.rootfs.is_dir()
    etc = image.rootfs / "etc"
    assert not (etc / "hostname").exists(), "/etc/hostname would override the machine name"
    assert not list((etc / "ssh").glob("ssh_host_*")), "clones would share the ssh host keys"
    assert (etc / "machine-id").read_text() == ""
    assert (etc / "nginx/sites-enabled/default").exists(), "the image should be stock Debian"
    assert (etc / "systemd/system/multi-user.target.wants/nginx.service").exists()
    assert (image.rootfs / "var/lib/apt/lists").glob("*_Packages")


def test_hosts_reach_running(pair: list[TestHost]):
    for host in pair:
        state = host.system_state()
        if state != "running":
            failed = host.failed_units()
            details = "\n".join(f"--- {unit}\n{host.journal(unit, 30)}" for unit in failed)
            pytest.fail(f"{host.name}: is-system-running says {state!r}; failed units: {failed}\n{details}")


def test_ssh_as_deploy_with_passwordless_sudo(pair: list[TestHost]):
    for host in pair:
        assert host.ssh("whoami").stdout.strip() == "deploy"
        assert host.ssh("hostname").stdout.strip() == host.name
        host.ssh("sudo -n true")
        assert host.ssh("whoami", user="root").stdout.strip() == "root"
        assert host.ssh("cat", input="through stdin\n").stdout == "through stdin\n"
        failure = host.ssh("exit 3", check=False)
        assert failure.returncode == 3
    with pytest.raises(harness.HostCommandError, match=r"t1: `false` exited 1"):
        pair[0].ssh("false")


def test_clones_differ(pair: list[TestHost], testbed: Testbed):
    first, second = pair
    assert testbed.host_key(first) != testbed.host_key(second)
    assert testbed.host_key(first).startswith("ssh-ed25519 AAAA")
    ids = {h.ssh("cat /etc/machine-id").stdout.strip() for h in pair}
    assert len(ids) == 2


def test_each_host_runs_in_cgroups_of_its_own(pair: list[TestHost], testbed: Testbed):
    for host in pair:
        own = f"/flask-stack/slot{testbed.slot.number}/{host.name}/payload/"
        lines = Path(f"/proc/{host.leader_pid()}/cgroup").read_text().splitlines()
        assert any(line.startswith("0::") and own in line for line in lines), lines
        # what the host's systemd puts in its nginx.service is that host's nginx and nothing else
        inside = host.ssh("systemctl show -P ControlGroup nginx; pgrep -c nginx").stdout.split()
        assert host.cgroup_paths
        for group in host.cgroup_paths:  # every hierarchy systemd tracks processes in
            procs = (group / "payload" / inside[0].lstrip("/") / "cgroup.procs").read_text().split()
            assert len(procs) == int(inside[1]) > 0, group


def test_host_key_pins_what_ssh_sees(pair: list[TestHost], testbed: Testbed, tmp_path: Path):
    key = tmp_path / "key"
    key.write_text(testbed.private_key)
    key.chmod(0o600)

    def connect(host: TestHost, pinned: str) -> subprocess.CompletedProcess:
        known = tmp_path / "known_hosts"
        known.write_text(f"{host.address} {pinned}\n")
        return subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", "HostKeyAlgorithms=ssh-ed25519",
             f"deploy@{host.address}", "hostname"],
            capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)

    first, second = pair
    for host in pair:
        result = connect(host, testbed.host_key(host))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == host.name
        scanned = subprocess.run(["ssh-keyscan", "-t", "ed25519", host.address], capture_output=True,
                                 text=True, timeout=30, check=True).stdout.split()
        assert " ".join(scanned[1:3]) == testbed.host_key(host)
    wrong = connect(first, testbed.host_key(second))
    assert wrong.returncode != 0
    assert "Host key verification failed" in wrong.stderr


def test_hosts_reach_postgres_on_the_bridge(pair: list[TestHost], testbed: Testbed, database_url: str):
    url = urllib.parse.urlsplit(database_url)
    assert (url.scheme, url.hostname, url.username, url.path) == ("postgresql", testbed.bridge_address,
                                                                  "app", "/app")
    for host in pair:
        answer = host.ssh(f"python3 - {url.hostname} {url.port}", input=PG_PROBE).stdout.split()
        assert answer == ["R", "10"], f"{host.name}: {answer} (E = rejected by pg_hba.conf)"
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("app", "app")
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{url.port}"], capture_output=True, text=True,
                               check=True).stdout.split("\n")
    local = sorted(line.split()[3].rsplit(":", 1)[0] for line in listening if line.strip())
    assert local == sorted(["127.0.0.1", testbed.bridge_address])


def test_no_route_beyond_the_bridge(pair: list[TestHost], testbed: Testbed):
    host = pair[0]
    # Routes are only inspected: `ip route get` sends nothing.
    assert host.ssh("ip -4 route show default").stdout.strip() == ""
    assert host.ssh("ip -6 route show default").stdout.strip() == ""
    outside = host.ssh("ip route get 1.1.1.1", check=False)
    assert outside.returncode != 0 and "unreachable" in outside.stderr, outside
    inside = host.ssh(f"ip route get {testbed.bridge_address}").stdout
    assert "dev host0" in inside and " via " not in inside
    assert host.ssh("ip -6 -o addr show scope global").stdout.strip() == ""


def test_apt_install_of_image_packages_is_an_offline_noop(pair: list[TestHost]):
    result = pair[0].ssh("sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y "
                         "--no-install-recommends nginx python3-venv unattended-upgrades", timeout=120)
    assert "0 newly installed" in result.stdout, result.stdout
    started = time.monotonic()
    update = pair[0].ssh("sudo -n apt-get update", check=False, timeout=60)
    assert update.returncode == 0, update  # fetching fails, only a warning: the old lists stay
    assert time.monotonic() - started < 10


def test_hosts_are_stock_debian(pair: list[TestHost]):
    host = pair[0]
    for unit in ("nginx", "haproxy", "ssh"):
        assert host.ssh(f"systemctl is-enabled {unit}; systemctl is-active {unit}").stdout.split() == [
            "enabled", "active"]
    assert host.ssh("test -e /etc/nginx/sites-enabled/default && echo yes").stdout.strip() == "yes"
    assert host.ssh("curl -s -o /dev/null -w '%{http_code}' http://localhost/").stdout == "200"


def test_put_and_get_over_sftp(pair: list[TestHost], tmp_path: Path):
    source = tmp_path / "up.txt"
    source.write_text("payload\n")
    pair[0].put(source, "/home/deploy/up.txt")
    assert pair[0].ssh("cat /home/deploy/up.txt").stdout == "payload\n"
    pair[0].get("/home/deploy/up.txt", tmp_path / "down.txt")
    assert (tmp_path / "down.txt").read_text() == "payload\n"


def test_reboot_is_a_clean_systemd_reboot(host: TestHost, testbed: Testbed):
    key, machine_id, boot_id = testbed.host_key(host), host.ssh("cat /etc/machine-id").stdout, host.boot_id
    host.ssh("echo kept > /home/deploy/marker")
    started = time.monotonic()
    host.reboot()
    print(f"\nreboot to ssh: {time.monotonic() - started:.2f} s")
    assert host.exits == [harness.REBOOT_EXIT]
    assert host.boot_id != boot_id
    assert host.ssh("cat /home/deploy/marker").stdout == "kept\n"
    assert testbed.host_key(host) == key, "host keys must survive a reboot"
    assert host.ssh("cat /etc/machine-id").stdout == machine_id
    assert host.system_state() == "running", host.failed_units()


def test_stop_and_start(host: TestHost):
    host.stop()
    assert not host.running and host.exits == [0], host.exits  # 0: the container powered off cleanly
    assert not harness._ssh_banner(host.address)
    host.start()
    assert host.ssh("hostname").stdout.strip() == host.name


def test_teardown_leaves_nothing_behind(testbed: Testbed):
    # Its own testbed (the session's holds another slot); torn down by an interrupt mid-test.
    tb = Testbed()
    with pytest.raises(KeyboardInterrupt), tb:
        (h,) = tb.boot(1, prefix="td")
        tb.postgres()
        slot, bridge, slotdir, root = tb.slot.number, tb.bridge, tb.dir, h.root
        postmaster = int((tb.pg.data / "postmaster.pid").read_text().split()[0])
        nspawn = h._proc.pid
        assert slot != testbed.slot.number and slots.mounts_under(slotdir)
        raise KeyboardInterrupt
    machine_flag = "--machine=" + slots.MACHINE.format(slot=slot, name="")
    leftovers = [pid for pid, argv in slots.processes() if any(a.startswith(machine_flag) for a in argv)]
    assert leftovers == []
    assert not slots.alive(nspawn) and not slots.alive(postmaster)
    assert slots.mounts_under(slotdir) == []
    assert f" {root} " not in Path("/proc/self/mountinfo").read_text()
    assert not Path("/sys/class/net", bridge).exists()
    assert not slotdir.exists()
    assert not [g for g in cgroups.groups(f"slot{slot}") if g.exists()]
    with (slots.RUN_DIR / f"slot{slot}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the slot is free again
    assert os.path.isdir(testbed.dir), "the session testbed is untouched"
