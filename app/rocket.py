"""The default app flask-stack deploys: the classic hello-world, plus what operations need.

- ``/`` answers "Hello World!" (the recipe's rocket.py);
- ``/healthz`` answers 200 while the process can serve (the deploy's health gate asks it);
- ``/db`` reports whether the database in DATABASE_URL answers (503 when it does not);
- ``/whoami`` shows the client address and scheme the app sees through the proxy chain;
- ``/heartbeats`` shows when the worker (worker.py) and the scheduled job (``flask --app rocket
  heartbeat``) last ran, on which host.

Point ``app.path`` at your own Flask app when this one has done its job.
"""

import os

from flask import Flask, jsonify, request

app = Flask(__name__, instance_path=os.environ.get("FLASK_INSTANCE_PATH") or None)


@app.route("/")
def hello():
    return "Hello World!"


@app.route("/healthz")
def healthz():
    return "ok"


@app.route("/whoami")
def whoami():
    return jsonify(remote_addr=request.remote_addr, scheme=request.scheme, host=request.host)


@app.route("/heartbeats")
def heartbeat_list():
    import heartbeats

    return jsonify(heartbeats.latest())


@app.cli.command("heartbeat")
def heartbeat_command():
    """Write one heartbeat row (the example schedule runs this)."""
    import heartbeats

    heartbeats.beat("schedule")
    print("heartbeat written")


@app.route("/db")
def database():
    url = os.environ.get("DATABASE_URL")
    if not url:
        return jsonify(database="not configured"), 503
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            version = conn.execute("select current_setting('server_version')").fetchone()[0]
    except psycopg.Error as exc:
        return jsonify(database="unreachable", error=type(exc).__name__), 503
    return jsonify(database="ok", server_version=version)
