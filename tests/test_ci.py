"""What the workflows decide (stack/ci.py, stack/comments.py), without GitHub or Pulumi: which
stacks a change touches, the review stacks' files and expiry, and the pull-request comments."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from stack import ci, comments, settings

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDiDpa+Q74+gxFHdYkOMZHcBd7Av8W6x+bGgQA6CO2Df "
              "deploy@example.com")


def cli(*args: str, stdin: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stack.ci", *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, timeout=60, env=None)


# -- affected stacks ------------------------------------------------------------------------------
@pytest.mark.parametrize(("changed", "expected"), [
    (["Pulumi.prod.yaml"], ["prod"]),
    (["README.md", "Pulumi.staging.yaml"], ["staging"]),
    (["README.md", "tests/test_ci.py", ".github/workflows/deploy.yml", "examples/prod.yaml"], []),
    (["Pulumi.dev.yaml"], []),
    (["templates/nginx/site.conf.j2"], ["staging", "prod"]),
    (["app/README.md"], ["staging", "prod"]),  # the app's files ship in the release
    (["requirements.txt"], ["staging", "prod"]),
    (["Pulumi.yaml"], ["staging", "prod"]),
    (["Pulumi.prod.yaml", "stack/rollout.py"], ["staging", "prod"]),
], ids=["own-file", "docs-and-own-file", "nothing-deployed", "another-stack", "template", "app-docs",
        "requirements", "project-file", "file-and-code"])
def test_affected_stacks(changed, expected):
    assert ci.affected(changed, ["staging", "prod"]) == expected


def test_affected_reads_paths_on_stdin_and_keeps_the_order_given():
    result = cli("affected", "prod", "staging", stdin="stack/host.py\n\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["prod", "staging"]


# -- review stacks: names, ranges, stack files ----------------------------------------------------
@pytest.mark.parametrize("name", ["pr-0", "pr-", "staging", "pr-12x", "xpr-12", "pr-012"])
def test_review_number_refuses_other_names(name):
    with pytest.raises(ci.CiError, match="not a review stack"):
        ci.review_number(name)


def test_review_number_reads_plain_and_qualified_names():
    assert ci.review_number("pr-12") == 12
    assert ci.review_number("organization/flask-stack/pr-7") == 7


def test_review_ranges_are_distinct_private_and_clear_of_the_other_stacks():
    block = ipaddress.ip_network("10.128.0.0/10")
    others = [ipaddress.ip_network(n) for n in
              ("10.20.0.0/16", "10.30.0.0/16", "10.40.0.0/16", "10.244.0.0/14")]
    seen = set()
    for number in range(1, 16385):
        net = ipaddress.ip_network(ci.review_cidr(number))
        assert net.prefixlen == 24 and net.subnet_of(block), net
        assert not any(net.overlaps(o) for o in others), net
        seen.add(net)
    assert len(seen) == 16384


def test_secrets_settings_keep_what_stack_init_wrote():
    existing = {"encryptionsalt": "v1:salt-from-init", "config": {}}
    export = {"deployment": {"secrets_providers": {"type": "passphrase", "state": {"salt": "v1:other"}}}}
    assert ci.secrets_settings(existing, export) == {"encryptionsalt": "v1:salt-from-init"}


@pytest.mark.parametrize(("provider", "expected"), [
    ({"type": "passphrase", "state": {"salt": "v1:abc"}}, {"encryptionsalt": "v1:abc"}),
    ({"type": "cloud", "state": {"url": "awskms://alias/fs?region=eu-west-1", "encryptedkey": "Zm9v"}},
     {"secretsprovider": "awskms://alias/fs?region=eu-west-1", "encryptedkey": "Zm9v"}),
    ({"type": "service", "state": {"url": "https://api.pulumi.com"}}, {}),
    (None, {}),
], ids=["passphrase", "kms", "pulumi-cloud", "never-deployed"])
def test_secrets_settings_come_back_from_the_state(provider, expected):
    export = {"version": 3, "deployment": {"secrets_providers": provider} if provider else {}}
    assert ci.secrets_settings(None, export) == expected


def test_review_stack_file_loads_as_an_ephemeral_review_stack(tmp_path):
    (tmp_path / "app").symlink_to(ROOT / "app")
    result = cli("review-config", "pr-42", "--template", str(ROOT / "examples/review.yaml"),
                 "--public-key", PUBLIC_KEY, "--admin-cidr", "198.51.100.7", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load((tmp_path / "Pulumi.pr-42.yaml").read_text())
    assert set(document) == {"config"}  # no secrets provider yet: stack init writes it
    loaded = settings.from_stack_file("pr-42", tmp_path)
    assert loaded.ephemeral and loaded.platform == "digitalocean"
    assert loaded.network.vpc_cidr == ci.review_cidr(42) == "10.128.42.0/24"
    assert loaded.ssh.admin_cidrs == ("198.51.100.7/32",)
    assert loaded.ssh.public_key == PUBLIC_KEY
    assert [d.split(":", 2)[1] for d in loaded.deferred] == ["ssh.privateKey"]  # set next, as a secret
    expires = datetime.strptime(loaded.expires_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)


def test_review_stack_file_keeps_the_salt_stack_init_wrote(tmp_path):
    (tmp_path / "Pulumi.pr-9.yaml").write_text("encryptionsalt: v1:from-init\n")
    result = cli("review-config", "pr-9", "--template", str(ROOT / "examples/review.yaml"),
                 "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load((tmp_path / "Pulumi.pr-9.yaml").read_text())
    assert document["encryptionsalt"] == "v1:from-init"
    assert document["config"]["flask-stack:platform"] == "digitalocean"


def test_review_stack_file_on_a_fresh_runner_takes_the_provider_from_the_state(tmp_path):
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
    out, done = ci.allow_ssh_from(document, "198.51.100.23")
    assert out == document and "bastion" in done


@pytest.mark.parametrize(("cidr", "message"), [("0.0.0.0/0", "every address"), ("nope", "not an IP")])
def test_allow_ssh_from_refuses_bad_addresses(cidr, message):
    with pytest.raises(ci.CiError, match=message):
        ci.allow_ssh_from({"config": {}}, cidr)


def test_allow_ssh_from_cannot_edit_a_wholly_secret_section():
    with pytest.raises(ci.CiError, match="one secret value"):
        ci.allow_ssh_from({"config": {"flask-stack:ssh": {"secure": "v1:x"}}}, "198.51.100.23")


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
    found = ci.expired(STACK_LS, now=NOW, ttl=timedelta(days=7))
    assert [e.name for e in found] == ["pr-1", "organization/flask-stack/pr-5", "pr-6"]
    assert "no push for 8 days" in found[0].reason


def test_expired_includes_stacks_of_closed_pull_requests():
    found = ci.expired(STACK_LS, now=NOW, ttl=timedelta(days=7), open_prs={1, 2, 3, 5, 6, 7})
    assert [(e.name, e.number) for e in found] == [
        ("pr-1", 1), ("pr-4", 4), ("organization/flask-stack/pr-5", 5), ("pr-6", 6)]
    assert found[1].reason == "pull request #4 is closed"


def test_a_stack_being_created_is_never_swept_while_its_pull_request_is_open():
    found = ci.expired([{"name": "pr-3"}], now=NOW, ttl=timedelta(days=0), open_prs={3})
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
    assert ci.parse_time(text) == expected


# -- comments -----------------------------------------------------------------------------------------
PREVIEW = """Previewing update (staging):
     Type                              Name                   Plan       Info
     pulumi:pulumi:Stack               flask-stack-staging
     └─ flask-stack:digitalocean:Site  site
 ~      └─ command:remote:Command      site-web-1-configure   update     [diff: ~triggers]

