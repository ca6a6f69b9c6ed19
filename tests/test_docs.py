"""The README and docs/ hold together: every relative link and #anchor resolves, every comment
that cites a page ("README, \"Section\"", "docs/x.md, \"Section\"") names a real page and section,
and the README stays short enough to read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Where comments and messages cite pages: the stack files, the workflows and their scripts, the
# examples, bin/, and the code and templates that name a page of docs/.
CITING = ["Pulumi.yaml", "Pulumi.dev.yaml", ".github", "examples", "bin", "bench", "stack",
          "templates", "policy", "workflow", ".ci"]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
# README, "Section" / README.md, "Section" / docs/x.md, "Section" / docs/x.md: "Section"; quotes
# may be escaped (inside a shell string). A bare README or docs/x.md must name a real page.
CITATION = re.compile(r'(README(?:\.md)?|docs/[A-Za-z0-9_-]+\.md)(?:[,:]\s*\\?"([^"\\]+)\\?")?')


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower case, punctuation dropped
    (except - and _), spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def prose_lines(text: str):
    """(line number, line) of every line outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def anchors(text: str) -> set[str]:
    """Every heading's anchor, duplicates numbered as GitHub numbers them (x, x-1, x-2)."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str):
    """(line number, target) of every Markdown link outside code."""
    for number, line in prose_lines(text):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            yield number, match.group(1)


def page_problems(page: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of a Markdown page that points nowhere: a missing file, or an anchor
    that no heading of the target page (or of this page, for #x) has."""
    problems = []
    text = page.read_text()
    where = page.relative_to(root)
    for number, target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            problems.append(f"{where}:{number}: {target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{where}:{number}: {target}: no heading #{anchor} in "
                            f"{dest.relative_to(root)}")
    return problems


def citation_problems(text: str, where: str, root: Path = ROOT) -> list[str]:
    """Each citation of a page in a comment or message that names a page or section that does
    not exist. Comment lines are joined first, so a citation may wrap."""
    joined = re.sub(r"\s*\n\s*(?:#|//)?\s*", " ", text)
    problems = []
    for match in CITATION.finditer(joined):
        name, section = match.group(1), match.group(2)
        page = root / ("README.md" if name.startswith("README") else name)
        if not page.exists():
            problems.append(f"{where}: {match.group(0)}: no page {name}")
        elif section and slug(section) not in anchors(page.read_text()):
            problems.append(f"{where}: {match.group(0)}: no section \"{section}\" in {name}")
    return problems


def citing_files(root: Path = ROOT):
    for name in CITING:
        base = root / name
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in paths:
            # (policy/venv, which bin/deploy makes, is not the project's: its packages cite their own docs)
            if {"__pycache__", "venv"} & set(path.parts) or path.suffix in {".pyc", ".png", ".gz", ".zst"}:
                continue
            try:
                yield path, path.read_text()
            except UnicodeDecodeError:
                continue


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_anchor_resolves(page):
    assert not page_problems(page), "\n".join(page_problems(page))


def test_every_cited_page_and_section_exists():
    problems = []
    cited = 0
    for path, text in citing_files():
        cited += len(CITATION.findall(text))
        problems += citation_problems(text, str(path.relative_to(ROOT)))
    assert cited, "found no citation at all: is the pattern still right?"
    assert not problems, "\n".join(problems)


def test_the_readme_stays_short():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 300, f"README.md has {lines} lines; move a subject to docs/ (about 250 is the aim)"


def test_every_docs_page_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in PAGES[1:] if f"(docs/{p.name}" not in readme]
    assert not missing, f"not linked from the README: {missing}"


def test_slugs_are_githubs():
    assert slug("Per-environment `pulumi up`") == "per-environment-pulumi-up"
    assert slug("A first `pulumi up`, in money") == "a-first-pulumi-up-in-money"
    assert slug("What only a real AWS run can show") == "what-only-a-real-aws-run-can-show"
    assert slug("Releases under load: what failed requests, and the fix") == \
        "releases-under-load-what-failed-requests-and-the-fix"
    assert anchors("# A\n## B\n## B\n```\n# not a heading\n```\n") == {"a", "b", "b-1"}


def test_the_checker_reports_what_dangles(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Page A\n\n## Real section\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Top\n\n## Here\n\n"
        "[fine](#here) [fine too](docs/a.md#real-section) [plain](docs/a.md) [web](https://x.org/#y)\n"
        "[dangling](#nowhere) and [gone](docs/b.md) and [bad anchor](docs/a.md#unreal)\n"
        "`[in code](#ignored)`\n\n```\n[in a fence](#ignored-too)\n```\n")
    problems = page_problems(readme, tmp_path)
    assert len(problems) == 3, problems
    assert "README.md:6: #nowhere: no heading #nowhere in README.md" in problems
    assert "README.md:6: docs/b.md: no such file" in problems
    assert "README.md:6: docs/a.md#unreal: no heading #unreal in docs/a.md" in problems

    comments = ('# see README, "Here" and docs/a.md, "Real section" and docs/a.md\n'
                '# and README, "Nowhere" and docs/a.md: "Real\n# section" and docs/c.md\n'
                'fail "set it (docs/a.md, \\"Unreal\\")"\n')
    problems = citation_problems(comments, "x", tmp_path)
    assert problems == ['x: README, "Nowhere": no section "Nowhere" in README',
                        "x: docs/c.md: no page docs/c.md",
                        'x: docs/a.md, \\"Unreal\\": no section "Unreal" in docs/a.md'], problems
