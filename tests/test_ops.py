"""The day-2 verbs without test hosts: finding a stack's hosts and key (with a stand-in for the
Pulumi CLI, and without one), the SSH options, a host that cannot be reached (real ssh to a
closed loopback port), parsing what the hosts report, the verbs' scripts under shellcheck.
On real hosts: tests/hosts/test_operations.py."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stack.hostkeys import fingerprint
from stack.inventory import Host
from stack.ops import console, drift, logs, rollback, status
from stack.ops.remote import Session
from stack.ops.target import OpsError, Target, config_from_cli, resolve
from stack.settings import load
from tests.support import stacks
from tests.support.fake_pulumi import FakePulumi
from tests.support.mocks import mock_host_key, with_host_keys
from tests.test_scripts import shellcheck_path

ROOT = Path(__file__).resolve().parents[1]
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkqXN6mLzuD2Pg0Nb1R9UTpQe0cjAIdKdYqPRWs8Ilh"


def existing(**extra) -> dict:
    config = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10", "203.0.113.11"]},
              "ssh": {"user": "deploy", "privateKey": KEY},
              "database": {"url": "postgresql://app:pw@db.example.com/app"},
              "app": {"secretEnv": {"SECRET_KEY": "k"}},
              "processes": {"worker": {"command": "python -m worker", "count": 2}},
              "schedules": {"digest": {"command": "flask digest", "onCalendar": "daily"}}}
    for key, value in extra.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return with_host_keys(config)


def target_of(config: dict, **kwargs) -> Target:
    s = load(config, stack="ops", project_dir=ROOT, secret_keys=frozenset({"ssh", "database", "app"}))
    hosts = tuple(Host(f"web-{i}", a) for i, a in enumerate(s.hosts.addresses))
    return Target(settings=s, hosts=hosts, release=kwargs.get("release"), identity=kwargs.get("identity"),
                  secrets_known=True, database_url="postgresql://app:pw@db.example.com/app")


# -- finding the stack ----------------------------------------------------------------------
def test_config_from_the_cli_keeps_objects_and_marks_secrets():
    raw, secret = config_from_cli({
        "flask-stack:ssh": {"value": '{"privateKey":"x"}', "objectValue": {"privateKey": "x"},
                            "secret": True},
        "flask-stack:front": {"value": "haproxy", "secret": False},
        "flask-stack:hosts": {"value": '{"addresses":["203.0.113.9"]}', "secret": False},
        "aws:region": {"value": "us-east-1"}})
    assert raw == {"ssh": {"privateKey": "x"}, "front": "haproxy", "hosts": {"addresses": ["203.0.113.9"]}}
    assert secret == {"ssh"}


def test_resolve_through_the_cli_reads_the_decrypted_config_and_the_outputs(tmp_path, monkeypatch):
    fake = FakePulumi(tmp_path, "ops")
    fake.set_config(existing(), ("ssh", "database", "app"))
    fake.set_outputs({"hosts": ["203.0.113.10", "203.0.113.11"], "release": "ab" * 10})
    monkeypatch.setenv("PATH", f"{fake.bin}:{os.environ['PATH']}")
    target = resolve("ops", ROOT)
    assert [(h.name, h.address) for h in target.hosts] == [("web-0", "203.0.113.10"),
                                                           ("web-1", "203.0.113.11")]
    assert target.release == "ab" * 10 and target.identity == KEY and target.secrets_known
    assert target.database_url == "postgresql://app:pw@db.example.com/app"
    with pytest.raises(OpsError, match="no stack named 'other'"):
        resolve("other", ROOT)
    assert target.host("203.0.113.11").name == "web-1"
    with pytest.raises(OpsError, match="has no host 'web-7'; its hosts: web-0 \\(203.0.113.10\\)"):
        target.host("web-7")


def test_a_cloud_stack_takes_its_hosts_from_the_outputs(tmp_path, monkeypatch):
    config = {"platform": "digitalocean", "region": "fra1",
              "ssh": {"privateKey": KEY, "publicKey": HOST_KEY, "adminCidrs": ["203.0.113.7/32"]},
              "hosts": {"count": 2}}
    fake = FakePulumi(tmp_path, "ops")
    fake.set_config(config, ("ssh",))
    monkeypatch.setenv("PATH", f"{fake.bin}:{os.environ['PATH']}")
    with pytest.raises(OpsError, match="no hosts in its outputs yet: run pulumi up first"):
        resolve("ops", ROOT)
    fake.set_outputs({"hosts": ["198.51.100.1", "198.51.100.2"], "release": "cd" * 10,
                      "databaseUrl": "postgresql://u:p@private/db"})
    target = resolve("ops", ROOT)
    assert [h.address for h in target.hosts] == ["198.51.100.1", "198.51.100.2"]
    assert target.database_url == "postgresql://u:p@private/db"


def test_without_the_cli_a_cloud_stack_says_what_to_install_and_heroku_points_at_its_cli(tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    (tmp_path / "app").symlink_to(ROOT / "app")
    (tmp_path / "Pulumi.c.yaml").write_text(
        "config:\n  flask-stack:platform: aws\n  flask-stack:region: eu-west-1\n")
    with pytest.raises(OpsError, match="install the Pulumi CLI and log in"):
        resolve("c", tmp_path)
    (tmp_path / "Pulumi.h.yaml").write_text("config:\n  flask-stack:platform: heroku\n")
    with pytest.raises(OpsError, match="runs on Heroku, which has no hosts.*heroku logs --tail"):
        resolve("h", tmp_path)


def test_without_the_cli_existing_servers_come_from_the_stack_file_and_the_key_from_identity(tmp_path,
                                                                                            monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    (tmp_path / "app").symlink_to(ROOT / "app")
    (tmp_path / "Pulumi.e.yaml").write_text(
        "config:\n  flask-stack:platform: existing\n  flask-stack:hosts:\n"
        "    addresses: [203.0.113.20]\n  flask-stack:ssh:\n    user: deploy\n"
        "    privateKey:\n      secure: AAABAxyz\n")
    key = tmp_path / "id"
    key.write_text(KEY)
    target = resolve("e", tmp_path, key)
    assert target.identity == KEY and not target.secrets_known and target.release is None
    assert [h.address for h in target.hosts] == ["203.0.113.20"]
    assert resolve("e", tmp_path).identity is None  # the agent's, or ~/.ssh's
    with pytest.raises(OpsError, match="--identity .*missing"):
        resolve("e", tmp_path, tmp_path / "missing")


# -- ssh ------------------------------------------------------------------------------------
def test_session_pins_a_host_key_and_keeps_the_private_key_in_a_private_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = target_of(existing(ssh={"hostKey": HOST_KEY, "port": 2222}), identity=KEY)
    with Session(target) as ssh:
        argv = ssh.argv(target.hosts[0], "true")
        key = Path(argv[argv.index("-i") + 1])
        assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_text() == KEY
        assert "StrictHostKeyChecking=yes" in argv and argv[argv.index("-p"):][:2] == ["-p", "2222"]
        known = Path(next(o for o in argv if o.startswith("UserKnownHostsFile=")).split("=", 1)[1])
        assert known.read_text() == f"[203.0.113.10]:2222 {HOST_KEY}\n"
        assert argv[-2:] == ["203.0.113.10", "true"]
    assert not key.exists()


def test_session_pins_each_host_to_its_own_key_and_names_both_fingerprints_when_one_changed(
        tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = target_of(existing(), identity=KEY)
    first, second = target.hosts
    with Session(target) as ssh:
        for host in target.hosts:
            argv = ssh.argv(host, "true")
            assert "StrictHostKeyChecking=yes" in argv
            known = Path(next(o for o in argv if o.startswith("UserKnownHostsFile=")).split("=", 1)[1])
            assert known.read_text() == f"{host.address} {mock_host_key(host.address)}\n"
        presented = "SHA256:" + "A" * 43
        stderr = ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nThe fingerprint for the "
                  f"ED25519 key sent by the remote host is\n{presented}.\nHost key verification failed.\n")
        why = ssh.explain(second, stderr)
    assert f"presented the SSH host key {presented}" in why
    expected = fingerprint(mock_host_key("203.0.113.11"))
    assert f'pinned key (hosts.hostKeys["203.0.113.11"]) is {expected}' in why
    assert "pulumi config set --path 'hosts.hostKeys[\"203.0.113.11\"]'" in why


def test_a_cloud_hosts_recorded_key_comes_from_the_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    config = {"platform": "digitalocean", "region": "fra1",
              "ssh": {"privateKey": KEY, "publicKey": HOST_KEY, "adminCidrs": ["203.0.113.7/32"]},
              "hosts": {"count": 2}}
    fake = FakePulumi(tmp_path, "ops")
    fake.set_config(config, ("ssh",))
    fake.set_outputs({"hosts": ["198.51.100.1", "198.51.100.2"],
                      "hostKeys": [mock_host_key("a"), mock_host_key("b")]})
    monkeypatch.setenv("PATH", f"{fake.bin}:{os.environ['PATH']}")
    target = resolve("ops", ROOT)
    assert [h.key for h in target.hosts] == [mock_host_key("a"), mock_host_key("b")]
    with Session(target) as ssh:
        argv = ssh.argv(target.hosts[1], "true")
        known = Path(next(o for o in argv if o.startswith("UserKnownHostsFile=")).split("=", 1)[1])
        assert known.read_text() == f"198.51.100.2 {mock_host_key('b')}\n"
        assert "recorded at the machine's first contact" in ssh.explain(
            target.hosts[1], "Host key verification failed.")


def test_session_without_a_host_key_keeps_the_first_one_seen_and_reaches_through_a_bastion(tmp_path,
                                                                                          monkeypatch):
    """A cloud stack last deployed before keys were recorded has none in its outputs."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cloud = load({"platform": "digitalocean", "region": "fra1", "hosts": {"count": 1},
                  "ssh": {"privateKey": KEY, "publicKey": HOST_KEY, "bastion": {"host": "198.51.100.5",
                                                                                "user": "jump"}}},
                 stack="ops", project_dir=ROOT, secret_keys=frozenset({"ssh"}))
    target = Target(settings=cloud, hosts=(Host("web-0", "10.0.0.5"),), release=None, identity=KEY,
                    secrets_known=True)
    with Session(target) as ssh:
        argv = ssh.argv(target.hosts[0], "true")
    assert "StrictHostKeyChecking=accept-new" in argv
    assert f"UserKnownHostsFile={tmp_path}/flask-stack/known_hosts" in argv
    proxy = next(o for o in argv if o.startswith("ProxyCommand="))
    assert proxy.endswith("-p 22 -l jump -W %h:%p 198.51.100.5") and " -i " in proxy


