"""A small blog in the style of the Flask tutorial: an app factory, SQLite in the instance
folder, static files and templates inside the package, and no health route of its own."""

import logging
import os
import sqlite3

import click
from flask import Flask, current_app, g, render_template, request


def create_app(test_config=None):
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(SECRET_KEY=os.environ.get("SECRET_KEY", "dev"),
                            DATABASE=os.path.join(app.instance_path, "blog.sqlite"))
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    # Like many apps: a log file in a folder of its own, relative unless LOG_DIR says where.
    log_dir = os.environ.get("LOG_DIR", "logs")
    os.makedirs(log_dir, exist_ok=True)
    handler = logging.FileHandler(os.path.join(log_dir, "blog.log"))
    handler.setLevel(logging.INFO)
    app.logger.addHandler(handler)
    app.logger.setLevel(logging.INFO)

    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)

    @app.route("/")
    def index():
        posts = get_db().execute("SELECT title, body FROM post ORDER BY id DESC").fetchall()
        return render_template("index.html", posts=posts)

    @app.route("/post", methods=["POST"])
    def post():
        db = get_db()
        db.execute("INSERT INTO post (title, body) VALUES (?, ?)",
                   (request.form["title"], request.form.get("body", "")))
        db.commit()
        app.logger.info("new post %s", request.form["title"])
        return "created", 201

    return app


def get_db():
    if "db" not in g:
        g.db = sqlite3.connect(current_app.config["DATABASE"])
    return g.db


def close_db(_error=None):
    db = g.pop("db", None)
    if db is not None:
        db.close()


@click.command("init-db")
def init_db_command():
    """Create the tables that are missing (safe to run on every release)."""
    get_db().execute("CREATE TABLE IF NOT EXISTS post (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
    click.echo("tables ready")
