"""sshd after the bootstrap step (templates/ssh/sshd.conf.j2, templates/scripts/sshd.sh.j2), on a
real host: public keys only and only the deploy's user; the SSH session open during the deploy
lives through sshd's reload; a broken drop-in is refused by `sshd -t` and the live one stays.

Before the deploy each refusal is shown to be possible: the deploy user gets a password, which
logs in then, and root's authorized key (the testbed's) logs in then too; so what refuses them
afterwards is sshd's policy, not a missing password or key.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.hosts.deploying import new_stack

pytestmark = pytest.mark.hosts
DROP_IN = "/etc/ssh/sshd_config.d/10-flask-stack.conf"
PASSWORD = "a-Password-that-works-9"


def password_login(host, askpass: Path, user: str = "deploy") -> subprocess.CompletedProcess:
    """ssh offering only a password (from SSH_ASKPASS), no key at all."""
    given = host.ssh_options()
    pairs = [given[i:i + 2] for i in range(2, len(given), 2)]  # after "-F /dev/null": flag, value
    assert given[:2] == ["-F", "/dev/null"] and all(len(p) == 2 for p in pairs), given
    options = [word for flag, value in pairs if flag != "-i" and value not in
               ("BatchMode=yes", "IdentitiesOnly=yes") for word in (flag, value)]
    return subprocess.run(
        ["ssh", *options, "-o", "PreferredAuthentications=password,keyboard-interactive",
         "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1", "-l", user, host.address,
         "whoami"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        env={**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
             "DISPLAY": ":0"}, check=False)


def bootstrap_line(stack) -> str:
    """The bootstrap step's command line as the last deploy ran it (the replayer's state)."""
    (inputs,) = [json.loads(v) for urn, v in stack.replayer.state.items() if urn.endswith("-bootstrap")]
    return inputs["create"]


@pytest.fixture(scope="module")
def deployed(testbed, tmp_path_factory):
    started = time.monotonic()
    (host,) = testbed.boot(1, prefix="ssh")
    askpass = tmp_path_factory.mktemp("askpass") / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{PASSWORD}'\n")
    askpass.chmod(0o700)
    host.ssh(f"echo 'deploy:{PASSWORD}' | sudo -n chpasswd")
    before = {"password": password_login(host, askpass),
              "root": host.ssh("whoami", user="root", check=False)}
    # A session opened before the deploy, still open when sshd reloads.
    held = subprocess.Popen([*host.ssh_argv(), "--", 'read -r line; echo "still here: $line"'],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        time.sleep(1)
        stack = new_stack(testbed, [host], tmp_path_factory)
        outcome = stack.deploy()
        print(f"\nsshd: boot and deploy {time.monotonic() - started:.1f} s "
              f"(bootstrap step {outcome.seconds['app-web-0-bootstrap']:.1f} s)")
        yield {"host": host, "stack": stack, "outcome": outcome, "before": before, "held": held,
               "askpass": askpass}
    finally:
        if held.poll() is None:
            held.kill()
            held.wait(10)
        testbed.destroy(host)


def test_after_bootstrap_only_the_deploy_user_logs_in_and_only_with_its_key(deployed):
    host, before = deployed["host"], deployed["before"]
    assert "sshd: installed " + DROP_IN in deployed["outcome"].stdout["app-web-0-bootstrap"]
    # Both worked before the deploy: the password is right, root's key is authorized.
    assert (before["password"].returncode, before["password"].stdout.strip()) == (0, "deploy"), before
    assert before["root"].stdout.strip() == "root", before["root"].stderr
    refused = password_login(host, deployed["askpass"])
    assert refused.returncode == 255 and refused.stdout == "", refused
    assert "Permission denied (publickey)" in refused.stderr, refused.stderr  # all sshd offers now
    root = host.ssh("whoami", user="root", check=False)
    assert root.returncode == 255 and "Permission denied (publickey)" in root.stderr, root.stderr
    assert host.ssh("whoami").stdout.strip() == "deploy"  # the deploy's key still logs in
    effective = host.ssh("sudo -n sshd -T -C user=deploy,host=x,addr=127.0.0.1").stdout.splitlines()
    for line in ("passwordauthentication no", "kbdinteractiveauthentication no", "permitrootlogin no",
                 "allowusers deploy", "authenticationmethods publickey"):
        assert line in effective, line
    assert next(v for v in effective if v.startswith("kexalgorithms ")).startswith(
        "kexalgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,")
    # sshd reloaded (not restarted), and the session held open across the deploy is still there.
    out, err = deployed["held"].communicate("x\n", timeout=15)
    assert out == "still here: x\n", (out, err)


def test_a_broken_drop_in_is_refused_by_sshd_t_and_the_live_one_stays(deployed):
    host, stack = deployed["host"], deployed["stack"]
    live = host.ssh(f"sha256sum {DROP_IN}").stdout
    line = bootstrap_line(stack)
    assert "\nPermitRootLogin no\n" in line
    broken = host.ssh(line.replace("\nPermitRootLogin no\n", "\nPermitRootLogin sometimes\n"), check=False,
                      timeout=120)
    assert broken.returncode == 1, broken
    assert 'unsupported option "sometimes"' in broken.stderr, broken.stderr  # sshd -t's own words
    assert f"sshd -t rejected the new {DROP_IN}" in broken.stderr, broken.stderr
    assert "the live sshd config is unchanged" in broken.stderr
    assert host.ssh(f"sha256sum {DROP_IN}").stdout == live
    assert host.ssh("ls -a /etc/ssh /etc/ssh/sshd_config.d").stdout.count("flask-stack") == 1  # no stage left
    assert host.ssh("whoami").stdout.strip() == "deploy"
    # The step as deployed, run again: nothing to change, sshd not reloaded.
    pid = host.ssh("systemctl show -p MainPID --value ssh.service").stdout
    again = host.ssh(line, timeout=120)
    assert "sshd: installed" not in again.stdout, again.stdout
    assert host.ssh("systemctl show -p MainPID --value ssh.service").stdout == pid
    assert host.ssh(f"sha256sum {DROP_IN}").stdout == live
