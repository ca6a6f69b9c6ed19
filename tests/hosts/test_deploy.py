"""The program's remote steps, replayed over real SSH onto real booted Debian hosts.

One stack of two hosts (deploy.batchSize 1, so each host is a batch) lives through the module,
once with each front (Nginx, HAProxy): a first deploy from a fresh image, an unchanged replay, a
config change and an app change under load, then faults. Everything a host runs is exactly what
the program declared under the mocks.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from stack import render
from tests.hosts.deploying import APP_SECRET, get, host_state, load, mixed_load, new_stack, wait_for

pytestmark = pytest.mark.hosts
FRONTS = ("nginx", "haproxy")


@pytest.fixture(scope="module", params=FRONTS)
def stack(request, testbed, tmp_path_factory):
    """Two hosts deployed with one front, through the whole module (pytest runs every test for
    the first front, then every test for the second, each on hosts of its own)."""
    hosts = testbed.boot(2, prefix=request.param[0])
    the_stack = new_stack(testbed, hosts, tmp_path_factory, front=request.param)
    yield the_stack
    for host in hosts:
        testbed.destroy(host)


def test_first_deploy_serves_the_app_through_its_front_on_every_host(stack):
    started = time.monotonic()
    outcome = stack.deploy()
    print(f"\n{stack.front}: fresh hosts to serving: {time.monotonic() - started:.1f} s; "
          f"steps: {outcome.seconds}")
    other = "haproxy" if stack.front == "nginx" else "nginx"
    for host in stack.hosts:
        listening = host.ssh("sudo -n ss -ltnpH 'sport = :80'").stdout
        assert f'"{stack.front}"' in listening and f'"{other}"' not in listening, listening
        assert get(host, "/") == (200, "Hello World!"), host.name
        assert get(host, "/healthz")[0] == 200
        status, body = get(host, "/db")
        assert status == 200 and json.loads(body)["database"] == "ok", f"{host.name}: {body}"
        status, body = get(host, "/static/site.css")
        assert status == 200 and "font-family" in body


def test_the_app_sees_the_real_client_and_spoofed_headers_change_nothing(stack, testbed):
    for host in stack.hosts:
        _, body = get(host, "/whoami", headers={"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6",
                                                 "X-Forwarded-Proto": "https"})
        seen = json.loads(body)
        assert seen["remote_addr"] == testbed.bridge_address, seen
        assert seen["scheme"] == "http", seen


def test_nginx_runs_half_the_hosts_cpus_as_workers(stack):
    for host in stack.hosts:
        written = host.ssh("cat /etc/nginx/flask-stack-workers.conf", check=False)
        if stack.front != "nginx":
            assert written.returncode != 0, "the HAProxy front got an Nginx file"
            continue
        cpus = int(host.ssh("nproc").stdout)
        workers = max(1, cpus // 2)
        assert f"worker_processes {workers};" in written.stdout, written.stdout
        running = host.ssh("pgrep -c -f '^nginx: worker process'").stdout.strip()
        assert running == str(workers), f"{host.name}: {running} workers on {cpus} CPUs"


def test_gunicorn_listens_on_no_tcp_port(stack):
    for host in stack.hosts:
        listening = host.ssh("sudo -n ss -ltnpH").stdout
        assert "gunicorn" not in listening and "python" not in listening, listening
        sockets = host.ssh("sudo -n ss -lxpH").stdout
        assert "/run/app/gunicorn.sock" in sockets


def test_secrets_are_root_only_and_reach_the_app(stack):
    for host in stack.hosts:
        mode = host.ssh("sudo -n stat -c '%a %U' /etc/app/secrets.env").stdout.split()
        assert mode == ["600", "root"]
        env = host.ssh("sudo -n sh -c 'cat /proc/$(systemctl show -p MainPID --value app.service)/environ'"
                       ).stdout.split("\0")
        assert f"SECRET_KEY={APP_SECRET}" in env and "GREETING=hello" in env
        assert any(e.startswith("DATABASE_URL=postgresql://") for e in env)


def test_bootstrap_turned_on_unattended_security_upgrades(stack):
    for host in stack.hosts:
        conf = host.ssh("cat /etc/apt/apt.conf.d/20auto-upgrades").stdout
        assert 'APT::Periodic::Unattended-Upgrade "1";' in conf
        assert host.ssh("dpkg-query -W -f='${Status}' unattended-upgrades").stdout == "install ok installed"
        assert host.ssh("id -u app && id -nG app").stdout.split()[1:] == ["app"]  # a system user, no sudo


def test_installed_units_verify_and_are_hardened_on_the_host(stack):
    host = stack.hosts[0]
    verify = host.ssh("sudo -n systemd-analyze verify /etc/systemd/system/app.socket "
                      "/etc/systemd/system/app.service", check=False)
    assert verify.returncode == 0 and "app." not in verify.stderr, verify.stderr
    security = host.ssh("sudo -n systemd-analyze security --no-pager app.service").stdout
    score = float(security.rsplit("Overall exposure level for app.service:", 1)[1].split()[0])
    assert score <= 2.0, security[-400:]


def test_an_unchanged_replay_runs_nothing(stack):
    before = [host_state(h) for h in stack.hosts]
    outcome = stack.deploy()
    assert outcome.ran == []
    assert [host_state(h) for h in stack.hosts] == before


def test_running_every_step_again_changes_nothing(stack):
    """The scripts themselves are idempotent: forget the state and run them all again."""
    before = [host_state(h) for h in stack.hosts]
    stack.replayer.state.clear()
    outcome = stack.deploy()
    assert len(outcome.ran) == 7 * len(stack.hosts)  # six steps and the host key check each
    assert [host_state(h) for h in stack.hosts] == before


def test_a_config_change_runs_only_configure_and_reaches_hosts_without_a_failed_request(stack):
    # A Gunicorn setting and the front's worker count (one more than the automatic one, so the
    # setting is what shows): both reload under load.
    workers = max(1, int(stack.hosts[0].ssh("nproc").stdout) // 2) + 1
    stack.extra = {"app": {"timeout": 40}, "frontWorkers": workers}
    with load(stack.hosts) as stats:
        time.sleep(1)
        outcome = stack.deploy()
        time.sleep(1)
    assert sorted({n.split("-", 3)[3] for n in outcome.ran}) == ["configure", "gate", "hostkey"]
    assert stats["failed"] == 0 and stats["ok"] > 20, stats["errors"][:5]
    for host in stack.hosts:
        conf = host.ssh("sudo -n cat /etc/app/gunicorn.conf.py").stdout
        assert "timeout = 40" in conf
        if stack.front == "nginx":
            written = host.ssh("cat /etc/nginx/flask-stack-workers.conf").stdout
            assert f"worker_processes {workers};" in written, written
            count = "pgrep -c -f '^nginx: worker process'"
            wait_for(lambda h=host, c=count: h.ssh(c).stdout.strip() == str(workers), timeout=10)
        else:
            assert f"\n    nbthread {workers}\n" in host.ssh("cat /etc/haproxy/haproxy.cfg").stdout


def test_an_app_change_runs_only_release_steps_and_reaches_hosts_without_a_failed_request(stack):
    rocket = stack.app / "rocket.py"
    rocket.write_text(rocket.read_text().replace('return "Hello World!"', 'return "Hello again!"'))
    with load(stack.hosts, "/healthz") as stats:
        time.sleep(1)
        outcome = stack.deploy()
        time.sleep(1)
    assert sorted({n.split("-", 3)[3] for n in outcome.ran}) == ["gate", "hostkey", "release", "upload"]
    assert stats["failed"] == 0 and stats["ok"] > 20, stats["errors"][:5]
    for host in stack.hosts:
        assert get(host, "/") == (200, "Hello again!")


def test_an_app_that_fails_to_import_stops_at_the_first_batch_before_it_serves(stack):
    """The release's preflight loads the new release before `current` switches: the host never
    reloads into it, so clients keep being served by the release they had, without one error."""
    good = [host.ssh("readlink /srv/app/current").stdout.strip() for host in stack.hosts]
    workers = "ps -o pid= --ppid $(systemctl show -p MainPID --value app.service) | sort"
    before = stack.hosts[0].ssh(workers).stdout
    rocket = stack.app / "rocket.py"
    working = rocket.read_text()
    rocket.write_text(working + "\nimport a_module_that_does_not_exist\n")
    try:
        with mixed_load(stack.hosts, mix=(("GET", "/", False, 2), ("GET", "/", True, 2))) as stats:
            outcome = stack.deploy(expect_failure=True)
    finally:
        rocket.write_text(working)
    message = str(outcome.failed)
    assert outcome.failed.step == "app-web-0-release"
    assert f"release on host web-0 ({stack.hosts[0].address}): release " in message, message
    assert "failed its check before the switch" in message and "nothing switched" in message
    assert f"keeps serving release {good[0].rsplit('/', 1)[1]}" in message, message
    assert "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'" in message
    assert not any(name.startswith("app-web-1-") and name.endswith(("release", "configure", "gate"))
                   for name in outcome.ran), outcome.ran
    assert stats["failed"] == 0 and stats["ok"] > 20, stats["errors"][:5]
    after = [host.ssh("readlink /srv/app/current").stdout.strip() for host in stack.hosts]
    assert after == good
    assert stack.hosts[0].ssh(workers).stdout == before != ""  # the same workers: no reload
    assert stack.hosts[0].ssh("ls /run | grep -c preflight || true").stdout.strip() == "0"
    for host in stack.hosts:
        assert get(host, "/") == (200, "Hello again!")


def test_a_release_that_fails_only_under_its_workers_is_rolled_back_after_the_switch(stack):
    """What the preflight cannot see (it asks the health path once, outside Gunicorn) the gate
    still catches: here the health route fails whenever a Gunicorn worker serves it."""
    good = [host.ssh("readlink /srv/app/current").stdout.strip() for host in stack.hosts]
    rocket = stack.app / "rocket.py"
    working = rocket.read_text()
    broken = working.replace('def healthz():\n    return "ok"', (
        'def healthz():\n'
        '    try:  # a Gunicorn worker\'s parent is its master; ProtectProc hides root\'s processes\n'
        '        with open(f"/proc/{os.getppid()}/cmdline", "rb") as parent:\n'
        '            under_gunicorn = b"gunicorn" in parent.read()\n'
        '    except OSError:\n'
        '        under_gunicorn = False\n'
        '    return ("under a worker", 500) if under_gunicorn else "ok"'), 1)
    assert broken != working
    rocket.write_text(broken)
    try:
        outcome = stack.deploy(expect_failure=True)
    finally:
        rocket.write_text(working)
    message = str(outcome.failed)
    assert outcome.failed.step == "app-web-0-release"
    # (HAProxy's own check of Gunicorn, on the same path, may have taken it out by the end: 503)
    statuses = ("500", "503") if stack.front == "haproxy" else ("500",)
    assert any(f"did not answer 200 within 12 s (last status {s})" in message for s in statuses), message
    assert "Rolled back to release" in message and "the previous version answers 200 again" in message
    after = [host.ssh("readlink /srv/app/current").stdout.strip() for host in stack.hosts]
    assert after == good
    for host in stack.hosts:
        assert get(host, "/") == (200, "Hello again!")


def test_after_a_failed_release_the_stack_state_still_matches_the_hosts(stack):
    """The failed step was not recorded, so with the app fixed there is nothing left to do
    but copy the archive back (the failed release step deleted it)."""
    outcome = stack.deploy()
    assert [n for n in outcome.ran if not n.endswith(("-upload", "-hostkey"))] == [], outcome.ran
    for host in stack.hosts:
        assert get(host, "/") == (200, "Hello again!")


def test_a_failed_release_is_tried_again_by_the_next_deploy(stack):
    rocket = stack.app / "rocket.py"
    working = rocket.read_text()
    rocket.write_text(working + "\nimport a_module_that_does_not_exist\n")
    try:
        first = stack.deploy(expect_failure=True)
        again = stack.deploy(expect_failure=True)
    finally:
        rocket.write_text(working)
    assert first.failed.step == again.failed.step == "app-web-0-release"
    assert "app-web-0-release" in again.ran
    stack.deploy()


INVALID = {  # front: (template, the installed file, what the configure step says)
    "nginx": ("nginx/site.conf.j2", "/etc/nginx/sites-available/app.conf", "the new Nginx config is invalid"),
    "haproxy": ("haproxy/haproxy.cfg.j2", "/etc/haproxy/haproxy.cfg", "the new HAProxy config is invalid"),
}


def test_an_invalid_front_template_is_never_installed(stack, monkeypatch, tmp_path):
    template, installed, message = INVALID[stack.front]
    templates = tmp_path / "templates"
    shutil.copytree(render.TEMPLATES, templates)
    broken = templates / template
    broken.write_text(broken.read_text() + "\nan_unknown_directive on;\n")
    monkeypatch.setattr(render, "TEMPLATES", templates)
    live = stack.hosts[0].ssh(f"sudo -n sha256sum {installed}").stdout
    outcome = stack.deploy(expect_failure=True)
    assert outcome.failed.step == "app-web-0-configure"
    assert message in str(outcome.failed)
    assert stack.hosts[0].ssh(f"sudo -n sha256sum {installed}").stdout == live
    for host in stack.hosts:
        assert get(host, "/") == (200, "Hello again!")


def test_an_unreachable_host_fails_with_its_name_and_the_others_keep_serving(stack):
    down = stack.hosts[1]
    down.stop()
    try:
        outcome = stack.deploy_changed_config({"app": {"timeout": 41}}, expect_failure=True)
    finally:
        down.start()
    assert outcome.failed.step.startswith("app-web-1-")
    assert down.address in str(outcome.failed)
    assert get(stack.hosts[0], "/") == (200, "Hello again!")
    stack.deploy()  # back up: the pending change reaches it
    assert "timeout = 41" in down.ssh("sudo -n cat /etc/app/gunicorn.conf.py").stdout


def test_systemd_brings_gunicorn_back_when_its_master_is_killed(stack):
    host = stack.hosts[0]
    def main_pid() -> str:
        return host.ssh("systemctl show -p MainPID --value app.service").stdout.strip()

    pid = main_pid()
    host.ssh(f"sudo -n kill -9 {pid}")
    wait_for(lambda: main_pid() not in ("0", pid))
    assert wait_for(lambda: get(host, "/")[0] == 200)


def test_a_rebooted_host_serves_again(stack):
    host = stack.hosts[1]
    host.reboot()
    assert wait_for(lambda: get(host, "/") == (200, "Hello again!"), timeout=60)


def test_the_release_command_runs_once_per_rollout_with_the_apps_environment(stack):
    import psycopg

    record = ("python -c \"import os, socket, psycopg; c = psycopg.connect(os.environ['DATABASE_URL']); "
              "c.execute('create table if not exists releases (host text, greeting text)'); "
              "c.execute('insert into releases values (%s, %s)', "
              "(socket.gethostname(), os.environ['GREETING'])); "
              "c.commit()\"")
    stack.extra["app"] = {**stack.extra.get("app", {}), "releaseCommand": record}
    rocket = stack.app / "rocket.py"
    rocket.write_text(rocket.read_text() + "\n# release with a release command\n")
    stack.deploy()
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute("select host, greeting from releases where host = any(%s)",
                            ([h.name for h in stack.hosts],)).fetchall()  # the other front's too
    assert len(rows) == 1 and rows[0][1] == "hello", rows  # once, with app.env loaded


def test_a_failing_release_command_stops_the_rollout_and_every_host_keeps_its_release(stack):
    before = [host.ssh("readlink /srv/app/current").stdout.strip() for host in stack.hosts]
    stack.extra["app"] = {**stack.extra["app"], "releaseCommand": "echo migrating; exit 3"}
    rocket = stack.app / "rocket.py"
    rocket.write_text(rocket.read_text() + "\n# a release whose migration fails\n")
    try:
        outcome = stack.deploy(expect_failure=True)
    finally:
        stack.extra["app"].pop("releaseCommand")
    assert outcome.failed.step == "app-web-0-release"
    assert "the release command failed" in str(outcome.failed)
    assert not any(n.startswith("app-web-1-") and n.endswith("release") for n in outcome.ran)
    after = [host.ssh("readlink /srv/app/current").stdout.strip() for host in stack.hosts]
    assert after == before
    for host in stack.hosts:
        assert get(host, "/")[0] == 200
