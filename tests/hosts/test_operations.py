"""The day-2 verbs against a stack the program deployed on two real test hosts, for each front:
`python -m stack status|logs|run|rollback|drift hosts`, run as a user runs them, with a stand-in
for the Pulumi CLI answering the stack's decrypted config and its outputs (no CLI can be
installed here; everything the verbs do on the hosts is real).

The tests run in order on one stack: status, logs, run and drift on the first release; then a
second release, a rollback under load, what the next `pulumi up` does, a rollback to a release
that fails (before its switch, and after it), and a deploy after all that; those behind Nginx
only (ONE_FRONT).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stack.paths import SSHD_DROPIN
from tests.hosts.deploying import APP_SECRET, ROOT, get, load, new_stack, wait_for
from tests.support.fake_pulumi import FakePulumi
from tests.support.mocks import mock_host_key

pytestmark = pytest.mark.hosts
STACK = "hosts"
SECRET_KEYS = ("ssh", "database", "app")
# The rollback tests switch releases, which no front takes part in (the release tests of
# test_deploy run with both): they run behind Nginx only, which saves the suite two minutes.
ONE_FRONT = pytest.mark.parametrize("bed", ["nginx"], indirect=True)


@pytest.fixture(scope="module", params=["nginx", "haproxy"])
def bed(request, testbed, tmp_path_factory):
    front = request.param
    hosts = testbed.boot(2, prefix="o" + front[0])
    stack = new_stack(testbed, hosts, tmp_path_factory, front=front)
    stack.extra = {"processes": {"worker": {"command": "python -m worker"}},
                   "app": {"env": {"GREETING": "hello", "HEARTBEAT_SECONDS": "2"}}}
    work = tmp_path_factory.mktemp("ops")
    fake = FakePulumi(work, STACK)
    bed = {"stack": stack, "hosts": hosts, "fake": fake, "work": work, "front": front,
           "releases": []}
    deploy(bed)
    yield bed
    testbed.destroy(*hosts)


def deploy(bed, **kwargs):
    stack = bed["stack"]
    outcome = stack.deploy(**kwargs)
    bed["fake"].set_config(cli_config(stack), SECRET_KEYS)
    release = current(bed["hosts"][0])
    if not kwargs.get("expect_failure"):
        bed["releases"].append(release)
        bed["fake"].set_outputs({"hosts": [h.address for h in bed["hosts"]], "release": release})
    return outcome


def cli_config(stack, **change) -> dict:
    """The stack's config as `pulumi config` holds it: app.path relative to the project (the
    verbs run with --dir at the app copy's parent)."""
    config = stack.config()
    config["app"] = {**config["app"], "path": stack.app.name}
    return {**config, **change}


def current(host) -> str:
    return host.ssh("basename \"$(readlink /srv/app/current)\"").stdout.strip()


def ops(bed, verb: str, *args: str, timeout: float = 180, popen: bool = False, **kwargs):
    env = {**os.environ, "PATH": f"{bed['fake'].bin}:{os.environ['PATH']}",
           "XDG_CACHE_HOME": str(bed["work"] / "cache")}
    argv = [sys.executable, "-m", "stack", verb, "--dir", str(bed["stack"].app.parent), STACK, *args]
    if popen:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kwargs)
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False, **kwargs)


def test_status_of_a_healthy_stack_shows_the_release_and_every_unit(bed):
    done = ops(bed, "status")
    assert done.returncode == 0, done.stdout + done.stderr
    release = bed["releases"][-1]
    for host in bed["hosts"]:
        assert f"web-{bed['hosts'].index(host)} ({host.address}): ok" in done.stdout, done.stdout
    assert f"release {release}" in done.stdout
    report = json.loads(ops(bed, "status", "--json").stdout)
    assert report["release"] == release
    for st in report["hosts"]:
        assert st["healthy"] and st["current"] == release == st["deployed"], st
        assert st["health_status"] == 200
        units = {u["name"]: u for u in st["units"]}
        front = f"{bed['front']}.service"
        assert set(units) == {"app.socket", "app.service", "app-worker@1.service", front}, units
        assert all(u["active"] == "active" and u["enabled"] == "enabled" for u in units.values()), units
        assert units["app.service"]["since"] > time.time() - 3600
        assert st["releases_bytes"] > 1_000_000


