"""The two things a new user runs first: `python -m stack render|check` and bin/deploy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_render_writes_every_host_file(tmp_path):
    result = run([sys.executable, "-m", "stack", "render", "dev", "--out", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [
        "web-0/etc/app/app.env",
        "web-0/etc/app/flaskstack_wsgi.py",
        "web-0/etc/app/gunicorn.conf.py",
        "web-0/etc/app/report-failure",
        "web-0/etc/nginx/nginx.conf",
        "web-0/etc/nginx/sites-available/app.conf",
        "web-0/etc/ssh/sshd_config.d/10-flask-stack.conf",
        "web-0/etc/systemd/system/app.failed@.service",
        "web-0/etc/systemd/system/app.service",
        "web-0/etc/systemd/system/app.socket",
    ]
    # The dev stack leaves the SSH values to the user: render works and says what a deploy needs.
    assert "ssh.privateKey" in result.stderr


def test_render_prints_files_with_their_host_and_path():
    result = run([sys.executable, "-m", "stack", "render", "dev"])
    assert result.returncode == 0, result.stderr
    assert "==> web-0:/etc/nginx/sites-available/app.conf <==" in result.stdout
    assert "proxy_set_header X-Forwarded-Proto" in result.stdout


def write_stack(directory: Path, body: str) -> None:
    shutil.copytree(ROOT / "app", directory / "app")
    (directory / "Pulumi.bad.yaml").write_text(body)


def test_bad_config_exits_2_with_every_error_and_no_traceback(tmp_path):
    write_stack(tmp_path, "config:\n  flask-stack:platform: aws\n  flask-stack:hosts:\n"
                          "    count: two\n  flask-stack:front: apache\n")
    result = run([sys.executable, "-m", "stack", "render", "bad", "--dir", str(tmp_path)])
    assert result.returncode == 2
    assert "flask-stack:hosts.count: must be a whole number from 1 to 100, got \"two\"" in result.stderr
    assert "flask-stack:front: must be one of nginx, haproxy" in result.stderr
    assert "flask-stack:region: is required" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_broken_yaml_and_unknown_stack_are_clear(tmp_path):
    write_stack(tmp_path, "config: [unclosed\n")
    result = run([sys.executable, "-m", "stack", "render", "bad", "--dir", str(tmp_path)])
    assert result.returncode == 2 and "Pulumi.bad.yaml: not valid YAML" in result.stderr
    result = run([sys.executable, "-m", "stack", "render", "nosuch", "--dir", str(tmp_path)])
    assert result.returncode == 2 and "no such stack file" in result.stderr and "bad" in result.stderr


def test_check_lists_what_a_deploy_still_needs():
    result = run([sys.executable, "-m", "stack", "check", "dev"])
    assert result.returncode == 2
    for key in ("ssh.publicKey", "ssh.privateKey", "ssh.adminCidrs"):
        assert f"flask-stack:{key}" in result.stderr
    assert result.stdout == ""


APPS = Path(__file__).resolve().parent / "apps"


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyR6E6TISzLkMABixy6N+k0E449lzgYW4KdaRZsjbn9"


def existing_stack(directory: Path, shape: str, hosts: int, app: str) -> None:
    shutil.copytree(APPS / shape, directory / shape)
    addresses = "".join(f"      - 203.0.113.{10 + i}\n" for i in range(hosts))
    (directory / "Pulumi.shop.yaml").write_text(
        "config:\n  flask-stack:platform: existing\n  flask-stack:hosts:\n    addresses:\n"
        f"{addresses}  flask-stack:ssh:\n    user: deploy\n    hostKey: {HOST_KEY}\n"
        "    privateKey:\n      secure: AAABAx\n"
        f"  flask-stack:app:\n    path: {shape}\n{app}")


def test_check_says_what_the_health_check_exercises_and_where_static_files_and_state_live(tmp_path):
    existing_stack(tmp_path, "blogpkg", 2,
                   "    entry: blog:create_app()\n    releaseCommand: flask --app blog init-db\n")
    result = run([sys.executable, "-m", "stack", "check", "shop", "--dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "existing\n"  # bin/deploy reads the platform from stdout
    lines = result.stderr.splitlines()
    warned = "warning: flask-stack:database.url: not set, with 2 hosts"
    assert any(line.startswith(warned) and "SQLite" in line for line in lines), result.stderr
    assert "the app has no route for it (no '/healthz' in its code), so the generated WSGI entry answers" \
        in result.stderr
    assert "note: static files: /static/ from blog/static/ in the app; Nginx serves them from disk" in lines
    assert "runs once per rollout, on the first host, so it must be safe to run again" in result.stderr


def test_check_names_the_apps_own_health_route(tmp_path):
    existing_stack(tmp_path, "ownhealth", 1, "    entry: service:app\n")
    result = run([sys.executable, "-m", "stack", "check", "shop", "--dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    assert "the app's own route answers it (found '/healthz' in service.py)" in result.stderr
    assert "warning:" not in result.stderr  # one host: its own state is the whole state
    assert "no static folder found" in result.stderr


def test_deploy_without_cli_or_credentials_says_what_to_install_and_set(tmp_path):
    # No pulumi on PATH, no cloud credentials, a HOME without ~/.pulumi or ~/.aws.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "DIGITALOCEAN_", "PULUMI_"))}
    env["HOME"] = str(tmp_path)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not (Path(p) / "pulumi").exists())
    result = run(["bash", str(ROOT / "bin" / "deploy"), "dev"], env=env)
    assert result.returncode == 1
    assert "Cannot preview stack 'dev' yet. Missing:" in result.stderr
    assert "curl -fsSL https://get.pulumi.com | sh" in result.stderr
    assert "export DIGITALOCEAN_TOKEN=" in result.stderr
    assert "flask-stack:ssh.privateKey" in result.stderr
    assert "Traceback" not in result.stderr


def heroku_stack(directory: Path) -> None:
    shutil.copytree(ROOT / "app", directory / "app")
    shutil.copy(ROOT / "examples" / "heroku-complete.yaml", directory / "Pulumi.hk.yaml")


def test_render_of_a_heroku_stack_shows_the_archives_generated_files(tmp_path):
    heroku_stack(tmp_path)
    out = tmp_path / "out"
    result = run([sys.executable, "-m", "stack", "render", "hk", "--dir", str(tmp_path),
                  "--out", str(out)])
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["heroku/.flaskstack/flaskstack_wsgi.py", "heroku/.flaskstack/gunicorn.conf.py",
                       "heroku/.python-version", "heroku/Procfile"]
    assert (out / "heroku/Procfile").read_text().splitlines()[1] == 'release: python -c "import rocket"'
    assert "no host files" in result.stderr and "secrets.env" not in result.stderr


def test_check_of_a_heroku_stack_speaks_of_dynos_not_hosts(tmp_path):
    heroku_stack(tmp_path)
    result = run([sys.executable, "-m", "stack", "check", "hk", "--dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "heroku"
    assert "a dyno's files vanish" in result.stderr and "Nginx serves" not in result.stderr


def test_diff_of_a_heroku_stack_says_a_change_is_a_new_build(tmp_path):
    from stack import diff

    heroku_stack(tmp_path)
    said = diff.consequences("hk", tmp_path, [".flaskstack/gunicorn.conf.py"])
    assert "builds it on Heroku" in said and "preboot" in said and "step installs" not in said


def test_deploy_of_a_heroku_stack_asks_for_the_heroku_api_key_only(tmp_path):
    from tests.support.project import copy_project

    root = copy_project(tmp_path / "project", ("bin", "stack", "app", "Pulumi.yaml", "requirements.txt",
                                                 "requirements.lock", "requirements-build.lock"))
    shutil.copy(ROOT / "examples" / "heroku-minimal.yaml", root / "Pulumi.hk.yaml")
    (root / ".venv").symlink_to(ROOT / ".venv")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "DIGITALOCEAN_", "PULUMI_", "HEROKU_"))}
    env["HOME"] = str(tmp_path)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not (Path(p) / "pulumi").exists())
    result = run(["bash", str(root / "bin" / "deploy"), "hk"], cwd=root, env=env)
    assert result.returncode == 1, result.stderr
    assert "export HEROKU_API_KEY=\"$(heroku authorizations:create --short" in result.stderr
    assert "ssh." not in result.stderr and "DIGITALOCEAN" not in result.stderr