Resources:
    ~ 1 to update
    24 unchanged

"""


def test_preview_summary_reads_the_resources_lines():
    assert comments.preview_summary(PREVIEW) == "~ 1 to update, 24 unchanged"
    assert comments.preview_summary("\x1b[1mResources:\x1b[0m\n    + 3 to create\n") == "+ 3 to create"
    assert comments.preview_summary("error: no stack named 'prod' found") == ""


def test_a_short_comment_is_kept_whole():
    blocks = [comments.Block("preview", PREVIEW), comments.Block("diff", "+new\n-old\n", "diff")]
    body = comments.build_comment("m", "### head", blocks)
    assert body.startswith("<!-- m -->\n### head")
    assert PREVIEW.strip() in body and "```diff\n+new\n-old\n```" in body
    assert "cut here" not in body


def test_a_long_comment_fits_github_keeping_head_and_tail():
    huge = "".join(f"line {i:06d} of a very long preview\n" for i in range(20000))
    huge += "Resources:\n    ~ 1 to update\n"
    small = "--- a/x\n+++ b/x\n+one change\n"
    blocks = [comments.Block("preview", huge), comments.Block("diff", small, "diff")]
    body = comments.build_comment("m", "### head", blocks, where="the pulumi-preview artifact")
    assert comments.size(body) <= comments.COMMENT_LIMIT
    assert comments.size(body) > comments.COMMENT_LIMIT - 2000  # not cut more than needed
    assert "line 000000 of" in body and "~ 1 to update" in body  # the head and the summary stay
    assert "characters cut here: the whole output is in the pulumi-preview artifact" in body
    assert small.strip() in body  # the short block is whole


def test_characters_outside_the_bmp_count_twice():
    emoji = "🚀" * 40000  # 40000 characters, 80000 UTF-16 units
    body = comments.build_comment("m", "h", [comments.Block("x", emoji)])
    assert comments.size(body) <= comments.COMMENT_LIMIT
    assert len(body) < comments.size(body)  # counted in UTF-16 units, not characters


def test_backticks_in_an_output_cannot_close_its_fence():
    text = "a template with ``` inside\nand ```` four\n"
    body = comments.build_comment("m", "h", [comments.Block("x", text)])
    assert "`````\na template with ``` inside" in body


def test_many_long_blocks_share_the_room():
    blocks = [comments.Block(f"b{i}", f"{i}" * 50000) for i in range(4)]
    body = comments.build_comment("m", "h", blocks)
    assert comments.size(body) <= comments.COMMENT_LIMIT
    kept = [body.count(str(i) * 1000) for i in range(4)]
    assert min(kept) > 0 and max(kept) - min(kept) <= 1


def write_results(directory: Path, stacks: dict[str, tuple[str, int, str, int]], notes: str = "") -> Path:
    directory.mkdir()
    (directory / "stacks").write_text("\n".join(stacks) + "\n")
    for stack, (preview, preview_rc, diff, diff_rc) in stacks.items():
        (directory / f"{stack}.preview").write_text(preview)
        (directory / f"{stack}.preview.rc").write_text(f"{preview_rc}\n")
        (directory / f"{stack}.diff").write_text(diff)
        (directory / f"{stack}.diff.rc").write_text(f"{diff_rc}\n")
    if notes:
        (directory / "notes.md").write_text(notes)
    return directory


def test_preview_comment_tables_each_stack(tmp_path):
    results = write_results(tmp_path / "r", {
        "staging": (PREVIEW, 0, "--- a/h/f\n+++ b/h/f\n+x\n"
                                "stack staging: 1 file changes on 1 host (a/ = main)\n", 0),
        "prod": ("error: could not decrypt configuration value\n", 255,
                 "stack prod: no host file changes\n", 0),
    }, notes="`dev`: not previewed\n")
    body = comments.preview_comment(results, title="Preview of abc123", footer="run 7")
    assert body.startswith(f"<!-- {comments.PREVIEW_MARKER} -->\n### Preview of abc123\n")
    assert "| `staging` | ✅ ~ 1 to update, 24 unchanged | 1 file changes on 1 host (a/ = main) |" in body
    assert "| `prod` | ❌ failed (exit 255) | no host file changes |" in body
    assert "`dev`: not previewed" in body and "<sub>run 7</sub>" in body
    assert "could not decrypt configuration value" in body
    assert body.count("<details>") == 4


def test_preview_comment_with_nothing_previewed_says_why(tmp_path):
    results = write_results(tmp_path / "r", {}, notes="No stack is affected by this change.\n")
    body = comments.preview_comment(results, title="t")
    assert "No stack is affected by this change." in body and "| Stack |" not in body


def test_preview_comment_command_prints_api_json(tmp_path):
    results = write_results(tmp_path / "r", {
        "staging": (PREVIEW, 0, "stack staging: no host file changes\n", 0)})
    result = cli("preview-comment", "--results", str(results), "--title", "t")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["body"].startswith(f"<!-- {comments.PREVIEW_MARKER} -->")


def test_review_comment_states():
    up = comments.review_comment("pr-4", state="up", url="http://203.0.113.9/", sha="0123456789abcdef",
                                 ttl_days=7, now=NOW, run_url="https://github.com/o/r/actions/runs/1")
    assert up.startswith(f"<!-- {comments.REVIEW_MARKER} -->\n### Review stack `pr-4`")
    assert "**http://203.0.113.9/** serves this pull request at `0123456789ab`" in up
    assert "about 2026-12-01 12:00 UTC" in up
    gone = comments.review_comment("pr-4", state="destroyed", reason="no push for 8 days")
    assert "Destroyed: no push for 8 days." in gone
    assert "failed" in comments.review_comment("pr-4", state="failed")
    with pytest.raises(ValueError):
        comments.review_comment("pr-4", state="sideways")
