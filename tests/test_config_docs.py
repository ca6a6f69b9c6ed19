"""Pulumi.yaml documents every config key with its type and default; this keeps it true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from stack import settings
from stack.settings import SettingsError
from stack.settings.platforms import HOST_SECTIONS

ROOT = Path(__file__).resolve().parent.parent
DOC_LINE = re.compile(r"^#   ([A-Za-z0-9.]+) \(([^,]+), (.+?)\): ", re.M)
SECTIONS = ("hosts", "database", "app", "domain", "tls", "rateLimit", "deploy", "ssh", "network",
            "heroku", "alerts", "logs")
AWS_SECTIONS = ("alerts", "logs")  # refused as a whole on the other platforms
SECTION_PLATFORMS = {"alerts": ("aws", "digitalocean"), "logs": ("aws",)}  # who reads them
BASE = {
    "digitalocean": {"platform": "digitalocean", "region": "fra1"},
    "aws": {"platform": "aws", "region": "eu-west-1"},
    "existing": {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]},
                 "ssh": {"user": "deploy"}},
    "heroku": {"platform": "heroku"},
}


def documented() -> dict[str, tuple[str, str]]:
    text = (ROOT / "Pulumi.yaml").read_text()
    return {key: (kind, default) for key, kind, default in DOC_LINE.findall(text)}


def known_keys(raw: dict, where: str) -> set[str]:
    """The keys settings reads at `where`, from its own "unknown key" message."""
    try:
        settings.load(raw, stack="docs", project_dir=ROOT, offline=True)
    except SettingsError as exc:
        for line in exc.errors:
            if line.startswith(f"flask-stack:{where}zzzz: unknown key; known keys: "):
                return set(line.split("known keys: ", 1)[1].split(", "))
    raise AssertionError(f"no unknown-key error for {where}zzzz")


def code_keys() -> set[str]:
    keys: set[str] = set()
    for platform, base in BASE.items():
        top = known_keys({**base, "zzzz": 1}, "")
        keys |= top - set(SECTIONS)
        if platform == "aws":
            keys |= set(AWS_SECTIONS)  # documented as a whole too (the platform table's rows)
        for section in SECTIONS:
            if platform == "heroku" and section in HOST_SECTIONS:
                continue  # refused there as a whole
            if section in SECTION_PLATFORMS and platform not in SECTION_PLATFORMS[section]:
                continue
            raw = {**base, section: {**base.get(section, {}), "zzzz": 1}}
            keys |= {f"{section}.{k}" for k in known_keys(raw, f"{section}.") if k != "bastion"}
        if platform == "heroku":
            continue
        raw = {**base, "ssh": {**base.get("ssh", {}), "bastion": {"host": "bastion.example.com",
                                                                   "zzzz": 1}}}
        keys |= {f"ssh.bastion.{k}" for k in known_keys(raw, "ssh.bastion.")}
    return keys


def test_every_key_the_code_reads_is_documented_and_nothing_else():
    docs = set(documented())
    code = code_keys()
    assert code - docs == set(), f"read by stack/settings/ but not documented in Pulumi.yaml: {code - docs}"
    assert docs - code == set(), f"documented in Pulumi.yaml but unknown to stack/settings/: {docs - code}"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def test_documented_defaults_are_the_code_defaults():
    loaded = {platform: settings.load(base, stack="docs", project_dir=ROOT, offline=True)
              for platform, base in BASE.items()}
    checked = 0
    for key, (kind, default) in documented().items():
        if default in ("-", "platform") or "," in default or "<" in default or key.startswith("ssh.bastion"):
            continue
        expected: object
        if kind == "integer":
            expected = int(default)
        elif kind == "boolean":
            expected = default == "true"
        elif kind.startswith("list") or kind.startswith("object"):
            expected = ()
        elif kind == "integer or \"auto\"":
            expected = None
        else:
            expected = default.strip('"')
        platforms = {"database.storageGb": ["aws"],  # DigitalOcean sizes storage by database.size
                     "hosts.diskGb": ["aws"], "network.zones": ["aws"],
                     "database.backupRetentionDays": ["aws", "existing"],  # DigitalOcean: fixed 7
                     "hosts.count": ["aws", "digitalocean", "heroku"],  # existing: len(hosts.addresses)
                     "hosts.python": ["aws", "digitalocean", "existing"],  # heroku: its own default
                     "heroku.stack": ["heroku"],
                     "database.maxStorageGb": ["aws"],
                     "database.storageAutoscale": ["digitalocean"], "database.pool": ["digitalocean"],
                     }.get(key, ["aws"] if key.split(".")[0] in AWS_SECTIONS else list(loaded))
        for platform in platforms:
            value = loaded[platform]
            for part in key.split("."):
                value = getattr(value, snake(part))
            if key == "app.path":
                value = value.relative_to(ROOT).as_posix()
            if key == "app.staticDir" and value is None:
                continue
            assert value == expected, f"{key} on {platform}: Pulumi.yaml says {default}, code gives {value!r}"
            checked += 1
    assert checked > 60


def test_declared_config_is_valid_for_the_pulumi_cli():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "flask-stack"
    assert project["runtime"]["name"] == "python"
    for key, declaration in project["config"].items():
        # The CLI accepts only these declared types (objects cannot be declared).
        assert declaration["type"] in ("string", "integer", "boolean", "array"), key
        assert declaration.get("description"), key


@pytest.mark.parametrize("stack_file", sorted(p.name for p in ROOT.glob("Pulumi.*.yaml")))
def test_stack_files_use_only_the_project_namespace_or_providers(stack_file):
    config = yaml.safe_load((ROOT / stack_file).read_text())["config"]
    for key in config:
        namespace = key.split(":", 1)[0]
        assert namespace in ("flask-stack", "aws", "digitalocean", "pulumi"), key
