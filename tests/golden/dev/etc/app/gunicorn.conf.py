# Rendered by flask-stack for app. Do not edit here: the next deploy replaces it.
# Gunicorn for app. systemd hands it the listening socket (app.socket), so
# the address below is only what Gunicorn would bind if started by hand; it is never public.
import os
import sys

wsgi_app = "flaskstack_wsgi:application"
# The `current` symlink, not a release path: a HUP after a release switch loads the new code.
chdir = "/srv/app/current"
# The WSGI entry lives beside this file (/etc/app); a staged copy checked with
# `gunicorn --check-config` before it goes live thus loads the staged entry. That check imports
# the app before Gunicorn applies pythonpath, so the config puts the directory there itself.
pythonpath = os.path.dirname(os.path.abspath(__file__))
if pythonpath not in sys.path:
    sys.path.insert(0, pythonpath)
bind = ["unix:/run/app/gunicorn.sock"]
# From the CPUs this host lets the service use: cores + 1. Threads (or greenlets) do the waiting;
# processes are for running Python on every core (docs/benchmarks.md: "Why these defaults").
workers = len(os.sched_getaffinity(0)) + 1
worker_class = "gthread"
threads = 32
timeout = 30
graceful_timeout = 30
keepalive = 20
# New workers import the app afresh, so a HUP picks up a new release.
preload_app = False
worker_tmp_dir = "/dev/shm"
proc_name = "app"

# Only the front talks to Gunicorn, and it always sets X-Forwarded-Proto itself: trust that
# header alone, and only from this host.
forwarded_allow_ips = "127.0.0.1,::1"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# No control socket: Gunicorn's default one (~/.gunicorn/gunicorn.ctl) is shared by every
# instance run by the same user. systemd's HUP and TERM are the controls.
control_socket_disable = True

# Errors to stderr, which systemd sends to the journal. No access log: the front logs every
# request already, and logging each one again through the journal cost as much CPU as serving it.
accesslog = None
errorlog = "-"
loglevel = "info"

# -- A reload (HUP) without a gap ----------------------------------------------------------------
# On HUP Gunicorn forks the new workers and SIGTERMs the old ones at once: the old ones stop
# accepting within milliseconds while the new ones still import the app, which takes a real app a
# second or more, so every request waits in the socket's backlog meanwhile (and one that overflows
# it fails). Instead the master marks each worker it forks (pre_fork), the worker marks itself
# ready once it has loaded the app and answered the health path once (post_worker_init: a lazy
# first request is then nobody's), and an old worker told to stop while newer ones are booting
# keeps serving until they are all ready, `timeout` seconds at most. A stop (no newer workers)
# is not delayed. The marks live in the service's private /tmp (PrivateTmp), per master.
# (Not with gevent: its workers crashed on the deferred stop; they stop at once as before.)
import io
import signal
import threading
import time

HEALTH_PATH = "/healthz"


def _marks(master_pid):
    return f"/tmp/gunicorn-{master_pid}-workers"


def _unmark(master_pid, age):
    for suffix in ("", ".ready"):
        try:
            os.unlink(f"{_marks(master_pid)}/{age}{suffix}")
        except OSError:
            pass


def pre_fork(server, worker):
    os.makedirs(_marks(server.pid), mode=0o700, exist_ok=True)
    open(f"{_marks(server.pid)}/{worker.age}", "w").close()


def child_exit(server, worker):
    _unmark(server.pid, worker.age)


def worker_exit(server, worker):
    _unmark(server.pid, worker.age)


def _warm_up(worker):
    environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": HEALTH_PATH,
               "QUERY_STRING": "", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
               "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost", "REMOTE_ADDR": "127.0.0.1",
               "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
               "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
               "wsgi.run_once": False}
    try:
        body = worker.wsgi(environ, lambda status, headers, exc_info=None: None)
        try:
            for _ in body:
                pass
        finally:
            if hasattr(body, "close"):
                body.close()
    except Exception:  # a warm-up never keeps a worker from serving
        worker.log.exception("warming up on %s failed", HEALTH_PATH)


def _newer_booting(worker):
    try:
        names = os.listdir(_marks(worker.ppid))
    except OSError:
        return False
    newer = {int(n) for n in names if n.isdigit() and int(n) > worker.age}
    return any(f"{age}.ready" not in names for age in newer)


def _stop_once_replaced(worker, stop, sig, frame):
    deadline = time.monotonic() + timeout
    while _newer_booting(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop(sig, frame)
    try:
        os.write(worker.PIPE[1], b".")  # wake a sync worker's select
    except OSError:
        pass


def post_worker_init(worker):
    _warm_up(worker)
    open(f"{_marks(worker.ppid)}/{worker.age}.ready", "w").close()
    stop = worker.handle_exit
    stopping = threading.Event()

    def on_sigterm(sig, frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=_stop_once_replaced, args=(worker, stop, sig, frame),
                             daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
