"""Static files: which are compressed ahead of time, and how long browsers keep them. One rule
for both servers of app.staticDir: the hosts' Nginx (`gzip_static on`, `expires 7d`; the release
step compresses on the host, templates/scripts/static.sh.j2) and a dyno's WhiteNoise (the archive
holds the compressed files, stack/dyno.py).

Compressing on each request is what makes a server slow at static files (docs/benchmarks.md:
Nginx from ~118k to ~3k req/s on a 50 KB file), so text files are compressed once, at release
time, at the best level; small files are left alone, as their gzip would barely be smaller.
"""

from __future__ import annotations

import gzip

COMPRESSED = (".css", ".js", ".svg", ".json", ".txt", ".html", ".xml", ".map")
LARGER_THAN_KIB = 1  # only files over this size: `find -size +1k`, len(data) > 1024
MAX_AGE_DAYS = 7  # Nginx's `expires 7d`; WhiteNoise's max_age
MAX_AGE_SECONDS = MAX_AGE_DAYS * 24 * 3600


def compressible(name: str, size: int) -> bool:
    """Whether a static file gets a precompressed `.gz` beside it."""
    return name.endswith(COMPRESSED) and size > LARGER_THAN_KIB * 1024


def gzip_bytes(data: bytes) -> bytes:
    """`gzip -9 -n`: the best level, no name and no time in the header, so the same file always
    compresses to the same bytes (the release archive's id depends on them)."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def find_names() -> str:
    """The suffixes as `find` tests, four to a line: `-name '*.css' -o -name '*.js' ...` (shell
    text of constants, for static.sh.j2)."""
    tests = [f"-name '*{suffix}'" for suffix in COMPRESSED]
    lines = [" -o ".join(tests[i:i + 4]) for i in range(0, len(tests), 4)]
    return " \\\n    -o ".join(lines)
