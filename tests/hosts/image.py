"""The test hosts' Debian 12 image: built once with debootstrap, cached as a tarball.

The cache key is a hash of everything that decides the image's content: the package list, the
recipe version, the customisation below and the APT sources. A missing tarball is rebuilt
(~70 s on this machine, most of it debootstrap); a present one is unpacked once into a read-only
root directory next to it, which every host's overlay uses as its lower layer.

What the image is (and why):
- `debootstrap --variant=minbase` bookworm with PACKAGES, then upgraded from the outer machine's
  own APT sources (bookworm, -updates, -security), so the versions match a Debian host kept up to
  date. `/var/lib/apt/lists` is kept, so `apt-get install <something already there>` is an offline
  no-op on the hosts, as it is on a cloud image. `apt-get update` on a host fails to fetch (no
  network) but exits 0 with warnings, keeping the old lists (no retries: well under a second).
- Stock services as `apt-get install` leaves them: nginx enabled with the Debian default site,
  haproxy enabled with the Debian default configuration. The deploy's bootstrap must cope.
- No /etc/hostname (it would override the machine name nspawn sets), an empty /etc/machine-id
  (the harness writes one per host), no SSH host keys (ssh-host-keys.service runs `ssh-keygen -A`
  before sshd on first boot, so clones differ), systemd-networkd enabled (the harness writes a
  static .network file per host; link-local addressing and RA are off, otherwise wait-online holds
  the boot), no DNS server, a `deploy` user with passwordless sudo (keys are added per session).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.hosts import cgroups

RECIPE_VERSION = 2
SUITE = "bookworm"
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "libnss-myhostname", "openssh-server",
    "python3", "python3-venv", "nginx", "haproxy", "sudo", "iproute2", "curl", "ca-certificates",
    "unattended-upgrades", "certbot", "acl", "procps", "less", "postgresql-client",
)
# debootstrap resolves no virtual packages: python3-cryptography (pulled in by certbot) depends on
# python3-cffi-backend-api-min/-max, provided only by python3-cffi-backend. Without it the base
# system fails to configure ("dependency problems prevent configuration of python3-cryptography").
DEBOOTSTRAP_EXTRA = ("python3-cffi-backend",)
DEPLOY_USER = "deploy"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
OUTER_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
KEEP_TARBALLS = 3

# Runs inside the new root (systemd-nspawn, no boot, the outer machine's network).
CUSTOMIZE_INSIDE = """\
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade
apt-get clean
systemctl enable ssh-host-keys.service systemd-networkd.service
id {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}
"""

SSH_HOST_KEYS_UNIT = """\
[Unit]
Description=Generate missing SSH host keys (clones of the test image must not share them)
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
"""

ETC_HOSTS = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
RESOLV_CONF = "# Test hosts have no DNS server and no route beyond their bridge.\n"
# Stock apt retries each unreachable source 3 times with back-off (~8 s per `apt-get update` on a
# host without network); a failed fetch is still only a warning and exit status 0.
APT_OFFLINE = '// flask-stack testbed: hosts have no network, fail fast\nAcquire::Retries "0";\n'
POLICY_RC_D = "#!/bin/sh\n# No service starts while the image is built.\nexit 101\n"


def cache_dir() -> Path:
    if custom := os.environ.get("FLASK_STACK_CACHE"):
        return Path(custom)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flask-stack"


@dataclass(frozen=True)
class Image:
    key: str
    tarball: Path
    rootfs: Path  # read-only lower layer of every host's overlay
    deploy_uid: int
    deploy_gid: int
    built_seconds: float | None  # debootstrap + customisation time when built now, else None
    ready_seconds: float  # how long ensure_image took
    recorded_build_seconds: float | None  # how long the build of this image took, whenever it was


def outer_sources() -> str | None:
    return OUTER_SOURCES.read_text() if OUTER_SOURCES.is_file() else None


def mirror(sources: str | None) -> str:
    """The first Debian mirror of the outer machine's sources that carries the suite."""
    for stanza in re.split(r"\n\s*\n", sources or ""):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
            return fields.get("URIs", DEFAULT_MIRROR).split()[0]
    return DEFAULT_MIRROR


