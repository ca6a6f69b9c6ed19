"""A Flask app built by a factory with arguments, to check the generated WSGI entry's factory path
(app.entry "factory:create_app('shop', debug=False)") under a real Gunicorn."""

from flask import Flask


def create_app(name, debug=True):
    if debug:
        raise RuntimeError("the entry's keyword argument did not reach the factory")
    app = Flask(name)

    @app.route("/healthz")
    def healthz():
        return "ok"

    return app
