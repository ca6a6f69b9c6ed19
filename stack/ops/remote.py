"""OpenSSH to the stack's hosts, with the stack's own SSH settings.

The verbs use the `ssh` client of the machine they run on (the deploy uses pulumi-command's):
the stack's user and port, its key (written to a file only this user can read, in a directory
removed afterwards), its bastion through ProxyCommand, and each host's pinned key: the config's
(hosts.hostKeys, ssh.hostKey) or the one recorded at a cloud machine's first contact (the stack's
`hostKeys` output), as the deploy pins them (stack.hostkeys). A host that presents another key
stops the verb with both fingerprints. Only a host with no pinned key (a cloud stack last
deployed before keys were recorded) falls back to the first key seen, kept in
~/.cache/flask-stack/known_hosts (OpenSSH's accept-new).

Scripts run as root like the deploy's steps (`sudo -n bash -c SCRIPT`, the script one argument,
never a secret in it); connections to one host share one master connection while the verb runs.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

from stack import hostkeys, scripts
from stack.inventory import Host
from stack.ops.target import OpsError, Target, cache_dir
from stack.scripts.steps import named as named_host

CONNECT_TIMEOUT = 10
UNREACHABLE = 255  # what ssh exits with when it could not connect (or the connection broke)


class Unreachable(OpsError):
    """A host that SSH could not reach or log in to."""

    def __init__(self, host: Host, detail: str):
        self.host = host
        self.detail = detail
        super().__init__(f"host {named(host)}: cannot be reached over SSH: {detail}")


def named(host: Host) -> str:
    return named_host(host.name, str(host.address or ""))


class Session(AbstractContextManager):
    """The SSH options of one verb's run: `with Session(target) as ssh: ssh.run(host, script)`."""

    def __init__(self, target: Target):
        self.target = target
        self.dir = Path(tempfile.mkdtemp(prefix="flask-stack-ssh-"))
        self.dir.chmod(0o700)
        ssh = target.settings.ssh
        common = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
                  "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR"]
        if target.identity:
            key = self.dir / "key"
            key.touch(0o600)
            key.write_text(target.identity.rstrip("\n") + "\n")
            common += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
        self.known_hosts = cache_dir() / "known_hosts"
        self.options = [*common, "-o", "ControlMaster=auto", "-o", f"ControlPath={self.dir}/c-%C",
                        "-o", "ControlPersist=30", "-p", str(ssh.port), "-l", ssh.user]
        if ssh.bastion:
            # The bastion's own key is kept like an unpinned host's: the first one seen.
            jump = ["ssh", *common, *self._first_seen(), "-p", str(ssh.bastion.port),
                    "-l", ssh.bastion.user, "-W", "%h:%p", ssh.bastion.host]
            self.options += ["-o", "ProxyCommand=" + shlex.join(jump)]

    def pinned(self, host: Host) -> str | None:
        return host.key or hostkeys.configured(self.target.settings, host.address)

    def _host_keys(self, host: Host) -> list[str]:
        key = self.pinned(host)
        if key:
            known = self.dir / f"known_hosts-{host.name}"
            known.write_text(f"{self._known_name(host)} {key}\n")
            return ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
        return self._first_seen()

    def _first_seen(self) -> list[str]:
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=accept-new"]

    def _known_name(self, host: Host) -> str:
        port = self.target.settings.ssh.port
        return str(host.address) if port == 22 else f"[{host.address}]:{port}"

    def __exit__(self, *exc) -> None:
        for control in self.dir.glob("c-*"):
            subprocess.run(["ssh", "-o", f"ControlPath={control}", "-O", "exit", "x"],
                           capture_output=True, timeout=10, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def argv(self, host: Host, command: str, *, tty: bool = False) -> list[str]:
        return ["ssh", *self.options, *self._host_keys(host), *(["-tt"] if tty else ["-T"]),
                str(host.address), command]

    def line(self, script: scripts.Script) -> str:
        return scripts.as_root(self.target.settings, script)

    def run(self, host: Host, script: scripts.Script, *, timeout: float = 120,
            stdin: str = "") -> subprocess.CompletedProcess:
        """Run `script` as root on `host`, its output captured; Unreachable when SSH could not."""
        try:
            done = subprocess.run(self.argv(host, self.line(script)), input=stdin, capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise Unreachable(host, f"no answer within {timeout:.0f} s") from None
        self.check(host, done)
        return done

    def popen(self, host: Host, script: scripts.Script, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.argv(host, self.line(script)), **kwargs)

    def check(self, host: Host, done: subprocess.CompletedProcess | None, stderr: str | None = None) -> None:
        """Raise Unreachable when an ssh run ended because SSH itself failed."""
        code = done.returncode if done is not None else UNREACHABLE
        err = stderr if stderr is not None else (done.stderr if done is not None else "")
        if code != UNREACHABLE:
            return
        raise Unreachable(host, self.explain(host, err or ""))

    def explain(self, host: Host, stderr: str) -> str:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        text = "\n".join(lines)
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key verification failed" in text:
            key = self.pinned(host)
            if key:
                shown = re.findall(r"SHA256:[A-Za-z0-9+/]{43}", text)
                address = str(host.address)
                return (f"it presented the SSH host key {shown[-1] if shown else '(not shown)'}, but "
                        f"the pinned key ({hostkeys.source(self.target.settings, address)}) is "
                        f"{hostkeys.fingerprint(key)}. If the host was rebuilt, "
                        f"{hostkeys.fix(self.target.settings, host.name, address)}; if not, someone "
                        "may be in the middle, so do not go on")
            return ("its host key changed since it was first seen. If the host was rebuilt, forget the "
                    f"old key: ssh-keygen -f {self.known_hosts} -R {self._known_name(host)!r}; if "
                    "not, someone may be in the middle, so do not go on")
        if "Permission denied" in text:
            return (f"the server refused the login of {self.target.settings.ssh.user!r} with this key "
                    "(ssh.user, ssh.privateKey or --identity)")
        return lines[-1] if lines else "ssh exited 255 without a message"
