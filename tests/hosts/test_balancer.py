"""Test hosts behind the stand-in balancer (tests/hosts/balancer.py), two and then three with
each front, under keep-alive clients that never retry and closing clients, all through the
balancer: not one failed request across a release (in batches of one), a release that fails its
preflight on the first host, a change that reloads the front, one that restarts the app, and an
environment change; then a third host joins (deployed under the load, then registered with the
balancer) and a release rolls across the three.

The changes that close connections drain the host first (its health path answers 503 until the
balancer has taken it out) and wait for the balancer to take it back. To keep the tests short
the stand-in checks every second (FAST), and the stack's deploy.drainSeconds/undrainSeconds are
set from those numbers, as a user behind a balancer of their own sets them; a separate stand-in
with the ALB's thresholds (at a 2 s interval instead of 10 s, to save the suite 40 s) shows the
stand-in counts checks as the ALB does: out at the third failure, back at the second pass.
"""

from __future__ import annotations

import time

import pytest

from stack.balancer import ALB, Balancing
from tests.hosts.balancer import StandIn
from tests.hosts.deploying import get, mixed_load, new_stack, wait_for

pytestmark = pytest.mark.hosts
FAST = Balancing("the test bed's fast stand-in", interval=1, timeout=1, healthy=2, unhealthy=2, idle=60)
# The ALB's thresholds and timeout at a shorter interval: what the timing test needs of it.
SCALED = Balancing("the ALB's thresholds, checking every 2 s", interval=2, timeout=ALB.timeout,
                       healthy=ALB.healthy, unhealthy=ALB.unhealthy, idle=ALB.idle)
# Mostly keep-alive clients, as a balancer's own connections to the hosts are, and a closing one.
THROUGH = (("GET", "/", True, 3), ("GET", "/db", True, 1), ("GET", "/whoami", True, 1),
           ("GET", "/", False, 1))
# Hosts per front to begin with (a third joins for the last test).
HOSTS = {"nginx": 2, "haproxy": 2}


class Named:
    """A host as the balancer's config names it (web-<i>, as the program does)."""

    def __init__(self, host, name: str):
        self.address, self.name = host.address, name


@pytest.fixture(scope="module", params=list(HOSTS))
def bed(request, testbed, tmp_path_factory):
    hosts = testbed.boot(HOSTS[request.param], prefix="b" + request.param[0])
    stack = new_stack(testbed, hosts, tmp_path_factory, front=request.param)
    stack.extra = {"deploy": {"drainSeconds": FAST.out_within + 1, "undrainSeconds": FAST.back_within}}
    stack.deploy()
    named = [Named(h, f"web-{i}") for i, h in enumerate(hosts)]
    balancer = StandIn(tmp_path_factory.mktemp("balancer"), testbed.bridge_address, named, FAST).start()
    for host in named:
        balancer.wait_until(host.name, "UP", FAST.back_within + 5)
    the_bed = {"stack": stack, "hosts": hosts, "named": named, "balancer": balancer,
               "tmp": tmp_path_factory, "front": request.param, "testbed": testbed}
    yield the_bed
    balancer.stop()
    testbed.destroy(*the_bed["hosts"])  # the third host too


def through(bed, change=None):
    """Deploy (after `change`, a function of the stack) under load through the balancer."""
    stack = bed["stack"]
    if change:
        change(stack)
    with mixed_load([bed["balancer"]], THROUGH) as stats:
        time.sleep(2)
        outcome = stack.deploy()
        time.sleep(2)
    assert stats["failed"] == 0 and stats["ok"] > 100, stats["errors"][:5]
    return outcome


def steps(outcome) -> list[str]:
    """The steps that ran, but the host key check (which runs whenever any of a host's do)."""
    return sorted({n.split("-", 3)[3] for n in outcome.ran} - {"hostkey"})


def drained(outcome) -> list[str]:
    return sorted(name for name, out in outcome.stdout.items() if "draining " in out)


def every_host(bed, step: str) -> list[str]:
    return [f"app-web-{i}-{step}" for i in range(len(bed["hosts"]))]


def test_the_stand_in_takes_a_host_out_and_back_by_the_albs_thresholds(bed):
    if bed["front"] != "nginx":  # the balancer's timing is its own, whatever the front: once is enough
        pytest.skip("the stand-in's timing is checked behind the Nginx front")
    alb = StandIn(bed["tmp"].mktemp("alb"), bed["balancer"].bridge_address, bed["named"], SCALED).start()
    try:
        for host in bed["named"]:
            alb.wait_until(host.name, "UP", SCALED.back_within + 5)
        bed["hosts"][1].ssh("sudo -n touch /run/app.drain")  # the health path answers 503
        try:
            assert get(bed["hosts"][1], "/healthz")[0] == 503 and get(bed["hosts"][1], "/")[0] == 200
            out = alb.wait_until("web-1", "DOWN", SCALED.out_within + 5)
            # not before the third failed check, nor much after it
            assert SCALED.interval * (SCALED.unhealthy - 1) - 1 <= out <= SCALED.out_within + 2, out
            assert {get(alb, "/whoami")[0] for _ in range(10)} == {200}
        finally:
            bed["hosts"][1].ssh("sudo -n rm -f /run/app.drain")
        back = alb.wait_until("web-1", "UP", SCALED.back_within + 5)
        assert SCALED.interval * (SCALED.healthy - 1) - 1 <= back <= SCALED.back_within + 2, back
    finally:
        alb.stop()


