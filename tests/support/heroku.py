"""Settings of a `platform: heroku` stack for the tests of the dyno archive (stack/dyno.py).

Made from an `existing` stack's settings with the Heroku section put in (dataclasses.replace),
so these tests do not wait for the loader's heroku rules; hosts.python is Heroku's major.minor.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from stack import settings
from stack.settings.schema import HEROKU, Heroku

RAW = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]}, "ssh": {"user": "deploy"}}


def dyno_settings(project_dir: Path, app: dict, *, python: str = "3.11", stack: str = "heroku-24",
                  domain: dict | None = None, deploy: dict | None = None) -> settings.Settings:
    raw = {**RAW, "app": app, "domain": domain or {}, "deploy": deploy or {}}
    loaded = settings.load(raw, stack="dev", project_dir=project_dir, offline=True)
    return replace(loaded, platform=HEROKU, heroku=Heroku("flask-stack-dev", None, stack),
                   hosts=replace(loaded.hosts, python=python))
