"""The real program (stack/program.py, run by __main__.py) under Pulumi's mocks."""

from __future__ import annotations

import datetime
import runpy
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest

from tests.support.mocks import RecordingMonitor, StrictMocks, run_program, set_config

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAtest\n-----END OPENSSH PRIVATE KEY-----"


def good_config() -> dict:
    return {
        "platform": "existing",
        "hosts": {"addresses": ["203.0.113.10", "203.0.113.11"]},
        "ssh": {"user": "deploy", "privateKey": PRIVATE_KEY},
        "database": {"url": "postgresql://app:pw@db.internal/app"},
    }


def test_config_errors_stop_the_program_cleanly_and_name_every_key():
    config = good_config()
    config["hosts"] = {"addresses": ["203.0.113.10"], "count": "two", "imag": "debian-12"}
    config["app"] = {"listen": "0.0.0.0:8000"}
    with pytest.raises(pulumi.RunError) as caught:
        run_program(config, secret_keys=("ssh", "database"))
    message = str(caught.value)
    assert "flask-stack:hosts.imag: unknown key" in message
    assert "flask-stack:app.listen: Gunicorn must listen on loopback only" in message
    assert "Traceback" not in message


def test_secrets_given_in_plain_text_are_refused_without_showing_them():
    with pytest.raises(pulumi.RunError) as caught:
        run_program(good_config(), secret_keys=())  # ssh and database not marked secret
    message = str(caught.value)
    assert "flask-stack:ssh.privateKey: is stored in plain text" in message
    assert "flask-stack:database.url: is stored in plain text" in message
    assert "AAAAtest" not in message and "pw@db" not in message


def test_main_module_runs_the_program():
    monitor = RecordingMonitor(StrictMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project="flask-stack", stack="test", preview=False,
                             monitor=monitor)
    set_config({"platform": "bogus"})
    with pytest.raises(pulumi.RunError, match="flask-stack:platform: must be one of"):
        runpy.run_path(str(ROOT / "__main__.py"))


def test_pulumi_aws_is_not_imported_for_other_platforms():
    config = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]},
              "ssh": {"user": "deploy", "privateKey": PRIVATE_KEY}}
    code = (
        "import sys, pulumi\n"
        "from tests.support.mocks import run_program\n"
        "try:\n"
        f"    run_program({config!r}, secret_keys=('ssh',))\n"
        "except pulumi.RunError:\n"
        "    pass\n"
        "print('pulumi_aws' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_a_review_stack_past_its_expiry_is_not_deployed(monkeypatch):
    """The cleanup job may destroy such a stack at any moment: `pulumi up` says so first."""
    from stack.settings import lifecycle
    from tests.support.mocks import REVIEW_EXPIRY

    monkeypatch.setattr(lifecycle, "now", lambda: datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC))
    with pytest.raises(pulumi.RunError) as caught:
        run_program(good_config(), stack="pr-12", secret_keys=("ssh", "database"))
    assert f"flask-stack:expiresAt: {REVIEW_EXPIRY} is in the past" in str(caught.value)
