"""Draining behind a balancer, without hosts: how long each step waits, from the balancer the
program declares (stack/balancer.py) or from deploy.drainSeconds; which scripts drain; the WSGI
entry's health path while a host drains. On real hosts behind a stand-in balancer:
tests/hosts/test_balancer.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from werkzeug.test import Client

from stack import balancer, inventory, render, scripts, settings
from stack.settings import SettingsError
from tests.support import stacks
from tests.test_scripts import RELEASE
from tests.test_wsgi_entry import APPS, entry

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("case", "expected"), [
    ("example:aws-complete", (40, 25)),  # the ALB: 3 checks 10 s apart, 5 s each, + 5; back: 2 checks
    ("example:digitalocean-complete", (40, 35)),  # DigitalOcean: 3 checks out, 3 back
    ("example:existing-complete", (35, 25)),  # behind the user's own balancer: set in the file
    ("example:existing-minimal", (0, 0)),  # no balancer: nothing drains
    ("variant:nginx-tls-single-host", (0, 0)),
])
def test_drain_times_come_from_the_balancer_the_program_declares(case, expected):
    assert balancer.drain_seconds(stacks.case(case).load()) == expected


def test_drain_times_can_be_set_and_drain_0_turns_it_off():
    base = {"platform": "aws", "region": "eu-west-1", "loadBalancer": True, "hosts": {"count": 2}}

    def with_deploy(**deploy):
        return settings.load({**base, "deploy": deploy}, stack="staging", project_dir=ROOT, offline=True)

    assert balancer.drain_seconds(with_deploy(drainSeconds=12)) == (12, 25)
    assert balancer.drain_seconds(with_deploy(drainSeconds=0)) == (0, 0)
    assert balancer.drain_seconds(with_deploy(drainSeconds=5, undrainSeconds=9)) == (5, 9)
    with pytest.raises(SettingsError, match="deploy.drainSeconds: must be a whole number from 0 to 600"):
        with_deploy(drainSeconds=601)


def test_heroku_refuses_drain_times():
    config = {"platform": "heroku", "deploy": {"drainSeconds": 10}}
    with pytest.raises(SettingsError, match="deploy.drainSeconds: has no meaning on platform heroku"):
        settings.load(config, stack="dev", project_dir=ROOT, offline=True)


def test_only_the_steps_that_close_connections_drain_and_only_behind_a_balancer():
    behind = stacks.case("example:aws-complete").load()
    alone = stacks.case("example:existing-minimal").load()
    for s, drains in ((behind, True), (alone, False)):
        host = inventory.planned(s)[0]
        files = render.render_host(s, host)
        app_env = files[next(p for p in files if p.endswith("/app.env"))]
        configure = scripts.configure(s, host.name, files).text()
        env = scripts.env(s, host.name, app_env).text()
        assert ("drain_start" in configure) == drains and ("drain_start" in env) == drains
        if drains:
            assert '*" front "*|*" units "*|*" socket "*) drain_start' in configure
            assert "sleep 40" in configure and "sleep 25" in configure
        release = scripts.release(s, host.name, RELEASE, release_command=False,
                                  wsgi=None, files=files).text()
        assert "drain_start" not in release  # Gunicorn's HUP closes no connection


def test_while_a_host_drains_its_health_path_answers_503_and_everything_else_serves(tmp_path, monkeypatch):
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    ns = entry(tmp_path, monkeypatch, APPS / "blogpkg", {"entry": "blog:create_app()"})
    flag = tmp_path / "app.drain"
    ns["DRAIN_FILE"] = str(flag)
    client = Client(ns["application"])
    assert client.get("/healthz").status_code == 200
    flag.touch()
    health = client.get("/healthz")
    assert (health.status_code, health.data) == (503, b"draining\n")
    assert client.get("/missing").status_code == 404  # the app's own answers go on
    # The host's own HAProxy checking Gunicorn is not drained (it would take Gunicorn out).
    assert client.get("/healthz", headers={"X-Flask-Stack-Check": "front"}).status_code == 200
    flag.unlink()
    assert client.get("/healthz").status_code == 200
