"""What a release's venv installs (stack/release.py): the app's requirements plus Gunicorn, and
for gevent workers what Gunicorn's gevent worker imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import release, settings

RAW = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]}, "ssh": {"user": "deploy"}}


def requirements(tmp_path: Path, app_requirements: str, **app) -> list[str]:
    (tmp_path / "rocket.py").write_text("app = None\n")
    (tmp_path / "requirements.txt").write_text(app_requirements)
    raw = {**RAW, "app": {"path": str(tmp_path), **app}}
    loaded = settings.load(raw, stack="dev", project_dir=tmp_path, offline=True)
    return release.requirements_text(loaded).splitlines()


def test_gthread_and_sync_get_plain_gunicorn(tmp_path):
    assert requirements(tmp_path, "flask\n") == ["-r ../requirements.txt", release.GUNICORN]
    assert requirements(tmp_path, "flask\n", workerClass="sync")[1:] == [release.GUNICORN]


def test_gevent_gets_gunicorns_gevent_extra_and_a_pinned_gevent(tmp_path):
    # Gunicorn's gevent worker imports `packaging`, which only the extra brings: without it the
    # service does not start ("class uri 'gevent' invalid or not found").
    assert requirements(tmp_path, "flask\n", workerClass="gevent")[1:] == [
        "gunicorn[gevent]==27.0.1", release.GEVENT]


@pytest.mark.parametrize(("own", "added"), [
    ("flask\ngunicorn==23.0.0\n", ["packaging", release.GEVENT]),
    ("flask\ngunicorn[gevent]==23.0.0\npackaging\ngevent==24.11.1\n", []),
])
def test_an_app_pinning_gunicorn_itself_gets_only_what_gevent_needs(tmp_path, own, added):
    assert requirements(tmp_path, own, workerClass="gevent")[1:] == added
