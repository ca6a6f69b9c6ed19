"""The default app (app/rocket.py) that a new stack deploys."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parent.parent / "app"


@pytest.fixture
def client(monkeypatch):
    monkeypatch.syspath_prepend(str(APP_DIR))
    sys.modules.pop("rocket", None)
    import rocket

    return rocket.app.test_client()


def test_hello_and_health(client):
    assert client.get("/").get_data(as_text=True) == "Hello World!"
    response = client.get("/healthz")
    assert response.status_code == 200


def test_database_route_without_a_database(client, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    response = client.get("/db")
    assert response.status_code == 503
    assert response.get_json() == {"database": "not configured"}


def test_database_route_when_the_database_does_not_answer(client, monkeypatch):
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:secret@127.0.0.1:{port}/app")
    response = client.get("/db")
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"] == "unreachable"
    assert "secret" not in response.get_data(as_text=True)


def test_whoami_reports_what_the_app_sees(client):
    body = client.get("/whoami", environ_base={"REMOTE_ADDR": "198.51.100.7"}).get_json()
    assert body == {"remote_addr": "198.51.100.7", "scheme": "http", "host": "localhost"}


def test_app_declares_its_own_requirements():
    requirements = (APP_DIR / "requirements.txt").read_text().split()
    assert any(r.startswith("flask==") for r in requirements)
    assert any(r.startswith("psycopg[binary]==") for r in requirements)
