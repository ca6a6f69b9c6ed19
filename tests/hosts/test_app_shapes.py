"""App shapes people really deploy (tests/apps), each by the documented settings alone, on real
test hosts (behind both fronts, or one: NGINX, HAPROXY): a package with an app factory, static
files inside it and no health route; an app whose own health route goes deeper; a shop on
PostgreSQL with Flask-Migrate migrations as the release command. And what a new user hits
first: a first deploy that fails its health check (the app writes logs to a relative folder of
the read-only release) leaves a host that passes its front's own check and serves nothing stale,
and the corrected deploy succeeds.
"""

from __future__ import annotations

import http.client
import json
import shutil
from pathlib import Path

import psycopg
import pytest

from tests.hosts.deploying import Stack, get, load
from tests.support.replay import Replayer, workdir
from tests.test_release import sdist

pytestmark = pytest.mark.hosts
APPS = Path(__file__).resolve().parents[1] / "apps"
# Both fronts are installed on a test host (as on a host that once ran the other): both must pass.
FRONT_CHECKS = "sudo -n nginx -t -q && sudo -n haproxy -c -q -f /etc/haproxy/haproxy.cfg"
# What a shape needs of the front is its static files and a clean first failure, tested with
# both; the rest (migrations, the venv reused, requirements, a renamed module) is the release
# step's, the same behind either: each of those runs behind one front, half with each.
NGINX, HAPROXY = (pytest.mark.parametrize("bed", [front], indirect=True) for front in ("nginx", "haproxy"))


@pytest.fixture(scope="module", params=("nginx", "haproxy"))
def bed(request, testbed, tmp_path_factory):
    """Two fresh hosts per front, and a folder to copy the app shapes into."""
    hosts = testbed.boot(2, prefix=f"s{request.param[0]}")
    yield {"front": request.param, "hosts": hosts, "dir": tmp_path_factory.mktemp(f"shapes-{request.param}")}
    testbed.destroy(*hosts)


def shape_stack(testbed, bed, shape: str, hosts: list, app: dict) -> Stack:
    """A stack deploying a copy of tests/apps/<shape> with a state of its own (a new stack)."""
    source = bed["dir"] / shape
    if not source.exists():
        shutil.copytree(APPS / shape, source)
    stack = Stack(testbed=testbed, hosts=hosts, app=source, database_url=testbed.postgres(),
                  replayer=Replayer(workdir()), front=bed["front"])
    stack.extra = {"app": app}
    return stack


def assert_clean(host, app_text: str) -> None:
    """What a host that never served the app must look like after a failed first deploy: as it
    was (a distribution's own front may still answer), with nothing of the app running."""
    assert host.ssh(FRONT_CHECKS, check=False).returncode == 0
    assert host.ssh("sudo -n find /etc/nginx/sites-enabled -xtype l").stdout == ""  # no dangling site
    assert host.ssh("systemctl show -p LoadState --value app.service app.socket").stdout.split() == [
        "not-found", "not-found"]
    assert host.ssh("pgrep -u app", check=False).stdout == ""  # no Gunicorn left running
    assert host.ssh("ls /etc/systemd/system/ | grep -c '^app\\.' || true").stdout.strip() == "0"
    try:
        _, body = get(host, "/")
    except OSError:
        body = ""  # nothing listens: fine, nothing stale either
    assert app_text not in body


