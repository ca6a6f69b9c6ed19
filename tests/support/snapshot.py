"""The resource graph a program run declares, as a golden JSON (tests/golden-resources/<name>.json).

A live stack sees a replacement when a resource's type, name, parent or provider changes, and an
update when its inputs do; a refactor of the components must change none of them. For every
recorded resource the snapshot keeps its type and name, its parent and provider (as type::name),
its options (protect, retainOnDelete, ignoreChanges, deleteBeforeReplace), what it waits for, its
sorted input keys and, for the cloud resources, the input values (a secret as a digest of its
value, so the file holds none). The rollout's remote commands keep their keys only: their scripts
are pinned by their own goldens. The invokes (token, arguments, provider) and the site's
outputs are kept too.

After an intended change:
    UPDATE_GOLDEN=1 python -m pytest tests/test_aws.py tests/test_digitalocean.py -k snapshot
    git diff tests/golden-resources      # review every change; the run FAILS while updating
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.mocks import RecordingMonitor, Secret, plain

GOLDEN = Path(__file__).resolve().parents[1] / "golden-resources"
UPDATE = os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")
KEYS_ONLY = ("command:",)  # types whose input values are pinned elsewhere (golden scripts)


def _value(value: Any) -> Any:
    """A JSON value standing for an input: secrets as a digest, anything else odd by its type."""
    if isinstance(value, Secret):
        text = json.dumps(plain(value.value), sort_keys=True, default=str)
        return f"[secret sha256:{hashlib.sha256(text.encode()).hexdigest()[:16]}]"
    if isinstance(value, dict):
        return {k: _value(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_value(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return f"[{type(value).__name__}]"


def graph(monitor: RecordingMonitor, invokes: list[tuple[str, dict, str]],
          outputs: dict[str, Any]) -> dict[str, Any]:
    """The snapshot of one run (resources sorted by name and type: declaration order may change)."""
    names = {r.urn: f"{r.type}::{r.name}" for r in monitor.registered}

    def ref(urn: str) -> str:
        return names.get(urn, "")

    def provider(reference: str) -> str:  # "<provider URN>::<id>", where the id may hold "::"
        return next((names[urn] for urn in names if reference.startswith(f"{urn}::")), reference)

    resources = []
    for r in sorted(monitor.registered, key=lambda r: (r.name, r.type)):
        entry: dict[str, Any] = {
            "type": r.type, "name": r.name, "parent": ref(r.parent),
            "provider": provider(r.provider),
            "protect": r.protect, "retainOnDelete": r.retain_on_delete,
            "ignoreChanges": sorted(r.ignore_changes), "deleteBeforeReplace": r.delete_before_replace,
            "dependencies": sorted({ref(d) or d for d in r.dependencies}),
            "inputKeys": sorted(r.inputs),
        }
        if not r.type.startswith(KEYS_ONLY):
            entry["inputs"] = _value(r.inputs)
        resources.append(entry)
    calls = sorted(({"token": token, "args": _value(args),
                     "provider": provider(via)}
                    for token, args, via in invokes),
                   key=lambda c: json.dumps(c, sort_keys=True))
    # The site's outputs; the release id and the gates belong to the app and the rollout.
    kept = {k: v for k, v in outputs.items() if k not in ("release", "gates")}
    return {"resources": resources, "invokes": calls, "outputs": _value(kept)}


def check(name: str, snapshot: dict[str, Any]) -> None:
    """Compare with tests/golden-resources/<name>.json (or rewrite it under UPDATE_GOLDEN=1)."""
    path = GOLDEN / f"{name}.json"
    text = json.dumps(snapshot, indent=1, sort_keys=True) + "\n"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
        pytest.fail(f"UPDATE_GOLDEN is set: rewrote {path.name}; review `git diff "
                    "tests/golden-resources`, then run again without UPDATE_GOLDEN")
    if not path.is_file():
        pytest.fail(f"no resource snapshot {path}; create it with UPDATE_GOLDEN=1")
    pinned = json.loads(path.read_text())
    assert json.loads(text) == pinned, (
        f"the resource graph of {name} differs from {path.name} (a live stack would see changes); "
        "diff: UPDATE_GOLDEN=1 ... then `git diff tests/golden-resources`")
