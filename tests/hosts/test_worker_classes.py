"""Each Gunicorn worker class deployed by the program onto a real host: the release's venv has
what the class imports (gevent's worker needs `packaging`, which plain gunicorn lacks), the
service starts, the workers run that class and the app reaches PostgreSQL through it.
(test_deploy.py covers the default, gthread, in depth.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.hosts.test_deploy import get
from tests.support.mocks import run_program
from tests.support.replay import Replayer, workdir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("worker_class", ["gevent", "sync"])
def test_the_worker_class_serves_the_app(testbed, host, database_url, tmp_path, worker_class):
    app = tmp_path / "app"
    shutil.copytree(ROOT / "app", app, ignore=shutil.ignore_patterns("__pycache__"))
    config = {"platform": "existing",
              "hosts": {"addresses": [host.address], "hostKeys": {host.address: testbed.host_key(host)}},
              "ssh": {"user": "deploy", "privateKey": testbed.private_key},
              "database": {"url": database_url},
              "app": {"path": str(app), "workerClass": worker_class}}
    run = run_program(config, stack="classes", secret_keys=("ssh", "database"))
    outcome = Replayer(workdir()).replay(run)
    assert outcome.failed is None, str(outcome.failed)
    assert get(host, "/") == (200, "Hello World!")
    status, body = get(host, "/db")
    assert status == 200 and json.loads(body)["database"] == "ok", body
    conf = host.ssh("sudo -n cat /etc/app/gunicorn.conf.py").stdout
    assert f'worker_class = "{worker_class}"' in conf
    cpus = int(host.ssh("nproc").stdout)
    workers = host.ssh("sudo -n sh -c 'ps -o pid= --ppid $(systemctl show -p MainPID --value app)'")
    expected = cpus * 2 + 1 if worker_class == "sync" else cpus + 1
    assert len(workers.stdout.split()) == expected, workers.stdout
