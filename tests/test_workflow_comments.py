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
