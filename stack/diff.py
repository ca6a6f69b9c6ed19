"""`python -m stack diff <stack> [--base REF]`: what a change does to the hosts, for review.

Every host file of the stack is rendered twice, each time by the code, templates and stack file of
its own tree: the working tree, and the git ref REF unpacked into a temporary directory (so a change
to the templates, to stack/render.py or to Pulumi.<stack>.yaml all show). The output is one unified
diff per changed host file, `a/` being REF and `b/` the working tree, then a one-line summary.

Rendered files hold no secret by design (secrets reach a host at deploy time, on the env step's
stdin); as a second guard, values in environment files whose names look like secrets
(…TOKEN, …PASSWORD, …SECRET, …KEY) are masked in the output.
"""

from __future__ import annotations

import difflib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SECRETISH = re.compile(r"(SECRET|PASSW(OR)?D|TOKEN|KEY|CREDENTIAL|PRIVATE|DSN)", re.I)
ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
MASK = "<masked>"


class DiffError(Exception):
    """Something the user has to fix (a missing ref, no git); the message says what."""


def default_base(root: Path) -> str:
    """origin/main when the clone has it (a pull request's target), else main."""
    for ref in ("origin/main", "main"):
        if _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).returncode == 0:
            return ref
    raise DiffError("no branch main or origin/main to compare with; give one: --base REF")


def tree_at(root: Path, ref: str, into: Path) -> None:
    """The files of `ref` unpacked into `into` (git archive: no checkout, no worktree)."""
    if _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).returncode != 0:
        raise DiffError(f"--base {ref}: no such commit, branch or tag in {root}")
    archive = _git(root, "archive", "--format=tar", ref, text=False).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def rendered(project: Path, stack: str, out: Path) -> tuple[dict[str, str], str]:
    """{"<host>/<path>": content} as `python -m stack render` of that project writes it, and a
    note when it could not render (no such stack there, a config error at that revision)."""
    if not (project / f"Pulumi.{stack}.yaml").is_file():
        return {}, f"Pulumi.{stack}.yaml does not exist there"
    result = subprocess.run([sys.executable, "-m", "stack", "render", stack, "--out", str(out)],
                            cwd=project, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        return {}, f"it does not render: {result.stderr.strip() or result.stdout.strip()}"
    return {p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}, ""


def mask(path: str, content: str) -> list[str]:
    lines = content.splitlines(keepends=True)
    if not path.endswith(".env"):
        return lines
    out = []
    for line in lines:
        match = ENV_LINE.match(line.rstrip("\n"))
        if match and SECRETISH.search(match.group(1)):
            line = f"{match.group(1)}={MASK}\n"
        out.append(line)
    return out


def file_diffs(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Unified diffs of every file that differs, in path order; a masked line whose value changed
    is shown as changed."""
    chunks = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        a, b = mask(path, before or ""), mask(path, after or "")
        if a == b:  # only masked values changed: say so without showing them
            b = [line.replace(MASK, MASK + " (changed)") if line not in (before or "").splitlines(True)
                 else line for line in b]
        chunks.append("".join(difflib.unified_diff(
            a, b, fromfile="/dev/null" if before is None else f"a/{path}",
            tofile="/dev/null" if after is None else f"b/{path}")))
    return chunks


def consequences(stack: str, root: Path, changed: list[str]) -> str:
    """What installing the changed files sets off on a host, from the host-file table: the step
    that installs each and what it reloads, so a reviewer sees which changes restart the app."""
    from stack import hostfiles, settings

    config = settings.from_stack_file(stack, root)
    if config.platform == settings.HEROKU:
        return ("what these changes set off: a new release archive; pulumi up builds it on "
                "Heroku, runs the release command, and preboot swaps the web dynos\n")
    rows = hostfiles.by_path(config)
    out = ["what these changes set off on each host:\n"]
    for path in changed:
        remote = "/" + path
        row = rows.get(remote)
        if row is None:  # a file the base rendered and this tree no longer does
            out.append(f"  {remote}: no longer installed (the file stays on hosts that have it)\n")
        else:
            out.append(f"  {remote}: the {row.step.value} step installs it; {row.reloads.describe(config)}\n")
    return "".join(out)


def run(stack: str, base: str | None, root: Path) -> tuple[str, int]:
    """The report and the number of changed files."""
    base = base or default_base(root)
    with tempfile.TemporaryDirectory(prefix="flask-stack-diff-") as tmp:
        tmp_path = Path(tmp)
        tree_at(root, base, tmp_path / "base")
        old, old_note = rendered(tmp_path / "base", stack, tmp_path / "out-base")
        new, new_note = rendered(root, stack, tmp_path / "out-work")
    if new_note:
        raise DiffError(f"stack {stack!r} in the working tree: {new_note}")
    chunks = file_diffs(old, new)
    hosts = {path.split("/", 1)[0] for path in {*old, *new} if old.get(path) != new.get(path)}
    lines = [*chunks]
    changed_paths = sorted({path.split("/", 1)[1] for path in {*old, *new} if old.get(path) != new.get(path)})
    if changed_paths:
        lines.append(consequences(stack, root, changed_paths))
    if old_note:
        lines.append(f"note: at {base}, {old_note}; every file is shown as new\n")
    if chunks:
        lines.append(f"stack {stack}: {len(chunks)} file{'s' if len(chunks) != 1 else ''} change on "
                     f"{len(hosts)} host{'s' if len(hosts) != 1 else ''} (a/ = {base}, b/ = working tree)\n")
    else:
        lines.append(f"stack {stack}: no host file changes against {base}\n")
    return "".join(lines), len(chunks)


def _git(root: Path, *args: str, check: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=text,
                                timeout=120, check=False)
    except FileNotFoundError:
        raise DiffError("git is not installed; stack diff compares against a git revision") from None
    if check and result.returncode != 0:
        err = result.stderr if text else result.stderr.decode(errors="replace")
        raise DiffError(f"git {' '.join(args)} failed: {err.strip()}")
    return result
