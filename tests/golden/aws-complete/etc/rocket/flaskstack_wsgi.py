# Rendered by flask-stack for rocket. Do not edit here: the next deploy replaces it.
"""The WSGI entry Gunicorn serves for rocket: the app named by app.entry
(rocket:app), wrapped in Werkzeug's ProxyFix so it sees the client's address and scheme
as the front reports them. The front overwrites X-Forwarded-For and X-Forwarded-Proto on every
request, so exactly one proxy hop is trusted and a client cannot spoof either header.
"""

import importlib

from werkzeug.middleware.proxy_fix import ProxyFix

TRUSTED_HOPS = 1


def _load():
    module = importlib.import_module("rocket")
    target = module
    for name in ["app"]:
        target = getattr(target, name)
    if target is None or not callable(target):
        raise RuntimeError("rocket:app is not a WSGI application")
    return target


app = _load()
proxy_fix = dict(x_for=TRUSTED_HOPS, x_proto=TRUSTED_HOPS, x_host=0, x_port=0, x_prefix=0)
if hasattr(app, "wsgi_app"):
    # A Flask app: wrap its wsgi_app so `app` stays the Flask object (the flask CLI still works).
    app.wsgi_app = ProxyFix(app.wsgi_app, **proxy_fix)
    application = app
else:
    application = ProxyFix(app, **proxy_fix)
