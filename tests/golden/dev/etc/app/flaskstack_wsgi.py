# Rendered by flask-stack for app. Do not edit here: the next deploy replaces it.
"""The WSGI entry Gunicorn serves for app: the app named by app.entry (ENTRY below),
wrapped in Werkzeug's ProxyFix so it sees the client's address and scheme as the front reports
them. The front overwrites X-Forwarded-For and X-Forwarded-Proto on every request, so exactly
one proxy hop is trusted and a client cannot spoof either header.

The deploy's health check asks HEALTH_PATH (deploy.healthPath). When the app routes that path
itself, the app answers it (so it can check its database, say); when it does not, this entry
answers 200 itself: the app has imported and a worker serves requests.
While the deploy drains this host before a change that closes connections (DRAIN_FILE exists),
the health path answers 503, so the load balancer in front stops sending here; every other path
keeps serving the requests that still come.

Every value from the stack's config is a string literal here; a factory's arguments are their
source text as app.entry wrote them, read back with ast.literal_eval, so each arrives exactly as
written (1e999, -0.0, bytes, sets) and none is ever Python code of this module.
"""

import ast
import importlib
import os

from werkzeug.middleware.proxy_fix import ProxyFix

ENTRY = "rocket:app"
TRUSTED_HOPS = 1
HEALTH_PATH = "/healthz"
DRAIN_FILE = "/run/app.drain"


def _load():
    target = importlib.import_module("rocket")
    for name in ["app"]:
        target = getattr(target, name)
    if target is None or not callable(target):
        raise RuntimeError(f"{ENTRY} is not a WSGI application")
    return target


def routes(app, path):
    """Whether a Flask app answers GET `path` with a route of its own (a route that only
    redirects, such as "/healthz/" for "/healthz", does not count: the check wants a 200)."""
    url_map = getattr(app, "url_map", None)
    if url_map is None:
        return False
    try:
        url_map.bind("localhost").match(path, method="GET")
    except Exception:  # NotFound, MethodNotAllowed, RequestRedirect
        return False
    return True


def answer_health(wsgi_app):
    """`wsgi_app`, with GET/HEAD of the health path answered here instead."""

    def health(environ, start_response):
        if environ.get("PATH_INFO") == HEALTH_PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                      ("Cache-Control", "no-store"), ("Content-Length", "3")])
            return [b"ok\n"]
        return wsgi_app(environ, start_response)

    return health


def drainable(wsgi_app):
    """`wsgi_app`, with the health path answering 503 while DRAIN_FILE exists, except to the
    host's own HAProxy checking Gunicorn (X-Flask-Stack-Check, which it strips from clients)."""

    def serve(environ, start_response):
        if environ.get("PATH_INFO") == HEALTH_PATH and os.path.exists(DRAIN_FILE) \
                and environ.get("HTTP_X_FLASK_STACK_CHECK") != "front":
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8"),
                                                       ("Cache-Control", "no-store"),
                                                       ("Content-Length", "9")])
            return [b"draining\n"]
        return wsgi_app(environ, start_response)

    return serve


app = _load()
proxy_fix = dict(x_for=TRUSTED_HOPS, x_proto=TRUSTED_HOPS, x_host=0, x_port=0, x_prefix=0)
app_answers_health = routes(app, HEALTH_PATH)
if hasattr(app, "wsgi_app"):
    # A Flask app: wrap its wsgi_app so `app` stays the Flask object (the flask CLI still works).
    app.wsgi_app = ProxyFix(app.wsgi_app, **proxy_fix)
    if not app_answers_health:
        app.wsgi_app = answer_health(app.wsgi_app)
    app.wsgi_app = drainable(app.wsgi_app)
    application = app
else:
    application = ProxyFix(app, **proxy_fix)
    if not app_answers_health:
        application = answer_health(application)
    application = drainable(application)
