"""What the workflows decide (workflow/), without GitHub or Pulumi: which stacks a change touches,
the review stacks' files and expiry, the runner's address in a stack file. The comments are in
test_workflow_comments.py, stack-file keys and validation in test_workflow_stackfile.py."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from stack import settings
from workflow import WorkflowError, affected, review, runner, sweep

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDiDpa+Q74+gxFHdYkOMZHcBd7Av8W6x+bGgQA6CO2Df "
              "deploy@example.com")


def project(tmp_path: Path) -> Path:
    """A project folder for a stack file: the loader checks the app it names (app: path)."""
    (tmp_path / "app").symlink_to(ROOT / "app")
    return tmp_path


def cli(*args: str, stdin: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workflow", *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, timeout=60, env=None)


# -- affected stacks ------------------------------------------------------------------------------
@pytest.mark.parametrize(("changed", "expected"), [
    (["Pulumi.prod.yaml"], ["prod"]),
    (["README.md", "Pulumi.staging.yaml"], ["staging"]),
    (["README.md", "tests/test_workflow.py", ".github/workflows/deploy.yml", "examples/prod.yaml"], []),
    (["Pulumi.dev.yaml"], []),
    (["templates/nginx/site.conf.j2"], ["staging", "prod"]),
    (["app/README.md"], ["staging", "prod"]),  # the app's files ship in the release
    (["requirements.txt"], ["staging", "prod"]),
    (["requirements.lock", "policy/requirements.lock"], ["staging", "prod"]),  # what the program runs with
    (["Pulumi.yaml"], ["staging", "prod"]),
    (["Pulumi.prod.yaml", "stack/rollout.py"], ["staging", "prod"]),
], ids=["own-file", "docs-and-own-file", "nothing-deployed", "another-stack", "template", "app-docs",
        "requirements", "locks", "project-file", "file-and-code"])
def test_affected_stacks(changed, expected):
    assert affected.affected(changed, ["staging", "prod"]) == expected


def test_the_workflows_own_code_previews_no_stack():
    # a comment's wording, the sweep's rule: CI's own logic, which no stack runs
    stacks = ["staging", "prod"]
    assert affected.affected(["workflow/comments.py", "workflow/__main__.py"], stacks) == []
    assert affected.affected(["workflow/review.py", "stack/host.py"], stacks) == stacks


def test_affected_reads_paths_on_stdin_and_keeps_the_order_given():
    result = cli("affected", "prod", "staging", stdin="stack/host.py\n\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["prod", "staging"]


# -- review stacks: names, ranges, stack files ----------------------------------------------------
@pytest.mark.parametrize("name", ["pr-0", "pr-", "staging", "pr-12x", "xpr-12", "pr-012"])
def test_review_number_refuses_other_names(name):
    with pytest.raises(WorkflowError, match="not a review stack"):
        review.review_number(name)


def test_review_number_reads_plain_and_qualified_names():
    assert review.review_number("pr-12") == 12
    assert review.review_number("organization/flask-stack/pr-7") == 7


def test_review_ranges_are_distinct_private_and_clear_of_the_other_stacks():
    block = ipaddress.ip_network("10.128.0.0/10")
    others = [ipaddress.ip_network(n) for n in
              ("10.20.0.0/16", "10.30.0.0/16", "10.40.0.0/16", "10.244.0.0/14")]
    seen = set()
    for number in range(1, 16385):
        net = ipaddress.ip_network(review.review_cidr(number))
        assert net.prefixlen == 24 and net.subnet_of(block), net
        assert not any(net.overlaps(o) for o in others), net
        seen.add(net)
    assert len(seen) == 16384


def test_secrets_settings_keep_what_stack_init_wrote():
    existing = {"encryptionsalt": "v1:salt-from-init", "config": {}}
    export = {"deployment": {"secrets_providers": {"type": "passphrase", "state": {"salt": "v1:other"}}}}
    assert review.secrets_settings(existing, export) == {"encryptionsalt": "v1:salt-from-init"}


@pytest.mark.parametrize(("provider", "expected"), [
    ({"type": "passphrase", "state": {"salt": "v1:abc"}}, {"encryptionsalt": "v1:abc"}),
    ({"type": "cloud", "state": {"url": "awskms://alias/fs?region=eu-west-1", "encryptedkey": "Zm9v"}},
     {"secretsprovider": "awskms://alias/fs?region=eu-west-1", "encryptedkey": "Zm9v"}),
    ({"type": "service", "state": {"url": "https://api.pulumi.com"}}, {}),
    (None, {}),
], ids=["passphrase", "kms", "pulumi-cloud", "never-deployed"])
def test_secrets_settings_come_back_from_the_state(provider, expected):
    export = {"version": 3, "deployment": {"secrets_providers": provider} if provider else {}}
    assert review.secrets_settings(None, export) == expected


def test_review_stack_file_loads_as_an_ephemeral_review_stack(tmp_path):
    project(tmp_path)
    result = cli("review-config", "pr-42", "--template", str(ROOT / "examples/review.yaml"),
                 "--public-key", PUBLIC_KEY, "--admin-cidr", "198.51.100.7", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load((tmp_path / "Pulumi.pr-42.yaml").read_text())
    assert set(document) == {"config"}  # no secrets provider yet: stack init writes it
    loaded = settings.from_stack_file("pr-42", tmp_path)
    assert loaded.ephemeral and loaded.platform == "digitalocean"
    assert loaded.network.vpc_cidr == review.review_cidr(42) == "10.128.42.0/24"
    assert loaded.ssh.admin_cidrs == ("198.51.100.7/32",)
    assert loaded.ssh.public_key == PUBLIC_KEY
    assert [d.split(":", 2)[1] for d in loaded.deferred] == ["ssh.privateKey"]  # set next, as a secret
    expires = datetime.strptime(loaded.expires_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)


def test_review_stack_file_keeps_the_salt_stack_init_wrote(tmp_path):
    project(tmp_path)
    (tmp_path / "Pulumi.pr-9.yaml").write_text("encryptionsalt: v1:from-init\n")
    result = cli("review-config", "pr-9", "--template", str(ROOT / "examples/review.yaml"),
                 "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load((tmp_path / "Pulumi.pr-9.yaml").read_text())
    assert document["encryptionsalt"] == "v1:from-init"
    assert document["config"]["flask-stack:platform"] == "digitalocean"


def test_review_stack_file_on_a_fresh_runner_takes_the_provider_from_the_state(tmp_path):
    project(tmp_path)
    export = {"version": 3, "deployment": {"manifest": {}, "secrets_providers": {
        "type": "cloud", "state": {"url": "awskms://alias/x?region=eu-west-1", "encryptedkey": "a2V5"}}}}
    (tmp_path / "export.json").write_text(json.dumps(export))
    result = cli("review-config", "pr-9", "--template", str(ROOT / "examples/review.yaml"),
                 "--export", str(tmp_path / "export.json"), "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load((tmp_path / "Pulumi.pr-9.yaml").read_text())
    assert document["secretsprovider"] == "awskms://alias/x?region=eu-west-1"
    assert document["encryptedkey"] == "a2V5"


def test_review_config_refuses_a_stack_that_is_not_a_review_stack(tmp_path):
    result = cli("review-config", "staging", "--template", str(ROOT / "examples/review.yaml"),
                 "--dir", str(tmp_path))
    assert result.returncode == 2 and "not a review stack" in result.stderr
    assert not (tmp_path / "Pulumi.staging.yaml").exists()


# -- the runner's address in a committed stack file ------------------------------------------------
def test_allow_ssh_from_adds_the_runner_and_keeps_secrets(tmp_path):
    project(tmp_path)
    text = (ROOT / "examples/digitalocean-minimal.yaml").read_text()
    (tmp_path / "Pulumi.staging.yaml").write_text("encryptionsalt: v1:keep-me\n" + text)
    result = cli("allow-ssh-from", "staging", "198.51.100.23", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load((tmp_path / "Pulumi.staging.yaml").read_text())
    ssh = document["config"]["flask-stack:ssh"]
    assert ssh["adminCidrs"] == ["203.0.113.7/32", "198.51.100.23/32"]
    assert ssh["privateKey"]["secure"].startswith("v1:AAAAAAAAAAAAAAAA:placeholder")
    assert document["encryptionsalt"] == "v1:keep-me"
    again = cli("allow-ssh-from", "staging", "198.51.100.23/32", "--dir", str(tmp_path))
    assert again.returncode == 0 and "already" in again.stderr
    assert yaml.safe_load((tmp_path / "Pulumi.staging.yaml").read_text()) == document


def test_allow_ssh_from_adds_nothing_when_a_bastion_is_the_way_in():
    document = yaml.safe_load((ROOT / "examples/digitalocean-complete.yaml").read_text())
    out, done = runner.allow_ssh_from(document, "198.51.100.23")
    assert out == document and "bastion" in done


@pytest.mark.parametrize(("cidr", "message"), [("0.0.0.0/0", "every address"), ("nope", "not an IP")])
def test_allow_ssh_from_refuses_bad_addresses(cidr, message):
    with pytest.raises(WorkflowError, match=message):
        runner.allow_ssh_from({"config": {}}, cidr)


def test_allow_ssh_from_cannot_edit_a_wholly_secret_section():
    with pytest.raises(WorkflowError, match="one secret value"):
        runner.allow_ssh_from({"config": {"flask-stack:ssh": {"secure": "v1:x"}}}, "198.51.100.23")


# -- the sweep ----------------------------------------------------------------------------------------
def ago(**delta) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# What `pulumi stack ls --json` prints on a self-managed backend (no url, no updateInProgress).
STACK_LS = [
    {"name": "dev", "current": False, "lastUpdate": ago(days=90), "resourceCount": 30},
    {"name": "pr-1", "current": False, "lastUpdate": ago(days=8), "resourceCount": 25},
    {"name": "pr-2", "current": False, "lastUpdate": ago(days=6, hours=23), "resourceCount": 25},
    {"name": "pr-3", "current": True},  # created, first update not finished
    {"name": "pr-4", "current": False, "lastUpdate": ago(hours=1), "resourceCount": 25},
    {"name": "organization/flask-stack/pr-5", "current": False, "lastUpdate": ago(days=30)},
    {"name": "pr-6", "current": False, "lastUpdate": "2026-11-10T09:00:00-07:00", "resourceCount": 3},
    {"name": "pr-7", "current": False, "lastUpdate": ago(days=30), "updateInProgress": True},
    {"name": "staging", "current": False, "lastUpdate": ago(days=400)},
]


def test_expired_by_age_only_when_open_prs_are_unknown():
    found = sweep.expired(STACK_LS, now=NOW, ttl=timedelta(days=7))
    assert [e.name for e in found] == ["pr-1", "organization/flask-stack/pr-5", "pr-6"]
    assert "no push for 8 days" in found[0].reason


def test_expired_includes_stacks_of_closed_pull_requests():
    found = sweep.expired(STACK_LS, now=NOW, ttl=timedelta(days=7), open_prs={1, 2, 3, 5, 6, 7})
    assert [(e.name, e.number) for e in found] == [
        ("pr-1", 1), ("pr-4", 4), ("organization/flask-stack/pr-5", 5), ("pr-6", 6)]
    assert found[1].reason == "pull request #4 is closed"


def test_a_stack_being_created_is_never_swept_while_its_pull_request_is_open():
    found = sweep.expired([{"name": "pr-3"}], now=NOW, ttl=timedelta(days=0), open_prs={3})
    assert found == []


def test_expired_command_prints_a_matrix_list(tmp_path):
    (tmp_path / "open.json").write_text(json.dumps([{"number": 1}, {"number": 2}, {"number": 3},
                                                    {"number": 5}, {"number": 6}, {"number": 7}]))
    result = cli("expired", "--now", NOW.isoformat(), "--open-prs", str(tmp_path / "open.json"),
                 stdin=json.dumps(STACK_LS))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["pr-1", "pr-4", "pr-5", "pr-6"]  # plain names, for the matrix
    assert "pr-4: pull request #4 is closed" in result.stderr
    only = cli("expired", "--now", NOW.isoformat(), "--only", "pr-2", stdin=json.dumps(STACK_LS))
    assert json.loads(only.stdout) == []  # pushed to since: the destroy job leaves it


def test_expired_command_rejects_what_is_not_a_stack_list():
    result = cli("expired", stdin='{"name": "pr-1"}')
    assert result.returncode == 2 and "JSON list" in result.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-24T08:00:00.000Z", datetime(2026, 11, 24, 8, tzinfo=UTC)),
    ("2026-11-24T01:00:00-07:00", datetime(2026, 11, 24, 8, tzinfo=UTC)),
    ("2026-11-24T08:00:00", datetime(2026, 11, 24, 8, tzinfo=UTC)),
    ("", None), (None, None), ("yesterday", None),
])
def test_parse_time(text, expected):
    assert sweep.parse_time(text) == expected


def test_a_heroku_review_stack_gets_an_app_of_its_own_and_no_ssh_keys():
    from workflow import review, runner

    template = {"config": {"flask-stack:platform": "heroku",
                           "flask-stack:heroku": {"appName": "acme-rocket-staging-west"}}}
    document = review.review_stack_file(template, stack="pr-1234", secrets={},
                                        public_key="ssh-ed25519 AAAA x", admin_cidr="198.51.100.7",
                                        expires_at="2026-12-09T00:00:00Z")
    config = document["config"]
    assert config["flask-stack:heroku"]["appName"] == "acme-rocket-staging-we-pr-1234"
    assert len(config["flask-stack:heroku"]["appName"]) <= 30
    assert "flask-stack:ssh" not in config and "flask-stack:network" not in config
    assert config["flask-stack:expiresAt"] == "2026-12-09T00:00:00Z"
    unchanged, said = runner.allow_ssh_from(document, "198.51.100.7")
    assert unchanged == document and "heroku" in said
    bare = review.review_stack_file({"config": {"flask-stack:platform": "heroku"}}, stack="pr-7",
                                    secrets={})
    assert bare["config"]["flask-stack:heroku"]["appName"] == "flask-stack-pr-7"
