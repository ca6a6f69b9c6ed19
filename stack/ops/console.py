"""`run`: one command in the app's environment on one host, the way the app itself runs (its
user, the current release and venv, its env and secrets files, its sandbox), through
`systemd-run --wait`. With a terminal on stdin it gets one (`flask shell`); the command's exit
code is the verb's. Secrets stay in the files systemd reads: no command line carries one."""

from __future__ import annotations

import subprocess
import sys

from stack.inventory import Host
from stack.ops.remote import UNREACHABLE, Session, Unreachable
from stack.ops.target import OpsError, Target
from stack.paths import Paths
from stack.scripts.shell import cmd, render
from stack.scripts.steps import Script, context, sandbox


def script(target: Target, host: Host, command: list[str], *, tty: bool) -> Script:
    s = target.settings
    p = Paths(s.app.name)
    setenv = []
    if not any(name == "FLASK_APP" for name, _ in s.app.env):
        setenv.append(f"--setenv=FLASK_APP={s.app.entry}")  # so `flask shell` finds the app
    argv = ["systemd-run", "--quiet", "--wait", "--collect", "--pty" if tty else "--pipe",
            "--service-type=exec", f"--uid={p.app}", f"--gid={p.app}",
            f"--working-directory={p.current}",
            f"--property=EnvironmentFile=-{p.env_file}", f"--property=EnvironmentFile=-{p.secret_env_file}",
            f"--property=StateDirectory={p.app}", "--property=UMask=0027", *sandbox(),
            f"--setenv=PATH={p.current}/venv/bin:/usr/local/bin:/usr/bin:/bin",
            f"--setenv=HOME={p.state}", *setenv, "--", "/usr/bin/env", *command]
    body = render("ops/run.sh.j2", **context(s, host.name, str(host.address)), systemd_run=cmd(*argv))
    return Script("run", host.name, body, str(host.address))


def run(target: Target, host: Host, command: list[str], *, tty: bool | None = None) -> int:
    if not command:
        raise OpsError("run: give the command after the stack, e.g. python -m stack run prod -- flask shell")
    tty = sys.stdin.isatty() and sys.stdout.isatty() if tty is None else tty
    with Session(target) as ssh:
        argv = ssh.argv(host, ssh.line(script(target, host, command, tty=tty)), tty=tty)
        # stdin, stdout and stderr are the command's own, streamed as it runs.
        done = subprocess.run(argv, check=False)
        if done.returncode == UNREACHABLE:
            raise Unreachable(host, "ssh exited 255 (its message is above); if the command itself "
                                    "exits 255, that is what it did")
        return done.returncode
