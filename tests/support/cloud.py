"""What the cloud-site tests (tests/test_aws.py, tests/test_digitalocean.py) share: example stack
files made runnable under the mocks, and walks over the recorded resource graph."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from stack import settings
from stack.settings import Secret
from tests.support.mocks import RecordingMonitor, Registered, Run

ROOT = Path(__file__).resolve().parents[2]
# Stand-ins for the `secure:` values of the examples (which cannot be decrypted here).
TEST_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTESTKEYMATERIAL\n-----END OPENSSH PRIVATE KEY-----"
TEST_PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID29hha/jgjBVIfNDa/C+qvNqaWZRzEVu4h2G6NwYx2F "
                   "test@example.com")
TEST_SECRET = "test-secret-value-5d1e"  # noqa: S105 - a stand-in value the tests look for
COMMANDS = ("command:remote:Command", "command:remote:CopyToRemote")


TEST_WEBHOOK = "https://hooks.example.com/sns/T0KEN"


def stack_file_config(path: Path) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A stack file's config as `run_program` takes it: `secure:` values replaced by test
    values (the SSH private key, TEST_SECRET elsewhere), deploy-only values the file leaves to
    the user filled in, and the sections that hold secrets."""
    raw = settings.read_stack_file(path)
    secret_sections: set[str] = set()

    def fill(value: Any, section: str, key: str) -> Any:
        if isinstance(value, Secret):
            secret_sections.add(section)
            if key == "webhook":  # alerts.webhook: an https:// URL
                return TEST_WEBHOOK
            return TEST_PRIVATE_KEY if key == "privateKey" else TEST_SECRET
        if isinstance(value, dict):
            return {k: fill(v, section, k) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v, section, key) for v in value]
        return value

    config = {key: fill(value, key, key) for key, value in raw.items()}
    if config.get("platform") == "heroku":  # no hosts, so no SSH key to fill in
        return config, tuple(sorted(secret_sections))
    ssh = config.setdefault("ssh", {})
    if "privateKey" not in ssh:
        ssh["privateKey"] = TEST_PRIVATE_KEY
    secret_sections.add("ssh")
    if config.get("platform") in settings.CLOUDS:
        ssh.setdefault("publicKey", TEST_PUBLIC_KEY)
        if not ssh.get("bastion"):
            ssh.setdefault("adminCidrs", ["198.51.100.7/32"])
    return config, tuple(sorted(secret_sections))


def example_config(name: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """examples/<name>.yaml (or a project stack file given as "Pulumi.<stack>")."""
    path = ROOT / f"{name}.yaml" if name.startswith("Pulumi.") else ROOT / "examples" / f"{name}.yaml"
    return stack_file_config(path)


def with_changes(config: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A copy of `config` with sections merged in (a non-dict value replaces the key)."""
    out = copy.deepcopy(config)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


# -- walking the graph ------------------------------------------------------------------------
def by_urn(monitor: RecordingMonitor) -> dict[str, Registered]:
    return {r.urn: r for r in monitor.registered}


def ancestors(monitor: RecordingMonitor, resource: Registered) -> list[str]:
    """URNs of the resource's parents, nearest first (up to, not including, the stack)."""
    index = by_urn(monitor)
    out, parent = [], resource.parent
    while parent in index:
        out.append(parent)
        parent = index[parent].parent
    return out


def waits_for(monitor: RecordingMonitor, resource: Registered) -> set[str]:
    """Every URN the resource waits for before it is created: its dependencies, theirs, and so on
    (a dependency on a component means waiting for all of the component's children too)."""
    index = by_urn(monitor)
    children: dict[str, list[str]] = {}
    for r in monitor.registered:
        children.setdefault(r.parent, []).append(r.urn)
    seen: set[str] = set()
    todo = list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn in seen:
            continue
        seen.add(urn)
        todo.extend(children.get(urn, []))
        if urn in index:
            todo.extend(index[urn].dependencies)
    return seen


def of_types(monitor: RecordingMonitor, prefixes: Iterable[str]) -> list[Registered]:
    prefixes = tuple(prefixes)
    return [r for r in monitor.registered if r.type.startswith(prefixes)]


def steps_of_host(monitor: RecordingMonitor, host: str) -> dict[str, Registered]:
    """The rollout steps of one host ("web-0"), by step name (bootstrap, env, ...)."""
    return {r.name.rsplit("-", 1)[1]: r for r in monitor.registered
            if r.type in COMMANDS and r.name.startswith(f"app-{host}-")}


def growth_per_host(run: Callable[[int], Run], counts: tuple[int, int] = (2, 3)) -> int:
    """Resources one more host adds to the program."""
    small, big = (len(run(n).monitor.registered) for n in counts)
    return (big - small) // (counts[1] - counts[0])