def test_an_unreachable_host_is_named_with_its_address_not_a_traceback(tmp_path, monkeypatch):
    fake = FakePulumi(tmp_path, "ops")
    fake.set_config(existing(hosts={"addresses": ["nowhere.invalid"]}), ("ssh", "database", "app"))
    env = {**os.environ, "PATH": f"{fake.bin}:{os.environ['PATH']}", "XDG_CACHE_HOME": str(tmp_path)}

    def verb(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "stack", *args[:1], "--dir", str(ROOT), "ops",
                               *args[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    done = verb("status")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "web-0 (nowhere.invalid): UNREACHABLE: " in done.stdout
    assert "Could not resolve hostname" in done.stdout
    assert json.loads(verb("status", "--json").stdout)["hosts"][0]["reachable"] is False
    done = verb("logs")
    assert done.returncode == 1 and "host web-0 (nowhere.invalid): cannot be reached over SSH" in done.stderr
    done = verb("run", "--", "true")
    assert done.returncode == 2, done.stderr
    assert "host web-0 (nowhere.invalid): cannot be reached" in done.stderr
    done = verb("rollback")
    assert done.returncode == 2 and "cannot be reached" in done.stderr
    assert "nothing was rolled back" in done.stderr
    done = verb("drift")
    assert done.returncode == 1 and "web-0 (nowhere.invalid): UNREACHABLE" in done.stdout
    assert "Traceback" not in done.stderr


# -- what hosts report ----------------------------------------------------------------------
STATUS = "\n".join([
    "current\tbbbbbbbbbbbbbbbbbbbb", "deployed\tcccccccccccccccccccc",
    "kept\taaaaaaaaaaaaaaaaaaaa\t100", "kept\tcccccccccccccccccccc\t300", "kept\tbbbbbbbbbbbbbbbbbbbb\t200",
    "disk\t52000000\t9000000000", "health\t200\t0.004",
    "unit\tapp.socket\tactive\tlistening\t1000\tenabled", "unit\tapp.service\tactive\trunning\t1000\tenabled",
    "unit\tapp-worker@1.service\tfailed\tfailed\t1200\tenabled",
    "unit\tnginx.service\tactive\trunning\t\tenabled"])


def test_status_parses_judges_and_reports_a_rolled_back_host_with_a_failed_process():
    target = target_of(existing(), release="c" * 20)
    st = status.parse(target.hosts[0], STATUS)
    assert [r for r, _ in st.kept] == ["c" * 20, "b" * 20, "a" * 20]
    status.judge(target, st)
    assert st.problems == [f"rolled back: serves {'b' * 20}, the stack's release is {'c' * 20}",
                           "app-worker@1.service is failed (failed)"]
    text = status.report(target, [st], now=1300)
    assert "web-0 (203.0.113.10): PROBLEM" in text and "/healthz -> 200 in 4 ms" in text
    assert "app-worker@1.service" in text and "1 min ago" in text and "releases 52.0 MB, 9.0 GB free" in text
    assert status.exit_code([st]) == 1


def test_status_lists_every_unit_of_a_host():
    s = target_of(existing(tls={"enabled": True, "email": "ops@example.com"},
                           domain={"name": "example.com"},
                           hosts={"addresses": ["203.0.113.10"]})).settings
    assert status.units_of(s, "web-0") == ["app.socket", "app.service", "app-worker@1.service",
                                           "app-worker@2.service", "app-digest.timer", "nginx.service",
                                           "certbot.timer"]


def test_rollback_chooses_the_release_before_the_current_one_that_every_host_keeps():
    target = target_of(existing())
    one = status.parse(target.hosts[0], STATUS)
    two = status.parse(target.hosts[1], STATUS.replace("kept\taaaaaaaaaaaaaaaaaaaa\t100\n", ""))
    assert rollback.choose([one], None) == "a" * 20
    with pytest.raises(OpsError, match=f"web-1 .* does not keep release {'a' * 20}"):
        rollback.choose([one, two], None)
    assert rollback.choose([one, two], "c" * 20) == "c" * 20
    with pytest.raises(OpsError, match="is not a release id"):
        rollback.choose([one], "../../etc")
    off = status.HostStatus("web-1", "203.0.113.11", reachable=False, error="timeout")
    with pytest.raises(OpsError, match="nothing was rolled back"):
        rollback.choose([one, off], None)


def test_logs_parse_journal_entries_and_the_fronts_files_in_time_order():
    parser = logs.Parser("web-1")
    assert parser.feed("Z\t+0100") is None
    entry = {"__REALTIME_TIMESTAMP": "1764740000123456", "SYSLOG_IDENTIFIER": "app", "_PID": "42",
             "MESSAGE": [104, 105, 255], "__CURSOR": "s=1"}
    line = parser.feed("J\t" + json.dumps(entry))
    assert line.show() == "2025-12-03T05:33:20.123Z web-1 app[42]: hi\ufffd" and parser.cursor == "s=1"
    error = parser.feed("nginx-error\t2025/12/03 06:33:21 [error] 7#7: upstream timed out")
    assert error.time == datetime(2025, 12, 3, 5, 33, 21, tzinfo=UTC)
    access = parser.feed('nginx-access\t10.0.0.1 - - [03/Dec/2025:05:33:19 +0000] "GET / HTTP/1.1" 200 5')
    assert sorted([line, error, access], key=lambda x: x.time) == [access, line, error]
    query = logs.Query(grep="timed", since=datetime(2025, 12, 3, 5, 33, 20, tzinfo=UTC))
    assert query.keeps(error) and not query.keeps(access) and query.keeps(line)


def test_logs_since_and_units():
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert logs.parse_since("90m", now) == datetime(2026, 12, 3, 10, 30, tzinfo=UTC)
    assert logs.parse_since("2026-12-03T05:00", now) == datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
    with pytest.raises(OpsError, match="--since 'yesterday'"):
        logs.parse_since("yesterday")
    s = target_of(existing()).settings
    assert logs.choose_units(s, "web-0", None) == (
        ["app.service", "app-*", "app.failed@*.service", "nginx.service"], True)
    assert logs.choose_units(s, "web-0", ["alerts"]) == (["app.failed@*.service"], False)
    assert logs.choose_units(s, "web-1", ["worker", "digest"]) == (
        ["app-worker@*.service", "app-digest.service", "app-digest.timer"], False)
    with pytest.raises(OpsError, match="--unit 'wrker' is not a unit .* give web, front, alerts, "
                                       "digest, worker"):
        logs.choose_units(s, "web-0", ["wrker"])


def test_drift_compares_content_mode_owner_units_and_sites():
    target = target_of(existing(hosts={"addresses": ["203.0.113.10"]}))
    host = target.hosts[0]
    from stack import render

    files = render.render_host(target.settings, host)
    site = "/etc/nginx/sites-available/app.conf"
    lines = []
    for row in drift.rows_of(target, host):
        path = row.remote(target.settings)
        group = target.settings.app.name if row.group == "app" else "root"
        mode = row.mode.lstrip("0") if path != "/etc/app/app.env" else "644"
        lines.append(f"file\t{path}\t{mode}\troot\t{group}\tx")
    import base64

    edited = files[site] + "# by hand\n"
    lines.append(f"content\t{site}\t{base64.b64encode(edited.encode()).decode()}")
    lines += ["unit\tapp.service\tenabled\tactive", "unit\tapp-worker@2.service\tdisabled\tinactive",
              "site\t/etc/nginx/sites-enabled/app.conf\t/etc/nginx/sites-available/app.conf",
              "site\t/etc/nginx/sites-enabled/old\t/etc/nginx/sites-available/old"]
    result = drift.compare(target, host, files, "\n".join(lines))
    whats = {(i.path, i.what) for i in result.items}
    assert ("/etc/app/app.env", "mode 644 (the stack sets 600)") in whats
    assert (site, "content") in whats
    assert ("app-worker@2.service", "unit is disabled, the stack enables it") in whats
    assert ("app-worker@2.service", "unit is inactive, the stack runs it") in whats
    assert any(p == "/etc/nginx/sites-enabled/old" for p, _ in whats)
    assert len(result.items) == 5, whats
    diff = next(i.diff for i in result.items if i.path == site)
    assert "+# by hand" in diff and diff.startswith("--- stack ops: /etc/nginx/sites-available/app.conf")


# -- the verbs' scripts ---------------------------------------------------------------------
def test_run_confines_the_command_like_the_app_and_keeps_secrets_out_of_its_arguments():
    target = target_of(existing())
    made = console.script(target, target.hosts[0], ["flask", "shell"], tty=True).text()
    assert "--pty" in made and "--property=ProtectSystem=strict" in made
    assert "--property=EnvironmentFile=-/etc/app/secrets.env" in made
    assert "--setenv=FLASK_APP=rocket:app" in made and made.rstrip().endswith("-- /usr/bin/env flask shell")
    for secret in ("pw@db.example.com", "SECRET_KEY=k"):
        assert secret not in made


def test_the_verbs_scripts_pass_shellcheck(tmp_path):
    tool = shellcheck_path()
    for case in (stacks.case("example:existing-complete"), stacks.case("variant:haproxy-tls")):
        s = case.load()
        target = Target(settings=s, hosts=(Host("web-0", "203.0.113.10"),), release=None, identity=None,
                        secrets_known=False)
        host = target.hosts[0]
        from stack import render

        made = {"status": status.script(s, host), "rollback": rollback.script(target, host, "a" * 20),
                "run": console.script(target, host, ["flask", "shell"], tty=False),
                "drift": drift.script(target, host, render.render_host(s, host)),
                "logs": logs.script(s, host, units=["app.service"], files=True, access=True, lines=10,
                                    since=None, grep="err", follow=True)}
        for name, script in made.items():
            (tmp_path / f"{case.id}-{name}.sh").write_text(script.text())
    result = subprocess.run([tool, "-s", "bash", "-f", "gcc", *sorted(map(str, tmp_path.glob("*.sh")))],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and not result.stdout, result.stdout


# -- the sweep's drift report ---------------------------------------------------------------
@pytest.mark.parametrize(("code", "printed", "exit_code", "said"), [
    (0, "web-0 (203.0.113.10): no drift\n", 0, "No drift"),
    (1, "web-0 (203.0.113.10): 1 drifted\n  /etc/app/app.env: mode 644\n", 0, "Drift found"),
    (1, "web-0 (203.0.113.10): UNREACHABLE: timeout\n", 1, "Drift found"),
    (2, "no stack named prod\n", 2, "could not run (exit 2)"),
])
def test_the_sweeps_drift_report_summarises_and_fails_only_when_it_could_not_look(tmp_path, code, printed,
                                                                                  exit_code, said):
    """.github/scripts/drift-report with a stand-in for `python -m stack drift`."""
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (tmp_path / "printed").write_text(printed)
    (venv / "python").write_text(f"#!/bin/sh\ncat {tmp_path / 'printed'}\nexit {code}\n")
    (venv / "python").chmod(0o755)
    summary = tmp_path / "summary.md"
    done = subprocess.run([str(ROOT / ".github" / "scripts" / "drift-report"), "prod"], cwd=tmp_path,
                          env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == exit_code, done.stdout + done.stderr
    text = summary.read_text()
    assert text.startswith("## Drift on stack `prod`") and said in text and printed in text
    assert ("::warning title=Drift on prod::" in done.stdout) == (code == 1 and exit_code == 0)
