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
        "web-0/etc/nginx/nginx.conf",
        "web-0/etc/nginx/sites-available/app.conf",
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
