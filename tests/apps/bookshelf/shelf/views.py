"""The pages: the shelf, adding a book, and what the app knows of the request that reached it."""

from flask import Blueprint, jsonify, render_template_string, request, url_for

from shelf.db import connection

bp = Blueprint("shelf", __name__)

PAGE = """<!doctype html>
<link rel="stylesheet" href="{{ url_for('static', filename='shelf.css') }}">
<h1>Shelf</h1>
<ul>{% for title, who in books %}<li>{{ title }} <small>({{ who }})</small></li>{% endfor %}</ul>
"""


def books() -> list[tuple[str, str]]:
    return connection().execute("SELECT title, added_by FROM books ORDER BY id").fetchall()


@bp.get("/")
def index():
    if request.accept_mimetypes.best == "application/json":
        return jsonify(books=[{"title": t, "added_by": who} for t, who in books()])
    return render_template_string(PAGE, books=books())


@bp.post("/books")
def add():
    title = (request.form.get("title") or "").strip()
    if not title:
        return jsonify(error="a title, please"), 400
    with connection() as db:
        db.execute("INSERT INTO books (title, added_by) VALUES (%s, %s) ON CONFLICT (title) DO NOTHING",
                   (title, request.remote_addr))
    return jsonify(added=title), 201


@bp.get("/whoami")
def whoami():
    return jsonify(remote_addr=request.remote_addr, scheme=request.scheme, host=request.host,
                   url=request.url, stylesheet=url_for("static", filename="shelf.css", _external=True))
