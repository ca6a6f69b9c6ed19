"""The scheduled sweep: which review stacks to destroy.

Self-managed backends keep no stack tags, so a stack's age is judged by the one date
`pulumi stack ls --json` gives on every backend: its last update, which each push renews.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from workflow.review import REVIEW_STACK


@dataclass(frozen=True)
class Expired:
    name: str  # as `pulumi stack ls` printed it, for `pulumi destroy --stack`
    number: int
    reason: str


def parse_time(text: Any) -> datetime | None:
    """A time as `pulumi stack ls --json` prints it ("2026-11-24T08:00:00.000Z", or with an
    offset in older CLIs); None when absent or unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def expired(stacks: Iterable[Mapping[str, Any]], *, now: datetime, ttl: timedelta,
            open_prs: set[int] | None = None) -> list[Expired]:
    """The review stacks to destroy: those whose pull request is no longer open (when the open
    ones are known), and those not updated for longer than `ttl`. A stack with no update yet is
    being created (or its first update failed): it is left alone while its pull request is open."""
    found = []
    for entry in stacks:
        name = str(entry.get("name", ""))
        match = REVIEW_STACK.search(name)
        if not match:
            continue
        number = int(match.group(1))
        if entry.get("updateInProgress"):  # Pulumi Cloud says so; an update runs right now
            continue
        if open_prs is not None and number not in open_prs:
            found.append(Expired(name, number, f"pull request #{number} is closed"))
            continue
        last = parse_time(entry.get("lastUpdate"))
        if last is not None and now - last > ttl:
            days = (now - last).days
            found.append(Expired(name, number, f"no push for {days} days (last update "
                                               f"{last.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"))
    return found


def has_stack(listing: Iterable[Mapping[str, Any]], name: str) -> bool:
    """Whether `pulumi stack ls --json` lists `name` (plain, or qualified as on Pulumi Cloud)."""
    return any(str(e.get("name", "")) == name or str(e.get("name", "")).endswith(f"/{name}")
               for e in listing)
