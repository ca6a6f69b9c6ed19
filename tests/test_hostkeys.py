"""SSH host keys under Pulumi's mocks (stack/hostkeys.py): every remote step of a host is pinned
to its key (the config's on platform existing, the one recorded at a cloud machine's first
contact), waits for the host's key check, and the check runs exactly when one of its steps would.
On real hosts: tests/hosts/test_host_keys.py."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from stack import hostkeys
from tests.support.cloud import TEST_PRIVATE_KEY, with_changes
from tests.support.mocks import Registered, Run, Secret, mock_host_key, plain, run_program
from tests.support.replay import COMMAND, COPY, LOCAL, comparable
from tests.test_aws import VARIANTS as AWS_VARIANTS
from tests.test_aws import program as aws_program
from tests.test_digitalocean import run as do_run
from tests.test_ops import HOST_KEY
from tests.test_ops import existing as existing_config

MACHINES = ("aws:ec2/instance:Instance", "digitalocean:index/droplet:Droplet")
WITH_BASTION = ("aws-bastion-ip", "do-complete")


def cloud_runs() -> dict[str, Run]:
    runs = {f"aws-{name}": aws_program(*AWS_VARIANTS[name][:2]).run
            for name in ("minimal", "single-host", "bastion-ip")}
    runs |= {f"do-{name}": do_run(f"digitalocean-{name}") for name in ("minimal", "complete")}
    return runs


@pytest.fixture(scope="module")
def clouds() -> dict[str, Run]:
    return cloud_runs()


def hosts_of(run: Run) -> list[str]:
    """The AppHosts' names ("app-web-0", ...), in rollout order."""
    return [r.name for r in run.monitor.registered if r.type == "flask-stack:hosts:AppHost"]


def steps_of(run: Run, host: str) -> list[Registered]:
    return [r for r in run.monitor.registered if r.type in (COMMAND, COPY) and r.name.startswith(f"{host}-")]


def check_of(run: Run, host: str) -> Registered:
    check = run.monitor.named(f"{host}-hostkey")
    assert check.type == LOCAL, check.urn
    return check


@pytest.mark.parametrize("name", ["aws-minimal", "aws-single-host", "aws-bastion-ip", "do-minimal",
                                  "do-complete"])
def test_every_remote_step_on_a_cloud_host_is_pinned_to_the_key_recorded_at_its_first_contact(
        clouds, name):
    run = clouds[name]
    # A machine's id as the mocks hand it out: "<name>-id", or "<type>::<name>" (AwsMocks).
    machines = {i for r in run.monitor.registered if r.type in MACHINES
                for i in (f"{r.name}-id", f"{r.type}::{r.name}")}
    keys = []
    for host in hosts_of(run):
        record = run.monitor.named(f"{host}-hostkey-record")
        assert record.type == LOCAL and record.parent.endswith(host), record.urn
        recorded = mock_host_key(record.name)  # what the mocks' local command prints
        keys.append(recorded)
        triggers = plain(record.inputs["triggers"])
        assert triggers[0] in machines, f"{record.urn}: not triggered by its machine's id: {triggers}"
        # A new machine replaces the record; any other change only prints the key kept before.
        assert "triggers" in record.replace_on_changes, record.urn
        assert plain(record.inputs["update"]) == hostkeys.KEEP_RECORD, record.urn
        check = check_of(run, host)
        assert f'if [ "$got" != {shlex.quote(recorded)} ]; then' in plain(check.inputs["create"])
        assert plain(check.inputs["update"]) == plain(check.inputs["create"])
        steps = steps_of(run, host)
        assert len(steps) >= 6
        for step in steps:
            assert plain(step.inputs["connection"])["hostKey"] == recorded, step.urn
            assert check.urn in step.dependencies, f"{step.urn} does not wait for the key check"
        bastion = name in WITH_BASTION
        for local in (record, check):
            stdin = local.inputs.get("stdin")
            if bastion:  # the login key for the jump, as a secret, on stdin
                assert isinstance(stdin, Secret) and stdin.value == TEST_PRIVATE_KEY, local.urn
                assert "ProxyCommand" in plain(local.inputs["create"])
            else:
                assert not stdin, local.urn
    assert run.resolved["hostKeys"] == keys
    assert len(set(keys)) == len(keys)