def test_status_exits_1_and_names_the_host_whose_app_stopped(bed):
    second = bed["hosts"][1]
    second.ssh("sudo -n systemctl stop app.socket app.service")
    try:
        done = ops(bed, "status")
        assert done.returncode == 1, done.stdout
        assert f"web-1 ({second.address}): PROBLEM" in done.stdout
        assert "! app.service is inactive (dead)" in done.stdout
        assert f"web-0 ({bed['hosts'][0].address}): ok" in done.stdout
    finally:
        second.ssh("sudo -n systemctl start app.socket")
        wait_for(lambda: get(second, "/healthz")[0] == 200, timeout=30)
    assert ops(bed, "status").returncode == 0


def test_logs_merge_both_hosts_in_time_order(bed):
    for host in bed["hosts"]:
        host.ssh("sudo -n systemctl restart app-worker@1.service")
    time.sleep(1)
    done = ops(bed, "logs", "--unit", "worker", "-n", "40")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert stamps == sorted(stamps), lines
    for name in ("web-0", "web-1"):
        mine = [line for line in lines if line.split(" ")[1] == name]
        assert any("worker: writing a heartbeat every 2 s" in line for line in mine), lines
        assert any("worker: stopped on SIGTERM" in line for line in mine), lines
    as_json = [json.loads(line) for line in ops(bed, "logs", "--unit", "worker", "-n", "5",
                                                "--json").stdout.splitlines()]
    assert len(as_json) == 5 and {"time", "host", "source", "message"} <= set(as_json[0])
    grep = ops(bed, "logs", "--unit", "worker", "--grep", "SIGTERM", "-n", "40").stdout.splitlines()
    assert grep and all("SIGTERM" in line for line in grep), grep


def test_logs_follow_streams_a_line_logged_after_it_started(bed):
    follow = ops(bed, "logs", "--unit", "web", "-n", "0", "--follow", popen=True)
    try:
        time.sleep(3)  # both hosts' streams are open
        bed["hosts"][1].ssh("sudo -n systemctl kill -s HUP app.service")
        deadline = time.monotonic() + 30
        seen = []
        while time.monotonic() < deadline:
            line = follow.stdout.readline()
            seen.append(line)
            if " web-1 " in line and "hup" in line.lower():
                break
        else:
            pytest.fail(f"no HUP line from web-1 within 30 s: {seen}")
    finally:
        follow.terminate()
        follow.wait(timeout=15)
    for host in bed["hosts"]:  # the remote side of --follow went with the client
        wait_for(lambda h=host: "journalctl" not in h.ssh("ps -eo args").stdout, timeout=15)


def test_run_executes_in_the_app_environment_and_passes_its_exit_code(bed):
    probe = ("import hashlib, os, pwd, sys, time; "
             "print('url', os.environ['DATABASE_URL'].split('@')[-1]); "
             "print('secret', hashlib.sha256(os.environ['SECRET_KEY'].encode()).hexdigest()); "
             "print('user', pwd.getpwuid(os.getuid()).pw_name); print('cwd', os.getcwd()); "
             "print('python', sys.executable); time.sleep(4); sys.exit(3)")
    running = ops(bed, "run", "--", "python", "-c", probe, popen=True, stdin=subprocess.DEVNULL)
    time.sleep(2.5)
    password = bed["stack"].database_url.split("://", 1)[1].split("@")[0].split(":", 1)[1]
    outer = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    inner = bed["hosts"][0].ssh("ps -eww -o args").stdout
    other = bed["hosts"][1].ssh("ps -eww -o args").stdout
    out, err = running.communicate(timeout=60)
    assert running.returncode == 3, out + err
    assert "systemd-run" in inner, inner  # the check looked while the command ran
    for listing in (outer, inner, other):
        assert APP_SECRET not in listing and password not in listing
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines["url"] == bed["stack"].database_url.split("@")[-1]
    assert lines["secret"] == hashlib.sha256(APP_SECRET.encode()).hexdigest()
    assert lines["user"] == "app"
    assert lines["cwd"] == f"/srv/app/releases/{bed['releases'][-1]}"
    assert lines["python"].startswith("/srv/app/current/venv/bin/python"), lines
    assert ops(bed, "run", "--host", "web-1", "--", "true").returncode == 0
    shell = ops(bed, "run", "--", "flask", "shell", input="print('in', app.name)\n")
    assert shell.returncode == 0 and "in rocket" in shell.stdout, shell.stdout + shell.stderr


