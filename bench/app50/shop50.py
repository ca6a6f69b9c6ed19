"""The app bench/deploy releases to measure a release of an app with 55 dependencies: it
imports a good part of them at start-up, as a real app of that size does."""

import bleach
import flask_babel
import flask_caching
import flask_limiter
import flask_login
import flask_migrate
import flask_sqlalchemy
import flask_wtf
import markdown
import PIL
import requests
import sentry_sdk
import structlog
from flask import Flask

app = Flask(__name__)
LOADED = [m.__name__ for m in (bleach, flask_babel, flask_caching, flask_limiter, flask_login,
                               flask_migrate, flask_sqlalchemy, flask_wtf, markdown, PIL,
                               requests, sentry_sdk, structlog)]


@app.route("/")
def index():
    return f"{len(LOADED)} libraries loaded"
