"""A single-module app whose own /healthz goes deeper than "the process serves": it reports
whether its settings arrived, and answers 503 when they did not."""

import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "own health app"


@app.route("/healthz")
def healthz():
    if not os.environ.get("GREETING"):
        return "GREETING is not set", 503
    return "checked by the app"