def site_file(bed) -> str:
    return "/etc/nginx/sites-available/app.conf" if bed["front"] == "nginx" else "/etc/haproxy/haproxy.cfg"


def test_drift_finds_a_hand_edited_site_and_a_chmoded_env_file_and_fix_restores_them(bed):
    clean = ops(bed, "drift")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.count(": no drift") == 2
    first = bed["hosts"][0]
    site = site_file(bed)
    before = first.ssh(f"sudo -n cat {site}").stdout
    first.ssh(f"echo '# edited by hand' | sudo -n tee -a {site} >/dev/null")
    first.ssh("sudo -n chmod 0644 /etc/app/app.env")
    first.ssh(f"echo 'PasswordAuthentication yes' | sudo -n tee -a {SSHD_DROPIN} >/dev/null")
    if bed["front"] == "nginx":
        first.ssh("sudo -n ln -s /etc/nginx/sites-available/default /etc/nginx/sites-enabled/stray")
    found = ops(bed, "drift")
    assert found.returncode == 1, found.stdout
    assert f"{site}: content" in found.stdout and "+# edited by hand" in found.stdout, found.stdout
    assert "/etc/app/app.env: mode 644 (the stack sets 600)" in found.stdout
    assert f"{SSHD_DROPIN}: content" in found.stdout and "+PasswordAuthentication yes" in found.stdout
    assert f"web-1 ({bed['hosts'][1].address}): no drift" in found.stdout
    if bed["front"] == "nginx":
        assert "/etc/nginx/sites-enabled/stray: a site the stack does not have" in found.stdout
        first.ssh("sudo -n rm /etc/nginx/sites-enabled/stray")
    with load(bed["hosts"], "/healthz") as stats:
        fixed = ops(bed, "drift", "--fix", timeout=300)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert stats["failed"] == 0, stats["errors"][:5]
    assert first.ssh(f"sudo -n cat {site}").stdout == before
    assert first.ssh("sudo -n stat -c %a /etc/app/app.env").stdout.strip() == "600"
    assert "PasswordAuthentication yes" not in first.ssh(f"cat {SSHD_DROPIN}").stdout
    assert ops(bed, "drift").returncode == 0


