"""The app bench/serve deploys: the default app's hello-world plus an I/O-bound route.

- ``/`` answers "Hello World!" (as app/rocket.py does);
- ``/io`` waits 20 ms before answering, as a request waiting on a database query would
  (the wait holds a worker thread or greenlet but no CPU);
- ``/healthz`` answers 200 (the deploy's health gate asks it);
- ``/static/50k.bin`` (written by bench/serve before the deploy) is the 50 KB static file.
"""

import os
import time

from flask import Flask

IO_WAIT = float(os.environ.get("BENCH_IO_WAIT", "0.020"))

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello World!"


@app.route("/io")
def io():
    time.sleep(IO_WAIT)
    return "waited"


@app.route("/healthz")
def healthz():
    return "ok"
