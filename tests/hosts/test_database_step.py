"""The database step (DigitalOcean's managed PostgreSQL creates the app's user with no rights):
the exact script the program declares, run over SSH on a real host against a real PostgreSQL
set up the way the managed service is: an administrator that is not a superuser, a database it
owns, and an app user that may not create anything in it."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import pytest

from stack import scripts, settings
from tests.hosts.harness import HostCommandError, Testbed, TestHost
from tests.support.stacks import REPO_ROOT

ADMIN, DATABASE, USER = "doadmin_test", "shop", "shopper"


@pytest.fixture(scope="module")
def managed(testbed: Testbed) -> dict[str, str]:
    """A database laid out like DigitalOcean's, on the testbed's PostgreSQL (15+: only the
    database owner may create in the public schema)."""
    url = urlsplit(testbed.postgres())
    admin_pw, user_pw = secrets.token_hex(12), secrets.token_hex(12)
    testbed.pg.sql(f"CREATE ROLE {ADMIN} LOGIN CREATEDB CREATEROLE PASSWORD :'a';\n"
                   f"CREATE ROLE {USER} LOGIN PASSWORD :'u';\n"
                   f"CREATE DATABASE {DATABASE} OWNER {ADMIN};\n",
                   variables={"a": admin_pw, "u": user_pw})
    testbed.pg.sql(f"REVOKE ALL ON DATABASE {DATABASE} FROM PUBLIC;\n", database=DATABASE)
    return {"host": url.hostname or "", "port": str(url.port), "admin_pw": admin_pw, "user_pw": user_pw}


def step_settings() -> settings.Settings:
    raw = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]}, "ssh": {"user": "deploy"}}
    return settings.load(raw, stack="test", project_dir=REPO_ROOT, offline=True)


def admin_env(db: dict[str, str], port: str | None = None) -> str:
    # The managed service requires TLS (PGSSLMODE=require); the test server has none.
    return (f"PGHOST={db['host']}\nPGPORT={port or db['port']}\nPGUSER={ADMIN}\n"
            f"PGPASSWORD={db['admin_pw']}\nPGSSLMODE=prefer\n")


def as_app_user(host: TestHost, db: dict[str, str], sql: str):
    return host.ssh(f"PGPASSWORD={db['user_pw']} psql -X -q -v ON_ERROR_STOP=1 -h {db['host']} "
                    f"-p {db['port']} -U {USER} -d {DATABASE} -c '{sql}'", check=False)


def test_the_app_user_may_create_its_tables_only_after_the_step(host: TestHost, managed):
    before = as_app_user(host, managed, "CREATE TABLE early (id int)")
    assert before.returncode != 0, "the app user could already create tables: the test proves nothing"

    line = scripts.as_root(step_settings(), scripts.database(step_settings(), host.name, DATABASE, USER))
    first = host.ssh(line, input=admin_env(managed))
    assert f"user {USER} may create its tables" in first.stdout
    created = as_app_user(host, managed, "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
    assert created.returncode == 0, created.stderr

    again = host.ssh(line, input=admin_env(managed))  # a second deploy runs it again: no harm
    assert again.returncode == 0
    assert as_app_user(host, managed, "SELECT count(*) FROM orders").returncode == 0
    assert managed["admin_pw"] not in first.stdout + first.stderr + again.stdout + again.stderr


def test_an_unreachable_database_fails_the_step_naming_it(host: TestHost, managed):
    script = scripts.database(step_settings(), host.name, DATABASE, USER, wait_seconds=4)
    with pytest.raises(HostCommandError) as caught:
        host.ssh(scripts.as_root(step_settings(), script), input=admin_env(managed, port="1"), timeout=60)
    message = caught.value.stderr
    assert f"database on host {host.name}" in message
    assert f"cannot reach the database at {managed['host']}:1 (database {DATABASE}) as {ADMIN}" in message
    assert managed["admin_pw"] not in message
