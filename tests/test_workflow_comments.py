"""The pull-request comments (workflow/comments.py): the preview table and its collapsed outputs,
cut to GitHub's limit, and the review stack's comment."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workflow import comments

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workflow", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


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


# The "Policies:" section as Pulumi prints it for a local pack: ✅ when the pack passes, one
# line per violation with its enforcement level, the policy and the resource.
POLICIES_PASSED = "Policies:\n    ✅ flask-stack-baseline@v0.1.0 (local: policy)\n"
POLICIES_FAILED = """Policies:
    ❌ flask-stack-baseline@v0.1.0 (local: policy)
        - [mandatory]  no-world-open-ssh  (digitalocean:index/firewall:Firewall: site-fw)
          SSH (22) is open to 0.0.0.0/0
        - [advisory]  https-when-domain  (digitalocean:index/loadBalancer:LoadBalancer: site-lb)
          the load balancer still serves plain HTTP
"""


# The same in the diff display (`pulumi preview --diff`): each violation where it happens, its
# message straight after the resource and its further lines unindented, then the packs that ran.
DIFF_VIOLATION = (
    "    flask-stack-baseline@v0.1.0 [advisory]  https-when-domain  (digitalocean:index/loadBalancer"
    ":LoadBalancer: site-lb)a stack holding a certificate whose load balancer still serves plain HTTP\n"
    "site-lb serves port 80 beside its certificate\n")
DIFF_PACKS = ("Policy Packs run:\n    Name                  Version\n"
              "    flask-stack-baseline  (local: policy)\n")
DIFF_PREVIEW = (" ~  digitalocean:index/loadBalancer:LoadBalancer: (update)\n      ~ forwardingRules: [...]\n"
                + DIFF_VIOLATION + "Resources:\n    ~ 1 to update\n\n" + DIFF_PACKS)


def test_the_policy_report_is_read_from_the_diff_display():
    assert comments.policy_report(DIFF_PREVIEW) == DIFF_VIOLATION + "\n" + DIFF_PACKS
    assert comments.policy_summary(comments.policy_report(DIFF_PREVIEW)) == "⚠️ 1 advisory"
    passed = DIFF_PREVIEW.replace(DIFF_VIOLATION, "")
    assert comments.policy_report(passed) == DIFF_PACKS
    assert comments.policy_summary(comments.policy_report(passed)) == "✅ passed"


def with_policies(section: str) -> str:
    return PREVIEW.replace("\nResources:", "\n" + section + "Resources:")


def test_the_policy_report_is_read_from_a_preview():
    assert comments.policy_report(with_policies(POLICIES_FAILED)) == POLICIES_FAILED
    assert comments.policy_report(with_policies(POLICIES_PASSED)) == POLICIES_PASSED
    assert comments.policy_report("\x1b[1mPolicies:\x1b[0m\n    ✅ p@v1 (local: policy)\n") == \
        "Policies:\n    ✅ p@v1 (local: policy)\n"
    assert comments.policy_report(PREVIEW) == ""


def test_the_policy_summary_counts_violations_by_level():
    assert comments.policy_summary(POLICIES_FAILED) == "❌ 1 mandatory, 1 advisory"
    assert comments.policy_summary(POLICIES_FAILED.replace("[mandatory]", "[advisory]")) == "⚠️ 2 advisory"
    assert comments.policy_summary(POLICIES_PASSED) == "✅ passed"
    assert comments.policy_summary("") == "not run"


def test_a_policy_violation_survives_a_preview_cut_to_fit(tmp_path):
    """The violations sit between the diff and the summary: in a preview cut in the middle they
    could go, so they are a block of their own, open, kept whole."""
    huge = "".join(f"line {i:06d} of a very long diff\n" for i in range(20000))
    results = write_results(tmp_path / "r", {
        "prod": (huge + with_policies(POLICIES_FAILED), 255, "stack prod: no host file changes\n", 0)})
    body = comments.preview_comment(results, title="t")
    assert comments.size(body) <= comments.COMMENT_LIMIT and "characters cut here" in body
    assert "| `prod` | ❌ failed (exit 255) | no host file changes | ❌ 1 mandatory, 1 advisory |" in body
    assert ("<details open>\n<summary><code>prod</code>: policy pack, ❌ 1 mandatory, 1 advisory"
            "</summary>") in body
    assert POLICIES_FAILED.strip() in body


def test_a_passing_policy_pack_is_a_cell_not_a_block(tmp_path):
    results = write_results(tmp_path / "r", {
        "staging": (with_policies(POLICIES_PASSED), 0, "stack staging: no host file changes\n", 0)})
    body = comments.preview_comment(results, title="t")
    assert "| `staging` | ✅ ~ 1 to update, 24 unchanged | no host file changes | ✅ passed |" in body
    assert "<details open>" not in body and body.count("<details>") == 2


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