def test_a_first_deploy_of_an_app_that_cannot_load_installs_nothing_and_the_fix_deploys(testbed, bed):
    host = bed["hosts"][0]
    # The blog logs to ./logs unless LOG_DIR says where: the release is read-only on a host.
    blog = shape_stack(testbed, bed, "blogpkg", [host], {"entry": "blog:create_app()"})
    failed = blog.deploy(expect_failure=True)
    message = str(failed.failed)
    assert failed.failed.step == "app-web-0-configure", message
    assert "PermissionError: [Errno 13] Permission denied: 'logs'" in message  # the app's own words
    assert "nothing was installed" in message and "LOG_DIR=/var/lib/app/logs" in message
    assert_clean(host, "<h1>Posts")

    blog.extra["app"]["env"] = {"GREETING": "hello", "LOG_DIR": "/var/lib/app/logs"}
    blog.extra["app"]["releaseCommand"] = "flask --app blog init-db"
    blog.deploy()
    assert get(host, "/healthz") == (200, "ok\n")  # the generated entry: the blog has no such route
    conn = http.client.HTTPConnection(host.address, 80, timeout=5)
    conn.request("POST", "/post", body="title=first&body=hi",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert conn.getresponse().status == 201
    conn.close()
    status, page = get(host, "/")
    assert status == 200 and "first" in page and "/static/style.css" in page
    status, css = get(host, "/static/style.css")
    assert status == 200 and ".post-59" in css
    assert "new post first" in host.ssh("sudo -n cat /var/lib/app/logs/blog.log").stdout
    assert host.ssh("sudo -n test -f /var/lib/app/instance/blog.sqlite", check=False).returncode == 0


def test_package_static_files_are_served_with_the_least_permissions(bed):
    host = bed["hosts"][0]
    release = host.ssh("readlink /srv/app/current").stdout.strip()
    modes = host.ssh(f"sudo -n stat -c '%A' {release}/blog {release}/blog/static "
                     f"{release}/blog/templates {release}/blog/__init__.py").stdout.split()
    assert modes[2:] == ["drwxr-x---", "-rw-r-----"]  # the rest of the release stays closed
    if bed["front"] == "haproxy":  # the app serves them: the front's user needs nothing
        assert modes[:2] == ["drwxr-x---", "drwxr-x---"]
        return
    assert modes[:2] == ["drwxr-x--x", "drwxr-xr-x"]  # Nginx may enter the package, read static/
    conn = http.client.HTTPConnection(host.address, 80, timeout=5)
    conn.request("GET", "/static/style.css", headers={"Accept-Encoding": "gzip"})
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 200 and response.getheader("Content-Encoding") == "gzip"
    assert response.getheader("Cache-Control") is not None  # from disk, with the front's headers


def test_a_first_deploy_that_fails_its_health_check_is_removed_and_the_fix_deploys(testbed, bed):
    """The app's own /healthz answers 503 without GREETING: the first config is removed again."""
    host = bed["hosts"][1]
    own = shape_stack(testbed, bed, "ownhealth", [host], {"entry": "service:app", "env": {}})
    own.extra["deploy"] = {"healthTimeout": 5}
    failed = own.deploy(expect_failure=True)
    message = str(failed.failed)
    assert failed.failed.step == "app-web-0-configure", message
    assert (f"configure on host web-0 ({host.address}): "
            "/healthz did not answer 200 within 5 s (last status 503)") in message
    assert "nothing of the app served here before, so there is nothing to go back to" in message
    for noise in ("not found", "Job for", "previous version"):
        assert noise not in message, message
    assert_clean(host, "own health app")

    own.extra["app"]["env"] = {"GREETING": "hello"}
    own.deploy()
    assert get(host, "/healthz") == (200, "checked by the app")
    assert get(host, "/") == (200, "own health app")


@NGINX
def test_a_shop_with_migrations_as_the_release_command_serves_from_postgresql(testbed, bed):
    # The same environment the blog and the health app had, so that the env step (which runs
    # before the release and restarts the app it finds) does not take away what they need.
    shop = shape_stack(testbed, bed, "migrations", bed["hosts"],
                       {"entry": "shop:create_app()", "releaseCommand": "flask --app shop db upgrade",
                        "env": {"GREETING": "hello", "LOG_DIR": "/var/lib/app/logs"}})
    with psycopg.connect(shop.database_url, autocommit=True) as conn:  # an earlier run's
        conn.execute("drop table if exists items, alembic_version")
    shop.deploy()
    with psycopg.connect(shop.database_url) as conn:
        assert conn.execute("select version_num from alembic_version").fetchall() == [("0001",)]
    first, second = bed["hosts"]
    conn = http.client.HTTPConnection(first.address, 80, timeout=5)
    conn.request("POST", "/add/anvil")
    assert conn.getresponse().status == 201
    conn.close()
    for host in bed["hosts"]:  # one database for every host
        assert get(host, "/") == (200, '{"items":["anvil"]}\n'), host.name
    # Migrations are idempotent: running every step again (a fresh state) upgrades nothing.
    shop.replayer.state.clear()
    shop.deploy()
    assert get(second, "/") == (200, '{"items":["anvil"]}\n')


@NGINX
def test_a_code_change_reuses_the_venv_of_the_release_it_replaces(testbed, bed):
    """Same dependencies: the new release's venv is a hard-linked copy of the previous one's,
    with its scripts pointing at the new release (the release command runs `flask` from it)."""
    first = bed["hosts"][0]
    shop = shape_stack(testbed, bed, "migrations", bed["hosts"],
                       {"entry": "shop:create_app()", "releaseCommand": "flask --app shop db upgrade",
                        "env": {"GREETING": "hello", "LOG_DIR": "/var/lib/app/logs"}})
    shop.deploy()  # a fresh state: every step runs again, nothing changes
    old = first.ssh("readlink /srv/app/current").stdout.strip()
    init = shop.app / "shop" / "__init__.py"
    init.write_text(init.read_text().replace("items=[", "shop_items=["))
    outcome = shop.deploy()
    print(f"\n{bed['front']}: release step of a code change: "
          f"{outcome.seconds['app-web-0-release']:.1f} s (web-0, with the release command), "
          f"{outcome.seconds['app-web-1-release']:.1f} s (web-1)")
    new = first.ssh("readlink /srv/app/current").stdout.strip()
    assert new != old
    site = "venv/lib/python3.11/site-packages/flask/__init__.py"
    inodes = first.ssh(f"sudo -n stat -c %i {old}/{site} {new}/{site}").stdout.split()
    assert inodes[0] == inodes[1], "the new release installed its dependencies again"
    assert first.ssh(f"sudo -n head -n 1 {new}/venv/bin/flask").stdout.strip() == f"#!{new}/venv/bin/python"
    for host in bed["hosts"]:
        assert get(host, "/") == (200, '{"shop_items":["anvil"]}\n'), host.name


@HAPROXY
def test_an_sdist_only_requirement_and_one_behind_a_marker_for_the_hosts_python(testbed, bed, tmp_path):
    """This machine's Python is not the hosts' (3.11.2 on Debian 12): the marker is judged for
    theirs, and the sdist becomes a wheel here."""
    host = bed["hosts"][1]
    links = tmp_path / "links"
    links.mkdir()
    sdist(links, "mailish", "0.9.1")
    sdist(links, "oldtimer", "4.0.3")
    vendored = shape_stack(testbed, bed, "vendored", [host], {"entry": "notes:app"})
    (vendored.app / "requirements.txt").write_text(
        f"--find-links {links}\nflask==3.1.3\nmailish==0.9.1\n"
        'oldtimer==4.0.3 ; python_full_version <= "3.11.2"\n')
    vendored.deploy()
    status, body = get(host, "/")
    assert status == 200, body
    assert json.loads(body) == {"python": "3.11.2", "mailish": "0.9.1", "oldtimer": "4.0.3"}


@HAPROXY
def test_a_renamed_module_and_its_new_entry_switch_together(testbed, bed):
    """app.entry changes with the code (the module renamed): the release step switches the WSGI
    entry with the release, so the new workers import the new module; the previous release
    and entry still serve until then."""
    host = bed["hosts"][1]
    own = shape_stack(testbed, bed, "ownhealth", [host], {"entry": "service:app"})
    own.deploy()
    assert get(host, "/") == (200, "own health app")
    (own.app / "service.py").rename(own.app / "portal.py")
    own.extra["app"]["entry"] = "portal:app"
    with load([host], "/healthz") as stats:
        own.deploy()
    assert stats["failed"] == 0 and stats["ok"] > 10, stats["errors"][:5]
    assert get(host, "/") == (200, "own health app")
    assert "portal" in host.ssh("sudo -n cat /etc/app/flaskstack_wsgi.py").stdout
