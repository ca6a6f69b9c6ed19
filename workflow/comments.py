"""The pull-request comments the workflows keep up to date, as plain text built from files.

Each comment starts with a hidden marker (`<!-- flask-stack-preview -->`, `<!-- flask-stack-review
-->`) by which .github/scripts/pr-comment finds it again and edits it in place, so a pull request
carries one comment of each kind however many times it is pushed to.

GitHub refuses a comment body longer than 65536 characters. A preview of a big stack plus the diff
of every host file can be longer, so `build_comment` cuts the longest outputs first, each at line
boundaries, keeping its head and its tail (where Pulumi prints the summary), with a line saying how
much was left out and where the whole output is.

The policy pack's report (the "Policies:" section of a preview, docs/policy.md) gets a column of the
table and, when it names a violation, a block of its own, open: however long the preview around it,
it is never what gets cut.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from stack.settings import PROJECT

COMMENT_LIMIT = 65536  # GitHub's limit for an issue or pull-request comment body, in characters
PREVIEW_MARKER = f"{PROJECT}-preview"
REVIEW_MARKER = f"{PROJECT}-review"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
NOTE_ROOM = 160  # room kept per block for the "characters cut here" line


@dataclass(frozen=True)
class Block:
    """One collapsible section: its <summary> line (Markdown) and a text shown verbatim."""

    summary: str
    text: str
    lang: str = ""
    open: bool = False


def size(text: str) -> int:
    """Length as GitHub counts it (UTF-16 code units: a character outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def fence(text: str) -> str:
    """A code fence longer than any run of backticks in the text, so nothing can close it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render(marker: str, head: str, blocks: Sequence[Block], texts: Sequence[str]) -> str:
    parts = [f"<!-- {marker} -->", head.strip(), ""]
    for block, text in zip(blocks, texts, strict=True):
        mark = fence(text)
        parts += ["<details open>" if block.open else "<details>", f"<summary>{block.summary}</summary>", "",
                  mark + block.lang, text.rstrip("\n"), mark, "", "</details>", ""]
    return "\n".join(parts)


def cut(text: str, keep: int, where: str) -> str:
    """The text in about `keep` characters: whole lines from its head and its tail, and between
    them a line saying how much is not shown and where the whole text is."""
    if len(text) <= keep:
        return text
    head_room = keep * 3 // 5
    head = text[:head_room]
    if "\n" in head:
        head = head[:head.rfind("\n") + 1]
    tail = text[len(text) - (keep - head_room):] if keep > head_room else ""
    if "\n" in tail:
        tail = tail[tail.find("\n") + 1:]
    dropped = len(text) - len(head) - len(tail)
    note = f"… {dropped:,} characters cut here: the whole output is in {where} …\n"
    return head + ("" if head.endswith("\n") or not head else "\n") + note + tail


def shares(sizes: Sequence[int], budget: int) -> list[int]:
    """Split `budget` characters between texts of `sizes`: short texts keep all they have, the
    long ones share the rest equally."""
    out = [0] * len(sizes)
    left = max(budget, 0)
    pending = sorted(range(len(sizes)), key=lambda i: sizes[i])
    while pending:
        each = left // len(pending)
        first = pending[0]
        if sizes[first] > each:
            for i in pending:
                out[i] = each
            break
        out[first] = sizes[first]
        left -= sizes[first]
        pending.pop(0)
    return out


def build_comment(marker: str, head: str, blocks: Sequence[Block], *,
                  limit: int = COMMENT_LIMIT, where: str = "the workflow run's log") -> str:
    """The comment: marker, head, then each block collapsed, cut to fit `limit` if needed."""
    texts = [ANSI.sub("", block.text) for block in blocks]
    body = render(marker, head, blocks, texts)
    if size(body) <= limit:
        return body
    skeleton = size(render(marker, head, blocks, [""] * len(blocks)))
    budget = limit - skeleton - NOTE_ROOM * len(blocks)
    if budget < 0:
        raise ValueError(f"the comment's head alone is {skeleton} characters, over GitHub's {limit}")
    allowed = shares([len(t) for t in texts], budget)
    kept = [cut(t, n, where) for t, n in zip(texts, allowed, strict=True)]
    body = render(marker, head, blocks, kept)
    while size(body) > limit:  # characters outside the BMP count twice: shrink the longest again
        longest = max(range(len(kept)), key=lambda i: len(kept[i]))
        allowed[longest] = allowed[longest] * 9 // 10
        kept[longest] = cut(texts[longest], allowed[longest], where)
        body = render(marker, head, blocks, kept)
    return body


# -- the preview comment ------------------------------------------------------------------------
def preview_summary(output: str) -> str:
    """The "Resources:" lines Pulumi ends a preview with, on one line ("~ 1 to update, 9 unchanged")."""
    lines = ANSI.sub("", output).splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Resources:":
            found = []
            for item in lines[i + 1:]:
                if not item.strip():
                    break
                found.append(" ".join(item.split()))
            return ", ".join(found)
    return ""


VIOLATION = re.compile(r"\[(mandatory|advisory)\]  ")
DIFF_MARK = re.compile(r"[-+~<>]{1,2} ")
HEADING = re.compile(r"[A-Z][A-Za-z ]*:$")  # "Resources:", "Outputs:", "Policy Packs run:"


def policy_report(output: str) -> str:
    """What the policy pack said in a preview, in either of Pulumi's displays. The default one
    ends with a "Policies:" section: each pack (✅, ⚠️ or ❌ and its name) with its violations
    under it. The diff display (`--diff`, as pr-preview runs it) prints each violation where it
    happens (`<pack>@v<version> [advisory]  <policy>  (<type>: <name>)<message>`, the message's
    further lines unindented) and lists the packs that ran under "Policy Packs run:" after the
    summary. Empty when no pack ran (or the preview stopped before they did)."""
    lines = ANSI.sub("", output).splitlines()
    found: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = line.strip() in ("Policies:", "Policy Packs run:") and not line[:1].isspace()
        if heading or VIOLATION.search(line):
            if found and heading:
                found.append("")
            found.append(line.strip() if heading else line.rstrip())
            i += 1
            while i < len(lines) and lines[i].strip() and (
                    lines[i][:1].isspace() if heading else not (
                        lines[i][:1].isspace() or DIFF_MARK.match(lines[i]) or HEADING.match(lines[i])
                        or VIOLATION.search(lines[i]))):
                found.append(lines[i].rstrip())
                i += 1
            continue
        i += 1
    return "\n".join(found) + "\n" if found else ""


def policy_summary(report: str) -> str:
    """The table cell for a policy report: the violations by enforcement level, or that the
    packs ran and passed, or that none ran."""
    if not report:
        return "not run"
    counts = {level: len(re.findall(rf"\[{level}\]  ", report)) for level in ("mandatory", "advisory")}
    if not any(counts.values()):
        return "✅ passed"
    mark = "❌" if counts["mandatory"] else "⚠️"
    return mark + " " + ", ".join(f"{n} {level}" for level, n in counts.items() if n)


def diff_summary(output: str) -> str:
    """The last line `python -m stack diff` prints, without its "stack <name>: " prefix."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return ""
    return re.sub(r"^stack \S+: ", "", lines[-1])


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def _code(path: Path) -> int | None:
    text = _read(path).strip()
    return int(text) if text.lstrip("-").isdigit() else None


def preview_comment(results: Path, *, title: str, footer: str = "", where: str = "the workflow run's log",
                    limit: int = COMMENT_LIMIT) -> str:
    """The preview comment from a results directory that .github/scripts/pr-preview fills:
    `stacks` (the stacks previewed, one per line), `notes.md` (lines shown under the table), and
    per stack `<stack>.preview` and `<stack>.diff` with their exit codes in `<stack>.*.rc`."""
    stacks = [s for s in _read(results / "stacks").split() if s]
    rows, blocks = [], []
    for stack in stacks:
        preview, preview_rc = _read(results / f"{stack}.preview"), _code(results / f"{stack}.preview.rc")
        diff, diff_rc = _read(results / f"{stack}.diff"), _code(results / f"{stack}.diff.rc")
        if preview_rc == 0:
            preview_cell = "✅ " + (preview_summary(preview) or "no changes")
        else:
            preview_cell = f"❌ failed (exit {preview_rc if preview_rc is not None else '?'})"
        if diff_rc == 0:
            diff_cell = diff_summary(diff) or "no output"
        else:
            diff_cell = "❌ " + (diff_summary(diff) or "failed")
        report = policy_report(preview)
        policy_cell = policy_summary(report)
        rows.append(f"| `{stack}` | {_cell(preview_cell)} | {_cell(diff_cell)} | {_cell(policy_cell)} |")
        if report and policy_cell != "✅ passed":
            blocks.append(Block(f"<code>{stack}</code>: policy pack, {_cell(policy_cell)}", report,
                                open=True))
        blocks.append(Block(f"<code>{stack}</code>: <code>pulumi preview --diff</code>",
                            preview or "(no output)"))
        blocks.append(Block(f"<code>{stack}</code>: host files (<code>python -m stack diff</code>)",
                            diff or "(no output)", "diff"))
    head = [f"### {title}", ""]
    if rows:
        head += ["| Stack | Preview | Host files | Policy pack |", "|---|---|---|---|", *rows, ""]
    notes = _read(results / "notes.md").strip()
    if notes:
        head += [notes, ""]
    if not rows and not notes:
        head += ["No stack was previewed.", ""]
    if footer:
        head += [f"<sub>{footer}</sub>"]
    return build_comment(PREVIEW_MARKER, "\n".join(head), blocks, limit=limit, where=where)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- the review-stack comment -------------------------------------------------------------------
def review_comment(stack: str, *, state: str, url: str = "", sha: str = "", ttl_days: float = 7,
                   reason: str = "", run_url: str = "", now: datetime | None = None) -> str:
    """The comment that gives a pull request its review stack's address (state "up"), says an
    update failed ("failed"), or that the stack is gone ("destroyed", with the reason)."""
    at = f" at `{sha[:12]}`" if sha else ""
    run = f" ([workflow run]({run_url}))" if run_url else ""
    lines = [f"### Review stack `{stack}`", ""]
    if state == "up":
        if not now:
            raise ValueError("review_comment(state='up') needs now")
        expires = (now + timedelta(days=ttl_days)).strftime("%Y-%m-%d %H:%M UTC")
        lines += [f"**{url or '(no url output)'}** serves this pull request{at}.{run}", "",
                  f"It is updated on every push and destroyed when the pull request closes, or "
                  f"after {ttl_days:g} days without a push (about {expires} if nothing is pushed)."]
    elif state == "failed":
        lines += [f"⚠️ Updating the review stack{at} failed{run}. Whatever the previous update "
                  "built is still up; the next push tries again."]
    elif state == "destroyed":
        lines += [f"Destroyed: {reason or 'the pull request was closed'}.{run}",
                  "", "A new push to an open pull request builds it again."]
    else:
        raise ValueError(f"unknown review comment state {state!r}")
    return f"<!-- {REVIEW_MARKER} -->\n" + "\n".join(lines) + "\n"
