"""The GitHub API's JSON as `gh api` prints it, and the bot's own comments in it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from workflow import WorkflowError

BOT = "github-actions[bot]"


def json_values(text: str) -> list[Any]:
    """Every JSON value in `text`: `gh api --paginate` prints one array per page, back to back."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return values
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError as exc:
            raise WorkflowError(f"not JSON at character {at}: {exc}") from None
        values.append(value)


def find_comment(pages: Iterable[Any], marker: str, author: str = BOT) -> int | None:
    """The id of the first comment by `author` that holds `<!-- marker -->`; a comment by anyone
    else is never edited, even if it quotes the marker."""
    tag = f"<!-- {marker} -->"
    for page in pages:
        for item in page if isinstance(page, list) else [page]:
            if not isinstance(item, Mapping):
                continue
            login = (item.get("user") or {}).get("login")
            if login == author and tag in str(item.get("body") or ""):
                return int(item["id"])
    return None
