"""The one way a value enters a script: the script templates' Jinja environment.

Its `finalize` turns every `{{ expression }}` into one shell word (`shlex.quote`), so a template
cannot paste a value raw by accident. Shell text made here in Python (an argv joined by
`cmd`, a heredoc whose delimiter cannot occur in its content) is marked `Shell` and goes in as
it is. Numbers go in as decimal digits (they cannot hold a shell character); a bool or None is
a mistake in the template and raises. Inside a double-quoted message a value goes through `dq`,
which escapes what double quotes would otherwise interpret. No value may hold a NUL byte (a
command line cannot carry one: the script would end there) or a lone surrogate (UTF-8 cannot
write one), so each of these raises instead.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
from pathlib import Path

import jinja2

from stack.render import in_double_quotes

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "scripts"


class Shell(str):
    """Shell text this package made itself; it enters a script unquoted."""


def word(value: object) -> Shell:
    """A value as one shell word: the finalize of every `{{ }}` in a script template."""
    if isinstance(value, Shell):
        return value
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined: raises, naming what is missing
    if isinstance(value, bool) or value is None:
        raise TypeError(f"a script template tried to paste {value!r}: say what it means as text")
    if isinstance(value, int):
        return Shell(str(value))
    if isinstance(value, str):
        return Shell(shlex.quote(no_nul(value)))
    raise TypeError(f"a script template tried to paste a {type(value).__name__}: {value!r}")


def no_nul(text: str) -> str:
    """`text`, which a command line can carry: no NUL byte, nothing UTF-8 cannot write (a lone
    surrogate, which a JSON or YAML escape can make)."""
    if "\0" in text:
        raise ValueError("a value for a script holds a NUL byte, which a command line cannot "
                         f"carry: {text[:60]!r}")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("a value for a script holds a lone surrogate, which UTF-8 cannot "
                         f"write: {text[:60]!r}") from None
    return text


def dq(value: str | int) -> Shell:
    """Text for inside a double-quoted word: backslash, ", $ and ` escaped."""
    return Shell(in_double_quotes(no_nul(str(value))))


def cmd(*argv: str) -> Shell:
    """One command from its argv, every token quoted."""
    return Shell(shlex.join(no_nul(a) for a in argv))


def heredoc(path: str, content: str, *, staged: bool = False, under: str = "") -> Shell:
    """`cat > path` with the content in a quoted heredoc (no expansion), its delimiter taken
    from the content's hash so it cannot occur in it. `staged`: the path is under the
    configure step's "$stage/files"; `under`: another directory's shell text, the same way."""
    delimiter = "FLASKSTACK_" + hashlib.sha256(no_nul(content).encode()).hexdigest()[:16].upper()
    body = content if content.endswith("\n") else content + "\n"
    if delimiter in body.splitlines():  # a 64-bit hash's fixed point: never, but never silently
        raise ValueError(f"the content for {path} holds its own heredoc delimiter line")
    under = '"$stage/files"' if staged else under
    return Shell(f"cat > {under}{shlex.quote(path)} <<'{delimiter}'\n{body}{delimiter}\n")


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        finalize=word,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Bash's ${#array[@]} would open a Jinja comment.
        comment_start_string="{##",
        comment_end_string="##}",
        autoescape=False,  # noqa: S701 - shell, quoted by finalize
    )
    env.filters.update(dq=dq)
    env.globals.update(cmd=cmd, heredoc=heredoc)
    return env


def render(template: str, **context: object) -> Shell:
    """A script template rendered with `context`; its text is shell by construction."""
    return Shell(environment().get_template(template).render(**context))