def test_on_existing_servers_each_is_pinned_to_its_own_configured_key_and_nothing_is_recorded():
    config = existing_config()
    run = run_program(config, stack="ops", secret_keys=("ssh", "database", "app"))
    assert not [r for r in run.monitor.registered if r.name.endswith("-hostkey-record")]
    keys = [mock_host_key(a) for a in config["hosts"]["addresses"]]
    for host, key in zip(hosts_of(run), keys, strict=True):
        check = check_of(run, host)
        assert f'if [ "$got" != {shlex.quote(key)} ]; then' in plain(check.inputs["create"])
        for step in steps_of(run, host):
            assert plain(step.inputs["connection"])["hostKey"] == key, step.urn
            assert check.urn in step.dependencies, step.urn
    assert run.resolved["hostKeys"] == keys


def test_one_ssh_host_key_pins_every_host_and_a_cloud_then_records_nothing():
    config, keys = AWS_VARIANTS["minimal"][:2]
    run = aws_program(with_changes(config, ssh={**config["ssh"], "hostKey": HOST_KEY}), keys).run
    assert not [r for r in run.monitor.registered if r.name.endswith("-hostkey-record")]
    for host in hosts_of(run):
        assert {plain(s.inputs["connection"])["hostKey"] for s in steps_of(run, host)} == {HOST_KEY}


def test_the_check_runs_exactly_when_one_of_its_hosts_steps_would():
    def run(**changes) -> Run:
        config = existing_config(**changes)
        return run_program(config, stack="ops", secret_keys=("ssh", "database", "app"))

    def inputs(run: Run, host: str) -> tuple[str, list[str]]:
        return (comparable(check_of(run, host).inputs),
                [comparable(s.inputs) for s in steps_of(run, host)])

    base = run()
    again = run()
    for host in hosts_of(base):
        assert inputs(again, host) == inputs(base, host)  # nothing changed: neither runs
    changed = run(app={"env": {"GREETING": "changed"}})
    for host in hosts_of(base):
        check, steps = inputs(changed, host)
        assert steps != inputs(base, host)[1] and check != inputs(base, host)[0]


def test_the_records_update_prints_the_key_kept_before_and_refuses_when_there_is_none():
    def update(previous: str | None) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin", **({"PULUMI_COMMAND_STDOUT": previous} if previous else {})}
        return subprocess.run(["/bin/bash", "-c", hostkeys.KEEP_RECORD], env=env, capture_output=True,
                              text=True, check=False)

    assert update(HOST_KEY).stdout == HOST_KEY + "\n"
    for nothing in (None, "", "garbage"):
        done = update(nothing)
        assert done.returncode == 1 and done.stdout == "" and "no key was recorded" in done.stderr


def test_fingerprint_is_what_ssh_keygen_prints(tmp_path):
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    printed = subprocess.run(["ssh-keygen", "-lf", str(key) + ".pub"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert hostkeys.fingerprint((tmp_path / "k.pub").read_text()) == printed
    assert hostkeys.fingerprint("ssh-ed25519 !!!") == "(not a public key)"
    assert hostkeys.algorithms("ssh-rsa") == "rsa-sha2-512,rsa-sha2-256"


def test_a_deploy_to_servers_without_pinned_keys_stops_before_anything_is_declared():
    config = existing_config()
    config["hosts"] = {k: v for k, v in config["hosts"].items() if k != "hostKeys"}
    with pytest.raises(Exception, match=r"hosts\.hostKeys: has no SSH host key for 203\.0\.113\.10, "
                                        r"203\.0\.113\.11") as caught:
        run_program(config, stack="ops", secret_keys=("ssh", "database", "app"), pin_hosts=False)
    assert "ssh-keyscan -t ed25519 203.0.113.11" in str(caught.value)
