"""Settings of a `platform: heroku` stack for the tests of the dyno archive (stack/dyno.py), as
the loader reads a stack file: hosts.python is Heroku's major.minor (the tests set one this
machine has, so the archive's venv can be made), heroku.stack the dynos' base image."""

from __future__ import annotations

from pathlib import Path

from stack import settings


def dyno_settings(project_dir: Path, app: dict, *, python: str = "3.11", stack: str = "heroku-24",
                  domain: dict | None = None, deploy: dict | None = None) -> settings.Settings:
    raw = {"platform": "heroku", "heroku": {"stack": stack}, "hosts": {"python": python},
           "app": app, "domain": domain or {}, "deploy": deploy or {}}
    return settings.load(raw, stack="dev", project_dir=project_dir, offline=True)
