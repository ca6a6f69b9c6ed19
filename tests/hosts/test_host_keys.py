"""SSH host keys pinned per host, on a real host: a deploy pins every step to the key in
hosts.hostKeys and checks it first; once the host's key is replaced, the next deploy stops at
that check, naming the host and both fingerprints, before anything runs on the host, and the
day-2 verbs refuse it the same way."""

from __future__ import annotations

import subprocess

import pytest

from stack import hostkeys, inventory
from stack.hostkeys import fingerprint
from stack.ops.remote import Session, Unreachable
from stack.ops.target import Target
from stack.scripts import Script
from stack.settings import load
from tests.hosts.deploying import get, host_state, new_stack
from tests.support.mocks import plain, run_program
from tests.support.replay import COMMAND, COPY, LOCAL
from tests.support.stacks import REPO_ROOT as ROOT

pytestmark = pytest.mark.hosts


def replace_host_key(host) -> None:
    """A new ed25519 key for sshd, as a rebuilt (or impersonated) host presents."""
    host.ssh("sudo -n rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub && "
             "sudo -n ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && "
             "sudo -n systemctl restart ssh")
    host.known_hosts.write_text(f"{host.address} {host.host_key}\n")  # the harness's own login


def test_a_deploy_pins_the_key_and_a_replaced_key_fails_the_next_one_with_both_fingerprints(
        testbed, host, tmp_path_factory):
    stack = new_stack(testbed, [host], tmp_path_factory)
    pinned = testbed.host_key(host)
    config = stack.config()
    assert config["hosts"]["hostKeys"] == {host.address: pinned}
    run = run_program(config, stack="hosts", secret_keys=("ssh", "database", "app"))
    steps = [r for r in run.monitor.registered if r.type in (COMMAND, COPY)]
    assert steps and all(plain(r.inputs)["connection"]["hostKey"] == pinned for r in steps)
    check = run.monitor.named("app-web-0-hostkey")
    assert check.type == LOCAL and all(check.urn in r.dependencies for r in steps)

    first = stack.deploy()
    assert first.ran[0] == "app-web-0-hostkey" and first.stdout["app-web-0-hostkey"].strip() == pinned
    assert get(host) == (200, "Hello World!")
    assert stack.deploy().ran == []  # nothing changed: not even the check runs

    stack.extra["hosts"] = {"hostKeys": {host.address: pinned}}  # the config keeps the old key
    replace_host_key(host)
    presented = testbed.host_key(host)
    assert presented != pinned
    before = host_state(host)
    stack.extra["app"] = {"env": {"GREETING": "changed"}}  # something for the deploy to do
    outcome = stack.deploy(expect_failure=True)
    assert outcome.ran == ["app-web-0-hostkey"] and outcome.failed.step == "app-web-0-hostkey"
    message = str(outcome.failed)
    assert f"host key check on host web-0 ({host.address}): presented the SSH host key " \
           f"{fingerprint(presented)} (ssh-ed25519), but the pinned key " \
           f'(hosts.hostKeys["{host.address}"]) is {fingerprint(pinned)}; nothing was done on ' \
           "the host" in message, message
    assert f"pulumi config set --path 'hosts.hostKeys[\"{host.address}\"]'" in message
    assert host_state(host) == before
    assert 'GREETING="hello"' in host.ssh("sudo -n cat /etc/app/app.env").stdout

    # The day-2 verbs pin the same key.
    config = stack.config()
    config["app"] = {**config["app"], "path": stack.app.name}  # as `pulumi config` holds it
    settings = load(config, stack="hosts", project_dir=stack.app.parent,
                    secret_keys=frozenset({"ssh", "database", "app"}))
    target = Target(settings=settings, hosts=tuple(inventory.existing(settings)), release=None,
                    identity=testbed.private_key, secrets_known=True)
    with Session(target) as ssh, pytest.raises(Unreachable) as refused:
        ssh.run(target.hosts[0], Script("probe", "web-0", "true\n"))
    assert f"presented the SSH host key {fingerprint(presented)}" in str(refused.value)
    assert f"is {fingerprint(pinned)}" in str(refused.value)

    # Pinning the new key (after checking it on the host) lets the deploy go on.
    stack.extra["hosts"] = {"hostKeys": {host.address: presented}}
    stack.deploy()
    assert 'GREETING="changed"' in host.ssh("sudo -n cat /etc/app/app.env").stdout



def test_through_a_bastion_a_new_machines_key_is_recorded_and_a_wrong_one_refused(testbed):
    """The host key steps' script as `pulumi up` runs it (a local command), reaching one test
    host through another as ssh.bastion: the first contact prints the key the host presents
    (recorded as its stdout), a check against another key fails naming both fingerprints."""
    bastion, target = testbed.boot(2, prefix="k")
    try:
        raw = {"platform": "existing", "hosts": {"addresses": [target.address]},
               "ssh": {"user": "deploy", "hostKey": testbed.host_key(bastion),
                       "bastion": {"host": bastion.address}}}
        config = load(raw, stack="hosts", project_dir=ROOT, offline=True)

        def run(pinned):
            line = hostkeys.script(config, "web-0", target.address, pinned).text()
            return subprocess.run(["/bin/bash", "-c", line], input=testbed.private_key,
                                  capture_output=True, text=True, timeout=120, check=False)

        recorded = run(None)
        assert recorded.returncode == 0, recorded.stderr
        assert recorded.stdout.strip() == testbed.host_key(target)
        assert run(testbed.host_key(target)).returncode == 0
        wrong = run(testbed.host_key(bastion))
        assert wrong.returncode == 1 and wrong.stdout == ""
        assert f"host web-0 ({target.address}): presented the SSH host key " \
               f"{fingerprint(testbed.host_key(target))} (ssh-ed25519), but the pinned key (ssh.hostKey) " \
               f"is {fingerprint(testbed.host_key(bastion))}" in wrong.stderr, wrong.stderr
    finally:
        testbed.destroy(bastion, target)