def test_a_release_through_the_balancer_fails_no_request_and_does_not_drain(bed):
    def change(stack):
        rocket = stack.app / "rocket.py"
        rocket.write_text(rocket.read_text().replace('return "Hello World!"', 'return "Hello, balancer!"'))

    outcome = through(bed, change)
    assert steps(outcome) == ["gate", "release", "upload"] and drained(outcome) == []
    wait_for(lambda: get(bed["balancer"], "/") == (200, "Hello, balancer!"), timeout=10)


def test_a_release_that_fails_its_preflight_leaves_the_balancer_serving_from_every_host(bed):
    """The first host's release cannot import: it stops before its switch, so the host never
    falters, the balancer never takes it out, and the other hosts are not touched."""
    stack = bed["stack"]
    rocket = stack.app / "rocket.py"
    working = rocket.read_text()
    taken_out = bed["balancer"].times_taken_out()
    rocket.write_text(working + "\nimport a_module_that_does_not_exist\n")
    try:
        with mixed_load([bed["balancer"]], THROUGH) as stats:
            time.sleep(2)
            outcome = stack.deploy(expect_failure=True)
            time.sleep(2)
    finally:
        rocket.write_text(working)
    assert outcome.failed.step == "app-web-0-release"
    assert "failed its check before the switch" in str(outcome.failed)
    assert not [n for n in outcome.ran if n.startswith("app-web-") and not n.startswith("app-web-0-")
                and n.endswith(("release", "configure", "gate", "env"))], outcome.ran
    assert stats["failed"] == 0 and stats["ok"] > 100, stats["errors"][:5]
    assert bed["balancer"].times_taken_out() == taken_out
    assert set(bed["balancer"].states().values()) == {"UP"}
    # The failed step deleted its archive: with the app put back, that copy is all that runs.
    assert [n for n in stack.deploy().ran if not n.endswith(("-upload", "-hostkey"))] == []


def test_a_change_that_reloads_the_front_drains_each_host_and_fails_no_request(bed):
    workers = max(1, int(bed["hosts"][0].ssh("nproc").stdout) // 2) + 1
    outcome = through(bed, lambda stack: stack.extra.update(frontWorkers=workers))
    assert "configure" in steps(outcome) and set(steps(outcome)) <= {"configure", "gate"}
    assert drained(outcome) == every_host(bed, "configure"), outcome.stdout


def test_a_change_that_restarts_the_app_drains_each_host_and_fails_no_request(bed):
    outcome = through(bed, lambda stack: stack.extra.update(app={"gracefulTimeout": 25}))
    assert "configure" in steps(outcome)  # (the release step runs too: it waits by that timeout)
    assert drained(outcome) == every_host(bed, "configure"), outcome.stdout
    assert "TimeoutStopSec=35" in bed["hosts"][0].ssh("cat /etc/systemd/system/app.service").stdout


def test_an_environment_change_drains_each_host_and_fails_no_request(bed):
    def change(stack):
        stack.extra["app"] = {**stack.extra.get("app", {}), "env": {"GREETING": "hi, balancer"}}

    outcome = through(bed, change)
    assert "env" in steps(outcome)
    assert [n for n in drained(outcome) if n.endswith("-env")] == every_host(bed, "env")


def test_a_change_only_gunicorn_reloads_for_and_a_deploy_of_nothing_do_not_drain(bed):
    outcome = through(bed, lambda stack: stack.extra.setdefault("app", {}).update(maxRequests=5000))
    assert steps(outcome) == ["configure", "gate"] and drained(outcome) == [], outcome.stdout
    started = time.monotonic()
    assert bed["stack"].deploy().ran == []
    assert time.monotonic() - started < FAST.out_within  # nothing waited


def test_a_third_host_joins_and_a_rolling_release_across_three_fails_no_request(bed):
    stack, balancer = bed["stack"], bed["balancer"]
    (joining,) = bed["testbed"].boot(1, prefix="c" + bed["front"][0])
    stack.hosts.append(joining)  # (bed["hosts"] is the stack's list)
    outcome = through(bed)  # the new host's first deploy, under the load on the other two
    assert outcome.ran and all(n.startswith("app-web-2-") for n in outcome.ran), outcome.ran
    bed["named"].append(Named(joining, "web-2"))
    balancer.add(bed["named"][-1])
    balancer.wait_until("web-2", "UP", FAST.back_within + 5)

    def change(stack):
        rocket = stack.app / "rocket.py"
        rocket.write_text(rocket.read_text().replace("Hello, balancer!", "Hello, three!"))

    outcome = through(bed, change)
    assert steps(outcome) == ["gate", "release", "upload"] and drained(outcome) == []
    assert [n for n in outcome.ran if n.endswith("-release")] == every_host(bed, "release")
    assert {get(balancer, "/")[1] for _ in range(6)} == {"Hello, three!"}
    assert all(int(row["stot"]) > 0 for row in balancer.stats().values())  # all three served
