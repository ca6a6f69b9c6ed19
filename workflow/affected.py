"""Which stacks a change can alter, from the paths it changes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# Paths whose changes never reach a deployed stack (everything else may, so it counts).
# workflow/ decides what CI does; no stack runs it.
NOT_DEPLOYED_DIRS = (".github/", ".ci/", "bench/", "bin/", "docs/", "examples/", "tests/", "workflow/")
NOT_DEPLOYED_FILES = frozenset({".gitignore", "LICENSE", "pyproject.toml"})
STACK_FILE = re.compile(r"Pulumi\.([^/]+)\.yaml")


def deployed(path: str) -> bool:
    """Whether a change to `path` can reach every deployed stack (the program, templates, the
    app, requirements): not docs at the top, tests, CI, examples or this package."""
    return not (path.startswith(NOT_DEPLOYED_DIRS) or path in NOT_DEPLOYED_FILES
                or ("/" not in path and path.endswith(".md")))


def affected(changed: Iterable[str], stacks: Sequence[str]) -> list[str]:
    """The stacks (of `stacks`, in order) that a change to the `changed` paths can alter: a
    stack file alters its own stack; a deployed path alters all of them; the rest alter none."""
    hit = set()
    for path in (p.strip() for p in changed):
        if not path:
            continue
        own = STACK_FILE.fullmatch(path)
        if own:
            hit.add(own.group(1))
        elif deployed(path):
            return list(stacks)
    return [s for s in stacks if s in hit]
