"""`python -m stack diff`: a reviewer sees exactly the host-file lines a change makes, no secret."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import copy_project

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("stack", "templates", "app", "Pulumi.yaml", "Pulumi.dev.yaml")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    """A copy of the project in a fresh git repository with one commit on main."""
    repo = copy_project(tmp_path / "project", COPIED)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base")
    return repo


def diff(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stack", "diff", "dev", *args], cwd=repo,
                          capture_output=True, text=True, timeout=300)


def changed_lines(output: str) -> list[str]:
    return [line for line in output.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_no_change_says_so(repo):
    result = diff(repo, "--exit-code")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "stack dev: no host file changes against main\n"


def test_a_template_change_shows_exactly_the_changed_lines(repo):
    template = repo / "templates/nginx/nginx.conf.j2"
    text = template.read_text()
    assert "server_tokens off;" in text
    template.write_text(text.replace("server_tokens off;", "server_tokens off;\n    # reviewed"))
    result = diff(repo, "--exit-code")
    assert result.returncode == 1, result.stderr
    assert "--- a/web-0/etc/nginx/nginx.conf" in result.stdout
    assert "+++ b/web-0/etc/nginx/nginx.conf" in result.stdout
    assert changed_lines(result.stdout) == ["+    # reviewed"]
    # What the change sets off comes from the host-file table (stack/hostfiles.py).
    assert "  /etc/nginx/nginx.conf: the configure step installs it; Nginx reloads\n" in result.stdout
    assert result.stdout.rstrip().endswith("1 file change on 1 host (a/ = main, b/ = working tree)")


def test_a_stack_file_change_shows_in_every_file_it_touches(repo):
    stack_file = repo / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace(
        "      FLASK_ENV_NAME: dev",
        "      FLASK_ENV_NAME: dev\n      STRIPE_PUBLISHABLE_KEY: pk-value-8d2e\n      GREETING: hello"))
    result = diff(repo)
    assert result.returncode == 0, result.stderr
    # A name that says key is masked, although app.env may hold it (a publishable key is
    # meant to be public; credential names are refused by the settings).
    assert changed_lines(result.stdout) == ['+GREETING="hello"', "+STRIPE_PUBLISHABLE_KEY=<masked>"]
    assert "pk-value-8d2e" not in result.stdout
    assert "  /etc/app/app.env: the env step installs it; the app restarts\n" in result.stdout


def test_a_changed_masked_value_is_flagged_without_showing_it(repo):
    stack_file = repo / "Pulumi.dev.yaml"
    original = stack_file.read_text()
    stack_file.write_text(original.replace("      FLASK_ENV_NAME: dev",
                                           "      FLASK_ENV_NAME: dev\n      SENTRY_DSN: old-8c1"))
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-am", "pw")
    stack_file.write_text(stack_file.read_text().replace("old-8c1", "new-4b7"))
    result = diff(repo)
    assert changed_lines(result.stdout) == ["-SENTRY_DSN=<masked>", "+SENTRY_DSN=<masked> (changed)"]
    assert "old-8c1" not in result.stdout and "new-4b7" not in result.stdout


def test_a_stack_new_since_the_base_shows_every_file_as_new(repo):
    shutil.copy2(ROOT / "examples/existing-minimal.yaml", repo / "Pulumi.staging.yaml")
    result = subprocess.run([sys.executable, "-m", "stack", "diff", "staging"], cwd=repo,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "--- /dev/null" in result.stdout and "+++ b/web-0/etc/nginx/nginx.conf" in result.stdout
    assert "note: at main, Pulumi.staging.yaml does not exist there" in result.stdout


def test_an_unknown_base_is_a_clear_error(repo):
    result = diff(repo, "--base", "no-such-branch")
    assert result.returncode == 2
    assert "--base no-such-branch: no such commit, branch or tag" in result.stderr