def image_key(packages: tuple[str, ...] = PACKAGES) -> str:
    sources = outer_sources()
    material = {
        "recipe": RECIPE_VERSION, "suite": SUITE, "packages": sorted(packages),
        "extra": DEBOOTSTRAP_EXTRA, "mirror": mirror(sources), "sources": sources,
        "inside": CUSTOMIZE_INSIDE, "unit": SSH_HOST_KEYS_UNIT, "hosts": ETC_HOSTS,
        "resolv": RESOLV_CONF, "user": DEPLOY_USER, "apt": APT_OFFLINE,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def ensure_image(packages: tuple[str, ...] = PACKAGES, *, log: Callable[[str], None] = print) -> Image:
    """The image for `packages`, built or unpacked if needed (serialised by a lock file)."""
    started = time.monotonic()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = image_key(packages)
    tarball = cache / f"debian-{SUITE}-{key}.tar.zst"
    rootfs = cache / f"rootfs-{key}"
    stamp = cache / f"rootfs-{key}.ok"
    meta = cache / f"debian-{SUITE}-{key}.json"
    built = None
    with _locked(cache / "image.lock"):
        if not (stamp.is_file() and rootfs.is_dir()):
            shutil.rmtree(rootfs, ignore_errors=True)
            if tarball.is_file():
                log(f"testbed: unpacking {tarball.name}")
                _unpack(tarball, rootfs)
            else:
                log(f"testbed: building the host image {key} (debootstrap, about a minute)")
                t0 = time.monotonic()
                _build(rootfs, packages, cache)
                built = time.monotonic() - t0
                log(f"testbed: image built in {built:.1f} s; saving {tarball.name}")
                _pack(rootfs, tarball)
                meta.write_text(json.dumps({"key": key, "built_seconds": round(built, 1),
                                            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                            "packages": list(packages)}, indent=1) + "\n")
            stamp.write_text(key + "\n")
            _prune(cache, key)
    uid, gid = _user_ids(rootfs, DEPLOY_USER)
    try:
        recorded = json.loads(meta.read_text())["built_seconds"]
    except (OSError, ValueError, KeyError):
        recorded = None
    return Image(key, tarball, rootfs, uid, gid, built, time.monotonic() - started, recorded)


@contextlib.contextmanager
def _locked(path: Path):
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({result.returncode}):\n"
                           f"{(result.stdout + result.stderr)[-4000:]}")
    return result


def _build(rootfs: Path, packages: tuple[str, ...], cache: Path) -> None:
    for tool in ("debootstrap", "systemd-nspawn", "zstd"):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            raise RuntimeError(f"{tool} is missing: apt-get install -y --no-install-recommends "
                               "debootstrap systemd-container zstd")
    work = rootfs.with_name(rootfs.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    sources = outer_sources()
    try:
        _run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}",
              "--include=" + ",".join((*packages, *DEBOOTSTRAP_EXTRA)),
              SUITE, str(work), mirror(sources)], timeout=1200)
        _customize(work, sources)
        work.rename(rootfs)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _customize(root: Path, sources: str | None) -> None:
    etc = root / "etc"
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    if sources is not None:  # the outer machine's sources (with -updates and -security)
        (etc / "apt/sources.list.d/debian.sources").write_text(sources)
        (etc / "apt/sources.list").unlink(missing_ok=True)
    (etc / "systemd/system/ssh-host-keys.service").write_text(SSH_HOST_KEYS_UNIT)
    script = root / "root/.testbed-customize.sh"  # not /tmp: nspawn mounts a tmpfs there
    script.write_text(CUSTOMIZE_INSIDE.format(user=DEPLOY_USER))
    own = cgroups.groups("image-build")
    try:
        nspawn = ["systemd-nspawn", "--quiet", f"--directory={root}", "--register=no", "--keep-unit",
                  "--console=pipe", "--resolv-conf=copy-host", "--link-journal=no",
                  "--machine=testbed-image-build", "--", "/bin/sh", "/root/.testbed-customize.sh"]
        _run(cgroups.launch_argv(nspawn, own), stdin=subprocess.DEVNULL, timeout=900)
    finally:
        script.unlink(missing_ok=True)
        policy.unlink(missing_ok=True)
        for group in own:
            cgroups.remove(group)
        cgroups.remove_top()
    for name in ("hostname",):
        (etc / name).unlink(missing_ok=True)
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    (etc / "machine-id").write_text("")  # "uninitialized": the harness writes one per host
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (etc / "hosts").write_text(ETC_HOSTS)
    (etc / "resolv.conf").unlink(missing_ok=True)
    (etc / "resolv.conf").write_text(RESOLV_CONF)
    (etc / "apt/apt.conf.d/99testbed-offline").write_text(APT_OFFLINE)
    sudoers = etc / f"sudoers.d/{DEPLOY_USER}"
    sudoers.write_text(f"{DEPLOY_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)


def _pack(rootfs: Path, tarball: Path) -> None:
    partial = tarball.with_name(tarball.name + ".partial")
    _run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-I", "zstd -T0 -3",
          "-C", str(rootfs), "-cf", str(partial), "."], timeout=600)
    partial.rename(tarball)


def _unpack(tarball: Path, rootfs: Path) -> None:
    partial = rootfs.with_name(rootfs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        _run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-I", "zstd",
              "-C", str(partial), "-xpf", str(tarball)], timeout=600)
        partial.rename(rootfs)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _prune(cache: Path, key: str) -> None:
    """Drop unpacked roots of other keys no overlay uses, and all but the newest tarballs."""
    mounted = Path("/proc/self/mountinfo").read_text()
    for old in cache.glob("rootfs-*"):
        if old.is_dir() and not old.name.startswith(f"rootfs-{key}") and str(old) not in mounted:
            old.with_name(old.name + ".ok").unlink(missing_ok=True)
            shutil.rmtree(old, ignore_errors=True)
    tarballs = sorted(cache.glob(f"debian-{SUITE}-*.tar.zst"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in tarballs[KEEP_TARBALLS:]:
        if key not in old.name:
            old.unlink(missing_ok=True)
            old.with_name(old.name.removesuffix(".tar.zst") + ".json").unlink(missing_ok=True)


def _user_ids(rootfs: Path, user: str) -> tuple[int, int]:
    for line in (rootfs / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise RuntimeError(f"the image has no user {user!r}")