@ONE_FRONT
def test_rollback_switches_every_host_to_the_previous_release_with_no_failed_request(bed):
    rocket = bed["stack"].app / "rocket.py"
    rocket.write_text(rocket.read_text().replace('return "Hello World!"', 'return "Hello again!"'))
    deploy(bed)
    first_release, second_release = bed["releases"][-2:]
    assert first_release != second_release
    with load(bed["hosts"], "/") as stats:
        time.sleep(1)
        done = ops(bed, "rollback", timeout=300)
        time.sleep(1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert stats["failed"] == 0 and stats["ok"] > 20, stats["errors"][:5]
    for host in bed["hosts"]:
        assert current(host) == first_release
        assert get(host, "/") == (200, "Hello World!")
        worker = host.ssh("sudo -n readlink /proc/$(systemctl show -p MainPID --value "
                          "app-worker@1.service)/cwd").stdout.strip()
        assert worker == f"/srv/app/releases/{first_release}"
    status = ops(bed, "status")
    assert status.returncode == 1
    assert status.stdout.count(f"! rolled back: serves {first_release}, the stack's release is "
                               f"{second_release}") == 2, status.stdout


@ONE_FRONT
def test_after_a_rollback_pulumi_up_runs_nothing_and_replacing_the_release_steps_switches_back(bed):
    stack = bed["stack"]
    outcome = stack.deploy()
    assert outcome.ran == [], outcome.ran  # nothing changed in the working tree: nothing runs
    assert {current(h) for h in bed["hosts"]} == {bed["releases"][-2]}
    # `pulumi up --replace <each host's release step>`: the release step, run again, finds
    # `current` is not its release and switches back to it (health-gated, processes included).
    for urn in [u for u in stack.replayer.state if u.endswith("-release")]:
        del stack.replayer.state[urn]
    outcome = stack.deploy()
    assert sorted(n.rsplit("-", 1)[1] for n in outcome.ran) == ["release", "release"], outcome.ran
    assert {current(h) for h in bed["hosts"]} == {bed["releases"][-1]}
    assert ops(bed, "status").returncode == 0


# Appended to the older release's code on the first host: it breaks at import, or only under a
# Gunicorn worker (whose parent is its master), which the preflight cannot see.
BREAKS = {
    "at import": 'raise RuntimeError("broken on purpose")\n',
    "under a worker": (  # (ProtectProc hides root's processes, the preflight's parent among them)
        "import os as _os\n"
        "try:\n"
        "    with open(f'/proc/{_os.getppid()}/cmdline', 'rb') as _parent:\n"
        "        _under_gunicorn = b'gunicorn' in _parent.read()\n"
        "except OSError:\n"
        "    _under_gunicorn = False\n"
        "if _under_gunicorn:\n"
        "    raise RuntimeError('broken on purpose')\n"),
}


@ONE_FRONT
def test_a_rollback_to_a_release_that_fails_stops_at_the_first_host(bed):
    """The older release breaks on the first host: at import, its preflight stops it before the
    switch (no HUP); only under a worker, it switches, fails the gate and is switched back."""
    first, second = bed["hosts"]
    older = bed["releases"][-2]
    serving = bed["releases"][-1]
    code = f"/srv/app/releases/{older}/rocket.py"
    first.ssh(f"sudo -n cp -p {code} {code}.kept")
    for how, appended in BREAKS.items():
        # The older release, still kept on both hosts, breaks on the first one.
        first.ssh(f"sudo -n cp -p {code}.kept {code} && sudo -n tee -a {code} >/dev/null", input=appended)
        workers = first.ssh("pgrep -u app -f gunicorn | sort").stdout
        with load([second], "/") as stats:
            done = ops(bed, "rollback", older, timeout=300)
        assert done.returncode == 1, done.stdout
        assert f"rollback stopped at web-0; not touched: web-1 ({second.address})" in done.stdout
        assert "broken on purpose" in done.stdout, done.stdout
        if how == "at import":
            assert "failed its check before the switch" in done.stdout, done.stdout
            assert f"this host keeps serving release {serving}" in done.stdout
            assert first.ssh("pgrep -u app -f gunicorn | sort").stdout == workers  # no HUP
        else:
            assert "Switched back to release " + serving in done.stdout
        assert stats["failed"] == 0, stats["errors"][:5]
        assert current(first) == current(second) == serving
        assert get(first, "/") == (200, "Hello again!")
    assert ops(bed, "status").returncode == 0


@ONE_FRONT
def test_the_next_deploy_brings_the_stack_to_its_new_release(bed):
    rocket = bed["stack"].app / "rocket.py"
    rocket.write_text(rocket.read_text().replace('return "Hello again!"', 'return "Hello, third!"'))
    deploy(bed)
    for host in bed["hosts"]:
        assert current(host) == bed["releases"][-1]
        assert get(host, "/") == (200, "Hello, third!")
    assert ops(bed, "status").returncode == 0


def test_an_unreachable_host_is_named_with_its_address(bed, tmp_path):
    hosts = bed["stack"].config()["hosts"]
    nowhere = {"addresses": [*hosts["addresses"], "198.51.100.77"],
               "hostKeys": {**hosts["hostKeys"], "198.51.100.77": mock_host_key("198.51.100.77")}}
    bed["fake"].set_config(cli_config(bed["stack"], hosts=nowhere), SECRET_KEYS)
    try:
        done = ops(bed, "status")
    finally:
        bed["fake"].set_config(cli_config(bed["stack"]), SECRET_KEYS)
    assert done.returncode == 1
    assert "web-2 (198.51.100.77): UNREACHABLE" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
    # Every host is pinned to its key (hosts.hostKeys): none is kept as the first one seen.
    assert not Path(bed["work"] / "cache" / "flask-stack" / "known_hosts").exists()
