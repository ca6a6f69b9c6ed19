"""Heartbeat rows: what the default app's worker and scheduled job write, and /heartbeats shows.

They go to the database in DATABASE_URL when there is one, otherwise to a SQLite file in the
state directory systemd gives the app ($STATE_DIRECTORY), so a new stack shows its worker and
its schedule running before it has a database.
"""

import os
import socket
import sqlite3
from datetime import UTC, datetime

CREATE = ("create table if not exists heartbeats "
          "(source text not null, host text not null, at text not null)")


def connect():
    url = os.environ.get("DATABASE_URL")
    if url:
        import psycopg

        return psycopg.connect(url, connect_timeout=5, autocommit=True), "%s"
    directory = os.environ.get("STATE_DIRECTORY") or os.environ.get("FLASK_INSTANCE_PATH") or "."
    return sqlite3.connect(os.path.join(directory, "heartbeats.db"), isolation_level=None), "?"


def beat(source: str) -> None:
    conn, mark = connect()
    with conn:
        conn.execute(CREATE)
        conn.execute(f"insert into heartbeats (source, host, at) values ({mark}, {mark}, {mark})",  # noqa: S608 - placeholders only
                     (source, socket.gethostname(), datetime.now(UTC).isoformat(timespec="seconds")))


def latest() -> dict:
    """{source: {"host": ..., "at": ..., "count": n}} of every source that has beaten."""
    conn, _ = connect()
    with conn:
        conn.execute(CREATE)
        rows = conn.execute("select source, host, max(at), count(*) from heartbeats "
                            "group by source, host order by source, host").fetchall()
    return {f"{source}@{host}": {"at": at, "count": count} for source, host, at, count in rows}
