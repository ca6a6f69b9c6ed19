"""A shop on PostgreSQL: Flask-SQLAlchemy models, Flask-Migrate migrations (the release command
is `flask --app shop db upgrade`), the database URL from DATABASE_URL, as hosting platforms set it."""

import os

from flask import Flask, jsonify
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


class Item(db.Model):
    __tablename__ = "items"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "sqlite://")
    # Platforms hand out postgresql:// URLs; SQLAlchemy's psycopg 3 driver wants its own scheme.
    if url.startswith("postgresql://"):
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    return url


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url()
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 5, "pool_pre_ping": True}
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))

    @app.route("/")
    def index():
        return jsonify(items=[item.name for item in db.session.scalars(db.select(Item).order_by(Item.id))])

    @app.route("/add/<name>", methods=["POST"])
    def add(name):
        db.session.add(Item(name=name))
        db.session.commit()
        return jsonify(added=name), 201

    return app
