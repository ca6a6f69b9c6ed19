"""The database: one connection per request, opened from DATABASE_URL when first needed."""

import os

import click
import psycopg
from flask import Flask, g

SCHEMA = """
CREATE TABLE IF NOT EXISTS books (
    id serial PRIMARY KEY,
    title text NOT NULL UNIQUE,
    added_by text NOT NULL
);
"""


def connection() -> psycopg.Connection:
    if "db" not in g:
        g.db = psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5)
    return g.db


def close(_error: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


@click.command("init-db")
@click.option("--first-book", default="Release notes", show_default=True)
def init_db(first_book: str) -> None:
    """Create the tables (idempotent) and shelve a first book once."""
    with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as db:
        db.execute(SCHEMA)
        db.execute("INSERT INTO books (title, added_by) VALUES (%s, %s) ON CONFLICT (title) DO NOTHING",
                   (first_book, "the release command"))
    click.echo(f"init-db: the shelf is ready ({first_book!r} on it)")


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close)
    app.cli.add_command(init_db)
