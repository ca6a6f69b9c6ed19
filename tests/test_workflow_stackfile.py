"""Stack files as the workflows write them (workflow/stackfile.py): the keys built from settings
paths mean what the settings loader reads, and a file is written only when the loader accepts it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stack import settings
from workflow import WorkflowError, stackfile

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples/review.yaml"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workflow", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def project(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "app").symlink_to(ROOT / "app")
    return directory


# -- keys ---------------------------------------------------------------------------------------
def test_a_settings_path_is_the_project_key_and_the_keys_below_it():
    assert stackfile.key("ssh.adminCidrs") == (f"{settings.PROJECT}:ssh", ("adminCidrs",))
    assert stackfile.key("expiresAt") == (f"{settings.PROJECT}:expiresAt", ())
    assert stackfile.key("app.env.APP_ENV") == (f"{settings.PROJECT}:app", ("env", "APP_ENV"))
    for bad in ("", "ssh.", ".ssh", "ssh..adminCidrs"):
        with pytest.raises(ValueError, match="not a settings path"):
            stackfile.key(bad)


# (settings path, value put there, what the loaded Settings hold)
PUT = [
    ("ssh.adminCidrs", ["198.51.100.0/24"], lambda s: s.ssh.admin_cidrs == ("198.51.100.0/24",)),
    ("network.vpcCidr", "10.128.9.0/24", lambda s: s.network.vpc_cidr == "10.128.9.0/24"),
    ("expiresAt", "2026-12-01T18:00:00Z", lambda s: s.expires_at == "2026-12-01T18:00:00Z"),
    ("app.env.GREETING", "hello", lambda s: ("GREETING", "hello") in s.app.env),
    ("deploy.healthPath", "/up", lambda s: s.deploy.health_path == "/up"),
]


def test_keys_put_by_path_are_the_ones_the_loader_reads(tmp_path):
    document = yaml.safe_load(TEMPLATE.read_text())
    for path, value, _ in PUT:
        stackfile.put(document["config"], path, value)
    stackfile.put(document["config"], "ssh.publicKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDiDpa+Q74"
                                                       "+gxFHdYkOMZHcBd7Av8W6x+bGgQA6CO2Df a@b")
    written = stackfile.write(project(tmp_path), "pr-9", document, "test")
    raw = settings.read_stack_file(written)  # the loader's view: prefix off, sections nested
    loaded = settings.from_stack_file("pr-9", tmp_path)
    for path, value, holds in PUT:
        node = raw
        for name in path.split("."):
            node = node[name]
        assert node == value == stackfile.get(document["config"], path), path
        assert holds(loaded), path
    assert ("APP_ENV", "review") in loaded.app.env  # the template's other keys in that section stay


def test_put_copies_the_sections_it_changes_and_keeps_their_order():
    template = {"flask-stack:ssh": {"publicKey": "k", "bastion": {"host": "b"}}, "flask-stack:region": "r"}
    config = dict(template)
    stackfile.put(config, "ssh.bastion.user", "jump")
    assert config["flask-stack:ssh"] == {"publicKey": "k", "bastion": {"host": "b", "user": "jump"}}
    assert template["flask-stack:ssh"] == {"publicKey": "k", "bastion": {"host": "b"}}  # not edited
    assert list(config) == ["flask-stack:ssh", "flask-stack:region"]
    stackfile.put(config, "network.vpcCidr", "10.0.0.0/24")
    assert config["flask-stack:network"] == {"vpcCidr": "10.0.0.0/24"}
    assert stackfile.get(config, "ssh.bastion.user") == "jump"
    assert stackfile.get(config, "ssh.nothing.here", "default") == "default"
    assert stackfile.get(config, "region.sub") is None  # a value with no keys below it


def test_put_refuses_to_set_a_key_inside_a_value():
    with pytest.raises(WorkflowError, match="region holds no keys"):
        stackfile.put({"flask-stack:region": "fra1"}, "region.name", "x")


# -- every file written is validated by the loader ------------------------------------------------
def test_a_template_that_makes_an_invalid_file_writes_nothing(tmp_path):
    bad = yaml.safe_load(TEMPLATE.read_text())
    bad["config"]["flask-stack:database"]["sizee"] = "db-s-1vcpu-1gb"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    project(tmp_path / "p")
    result = cli("review-config", "pr-3", "--template", str(tmp_path / "bad.yaml"),
                 "--dir", str(tmp_path / "p"))
    assert result.returncode == 2
    assert result.stderr.startswith("workflow review-config: Pulumi.pr-3.yaml as it would be written "
                                    "does not load, so it is not written:\nstack 'pr-3': 1 config error:")
    assert 'flask-stack:database.sizee: unknown key; did you mean "size"?' in result.stderr
    assert not (tmp_path / "p/Pulumi.pr-3.yaml").exists()


def test_an_invalid_file_is_left_as_it_was_and_the_report_names_the_project(tmp_path):
    original = "# as committed\nconfig:\n  flask-stack:platform: digitalocean\n  flask-stack:region: fra1\n"
    (tmp_path / "Pulumi.staging.yaml").write_text(original)  # no app folder here
    result = cli("allow-ssh-from", "staging", "198.51.100.23", "--dir", str(tmp_path))
    assert result.returncode == 2
    assert f"app is not a directory (looked at {tmp_path}/app)" in result.stderr  # not the scratch copy
    assert (tmp_path / "Pulumi.staging.yaml").read_text() == original


def test_paths_that_go_up_from_the_project_are_checked_from_the_project(tmp_path):
    """A monorepo: the Pulumi project in infra/, the app beside it in the same repository."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "shared-app").symlink_to(ROOT / "app")
    (tmp_path / "infra").mkdir()
    document = yaml.safe_load((ROOT / "examples/digitalocean-minimal.yaml").read_text())
    stackfile.put(document["config"], "app.path", "../shared-app")
    (tmp_path / "infra/Pulumi.staging.yaml").write_text(yaml.safe_dump(document))
    result = cli("allow-ssh-from", "staging", "198.51.100.23", "--dir", str(tmp_path / "infra"))
    assert result.returncode == 0, result.stderr
    assert settings.from_stack_file("staging", tmp_path / "infra").ssh.admin_cidrs[-1] == "198.51.100.23/32"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git", "infra", "shared-app"]  # no scratch
