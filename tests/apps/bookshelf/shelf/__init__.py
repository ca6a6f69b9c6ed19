"""A reading list on PostgreSQL: an app factory, a blueprint, a Flask CLI command that sets up
the database (the release command: `flask --app shelf init-db`), static files in the package, and
the database URL from DATABASE_URL, as Heroku's Postgres add-on sets it. No health route."""

from flask import Flask


def create_app() -> Flask:
    app = Flask(__name__)
    from shelf import db, views

    db.init_app(app)
    app.register_blueprint(views.bp)
    return app
