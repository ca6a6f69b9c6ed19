set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: configure on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: configure on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
children() { { ps -o pid= --ppid "$1" 2>/dev/null || true; } | tr -d ' ' | sort; }
# True when every worker of a service runs in directory $1 (Gunicorn's workers take their
# working directory, the resolved `current` link, from the master at each reload).
workers_in() {
  local main pids pid
  main=$(systemctl show -p MainPID --value "$2")
  [ "$main" != 0 ] || return 1
  pids=$(children "$main")
  [ -n "$pids" ] || return 1
  for pid in $pids; do [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$1" ] || return 1; done
}
wait_workers_in() {
  local deadline=$((SECONDS + $3))
  until workers_in "$1" "$2"; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.2
  done
}
# Reload a service whose main process forks workers, then wait until new workers run.
reload_and_wait() {
  local unit=$1 timeout=$2 main old new deadline
  main=$(systemctl show -p MainPID --value "$unit")
  old=$(children "$main")
  systemctl reload "$unit"
  deadline=$((SECONDS + timeout))
  while [ $SECONDS -lt $deadline ]; do
    main=$(systemctl show -p MainPID --value "$unit")
    [ "$main" != 0 ] || break
    new=$(children "$main")
    if [ -n "$new" ] && [ -z "$(comm -12 <(echo "$old") <(echo "$new"))" ]; then return 0; fi
    sleep 0.2
  done
}
# The app's latest messages (its access log left out), taken before any undo. When a restart
# loop has pushed the cause out of the last 40 lines, its last error lines come first.
capture_journal() {
  local all errors
  all=$(journalctl -u app.service -n 400 --no-pager -o short-precise 2>&1 \
    | grep -Ev '"[A-Z]+ [^ ]* HTTP/[0-9.]+" [0-9]{3} ' || true)
  journal=$(tail -n 40 <<<"$all")
  if ! grep -qE 'Error|Exception' <<<"$journal"; then
    errors=$(grep -E 'Error|Exception' <<<"$all" | tail -n 10 || true)
    if [ -n "$errors" ]; then journal="$errors
[...]
$journal"; fi
  fi
}
code=000  # the last status the front gave; set before any probe so a report can always name it
probe() { code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Host: localhost' http://127.0.0.1/healthz || true); [ "$code" = 200 ]; }
healthy_within() {
  local deadline=$((SECONDS + $1))
  code=000
  until probe; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
}
# unhealthy WHAT-WAS-UNDONE [first]: fail with the journal; "first" when nothing served before,
# so there is no previous version to ask.
unhealthy() {
  local last=$code after
  [ -n "${journal:-}" ] || capture_journal
  if [ "${2:-}" = first ]; then after="nothing of the app served here before, so there is nothing to go back to"
  elif healthy_within 60; then after="the previous version answers 200 again"
  else after="the previous version does not answer either (status $code)"; fi
  fail "/healthz did not answer 200 within 60 s (last status $last). $1; $after. Last lines of the app's journal:
$journal"
}
stage=$(mktemp -d /etc/app/.stage.XXXXXX); rb="$stage/replaced"; installing=0
# What this host ran before, so a failure can put exactly that back. On the host's first config
# (no unit of the app yet) that is: nothing of the app, and the front's own files.
first=1; [ -f /etc/systemd/system/app.service ] && first=0
front_was_active=0; systemctl is-active --quiet haproxy && front_was_active=1
other_was_active=0; systemctl is-active --quiet nginx 2>/dev/null && other_was_active=1
# Whatever makes this step fail once files are being replaced, the replaced ones go back first
# (and on a first config the app's units are stopped and removed), leaving a front whose config
# passes its own check.
undo_config() {
  [ $installing = 1 ] || return 0
  installing=0
  if [ $first = 1 ]; then systemctl disable --now --quiet app.socket app.service >/dev/null 2>&1 || true; fi
  if [ -d "$rb/files" ]; then cp -a "$rb/files/." /; fi
  if [ -f "$rb/created" ]; then xargs -r rm -f < "$rb/created"; fi
  systemctl daemon-reload
  systemctl reset-failed app.service app.socket >/dev/null 2>&1 || true
  if [ $first = 0 ]; then systemctl restart app.service || true; fi
  if [ $front_was_active = 1 ]; then systemctl reload-or-restart haproxy || true
  else systemctl disable --now --quiet haproxy >/dev/null 2>&1 || true; fi
  if [ $other_was_active = 1 ]; then systemctl enable --now --quiet nginx || true; fi
  if [ $first = 1 ]; then
    echo "flask-stack: configure on host web-0: removed this first config of app again (its units, files and front site); the front's own config is back" >&2
  fi
}
trap 'rc=$?; if [ $rc -ne 0 ]; then undo_config; fi; rm -rf "$stage"' EXIT
chgrp app "$stage"; chmod 0750 "$stage"
mkdir -p "$stage/files"/etc/app
cat > "$stage/files"/etc/app/flaskstack_wsgi.py <<'FLASKSTACK_938107BDB63EB8D1'
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
FLASKSTACK_938107BDB63EB8D1
mkdir -p "$stage/files"/etc/app
cat > "$stage/files"/etc/app/gunicorn.conf.py <<'FLASKSTACK_023EC949A8DCFF0D'
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
FLASKSTACK_023EC949A8DCFF0D
mkdir -p "$stage/files"/etc/app
cat > "$stage/files"/etc/app/report-failure <<'FLASKSTACK_2ACE87039292B802'
#!/bin/bash
# Rendered by flask-stack for app. Do not edit here: the next deploy replaces it.
# Run by app.failed@.service when a unit of app fails: says so in the journal
# (tagged flask-stack-alert, with the unit's result and its last lines), and when the unit is a
# long-running one that systemd gave up restarting, starts it again in 5min.
set -uo pipefail
unit=$1
state=$(systemctl show -p Result,NRestarts,ExecMainStatus "$unit" 2>/dev/null | paste -sd' ' -)
echo "flask-stack alert: $unit failed on $(hostname) ($state)"
journalctl -u "$unit" -n 20 --no-pager -o short-iso 2>&1 | grep -v '^-- ' | sed 's/^/  /'
restart=$(systemctl show -p Restart --value "$unit" 2>/dev/null || echo no)
if [ "$restart" != no ]; then
  # Only a unit that is still failed then is started (a deploy may have started or removed it).
  if systemd-run --quiet --collect --on-active=5min --timer-property=AccuracySec=1s \
      /bin/sh -c "systemctl is-failed --quiet '$unit' && systemctl reset-failed '$unit' && systemctl start --no-block '$unit'"; then
    echo "flask-stack alert: $unit is started again in 5min if it is still failed then"
  fi
fi
FLASKSTACK_2ACE87039292B802
mkdir -p "$stage/files"/etc/haproxy
cat > "$stage/files"/etc/haproxy/haproxy.cfg <<'FLASKSTACK_43F07F967A5F9432'
# Rendered by flask-stack for app. Do not edit here: the next deploy replaces it.
# HAProxy as the public front of app. It faces the internet itself: every forwarded header a client sends is replaced.
global
    log /dev/log local0
    user haproxy
    group haproxy
    maxconn 8000
    # The master-worker reload (systemctl reload haproxy) passes listeners over this socket,
    # so a reload drops no connection.
    stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
    # An old process left by a reload finishes what it has, then goes, in at most this long.
    hard-stop-after 50s
    ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
    ssl-default-bind-curves X25519:prime256v1:secp384r1
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 5s
    timeout client 30s
    timeout server 35s
    # Slow clients may not hold a connection open while dribbling a request (slowloris).
    timeout http-request 10s
    timeout http-keep-alive 10s
    # After a reload, an old process keeps each idle keep-alive connection until the client's
    # next request has its response, and closes it then, instead of closing it while the client
    # may already be sending on it.
    option idle-close-on-response
    timeout queue 30s

frontend public
    # IPv4 and IPv6 on sockets of their own: a v4v6 socket would show IPv4 clients as
    # ::ffff:a.b.c.d to the app and in the logs.
    bind 0.0.0.0:80
    bind :::80 v6only
    bind 0.0.0.0:443 ssl crt /etc/app/tls/haproxy.pem alpn h2,http/1.1
    bind :::443 v6only ssl crt /etc/app/tls/haproxy.pem alpn h2,http/1.1
    # Per-client request rate over 10 s, kept for 60 s.
    stick-table type ipv6 size 100k expire 60s store http_req_rate(10s)

    acl acme path_beg /.well-known/acme-challenge/
    acl health path /healthz
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    # Whatever a client claims is replaced by the address HAProxy sees (option forwardfor).
    http-request del-header X-Forwarded-For
    http-request set-header X-Real-IP %[src]
    # Plain HTTP answers ACME challenges and the health path (the deploy asks it on loopback);
    # everything else goes to HTTPS, which tells browsers to stay there (HSTS).
    http-request redirect scheme https code 301 if !{ ssl_fc } !acme !health
    # Every answer over HTTPS, HAProxy's own too (its redirects, 429s and 503s, which
    # http-response rules never see).
    http-after-response set-header Strict-Transport-Security "max-age=63072000" if { ssl_fc }
    # Only HAProxy's own check of Gunicorn carries this (the app's health path ignores a drain
    # for it); a client's is removed.
    http-request del-header X-Flask-Stack-Check
    http-request track-sc0 src
    # Over 10 requests/s on average (plus a burst of 20) in 10 s: 429.
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 120 } !health !acme
    http-response del-header Server
    use_backend acme if acme
    default_backend app

backend app
    option forwardfor
    option httpchk
    # A drain (the deploy taking the host out of a balancer) does not fail this check: HAProxy
    # would take Gunicorn out too, and every path would answer 503.
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host localhost hdr X-Flask-Stack-Check front
    http-check expect status 200
    # Checked every 10 s, and every second once down: a Gunicorn that recovers (a release put
    # back by its gate, a restart) serves again within about two seconds, not twenty.
    server gunicorn /run/app/gunicorn.sock check inter 10s downinter 1s fall 3 rise 2

backend acme
    # The ACME client answers HTTP-01 challenges on this loopback port while it runs; when it
    # does not, a refused connection answers 503 at once (no retries).
    retries 0
    server acme 127.0.0.1:8402
FLASKSTACK_43F07F967A5F9432
mkdir -p "$stage/files"/etc/systemd/system
cat > "$stage/files"/etc/systemd/system/app.failed@.service <<'FLASKSTACK_790899F4E12C9408'
# Rendered by flask-stack for app. Do not edit here: the next deploy replaces it.
[Unit]
Description=app: reports that %i failed
# Every unit of the app (the web service, each process and schedule, certbot's renewal) names
# this one in OnFailure=, with its own name as the instance.

[Service]
Type=oneshot
# What it writes goes to the journal at priority err, tagged flask-stack-alert:
# `journalctl -t flask-stack-alert`, or `python -m stack logs --unit alerts`.
SyslogIdentifier=flask-stack-alert
SyslogLevel=err
ExecStart=/bin/bash /etc/app/report-failure %i
UMask=0077
# Root (it asks systemd about the unit and may arm its start), but with no capability and no
# network: what it needs is the journal and systemd's own socket.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateNetwork=yes
IPAddressDeny=any
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
DevicePolicy=closed
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
FLASKSTACK_790899F4E12C9408
mkdir -p "$stage/files"/etc/systemd/system
cat > "$stage/files"/etc/systemd/system/app.service <<'FLASKSTACK_B4F83A3FBD7DAFB8'
# Rendered by flask-stack for app. Do not edit here: the next deploy replaces it.
[Unit]
Description=app: the Flask app under Gunicorn
Requires=app.socket
After=network-online.target app.socket
Wants=network-online.target
# Restarted on failure every 2 s, up to 10 starts in 120 s (about 20 s of a crash loop); then
# systemd gives up, the failure is reported (app.failed@.service) and the report starts it
# again 5min later.
StartLimitIntervalSec=120
StartLimitBurst=10
OnFailure=app.failed@%n.service

[Service]
Type=notify
NotifyAccess=main
User=app
Group=app
# Not `current`: Gunicorn takes the directory it starts in as the default of its chdir setting and
# checks that default at every reload. Started in `current` (a release), the HUP after the health
# gate pruned that release failed ("can't chdir to ...") and systemd killed every worker mid-request.
# Gunicorn still moves into `current` itself (chdir in gunicorn.conf.py), at start and each HUP.
WorkingDirectory=/srv/app
EnvironmentFile=/etc/app/app.env
EnvironmentFile=-/etc/app/secrets.env
ExecStart=/srv/app/current/venv/bin/python -m gunicorn --config /etc/app/gunicorn.conf.py
ExecReload=/bin/kill -s HUP $MAINPID
KillMode=mixed
TimeoutStopSec=40
Restart=on-failure
RestartSec=2s
StateDirectory=app
StateDirectoryMode=0750
UMask=0027

# Hardening: the app reads its release, writes only its state directory and /tmp.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
DevicePolicy=closed
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
FLASKSTACK_B4F83A3FBD7DAFB8
mkdir -p "$stage/files"/etc/systemd/system
cat > "$stage/files"/etc/systemd/system/app.socket <<'FLASKSTACK_0DB59B6CA22AA3AE'
# Rendered by flask-stack for app. Do not edit here: the next deploy replaces it.
[Unit]
Description=app: Gunicorn's listening socket
# Not PartOf the service: the socket stays open while Gunicorn restarts, so connections wait
# in the backlog instead of being refused.

[Socket]
ListenStream=/run/app/gunicorn.sock
# Only the front (haproxy) may connect.
SocketUser=root
SocketGroup=haproxy
SocketMode=0660
Backlog=1024

[Install]
WantedBy=sockets.target
FLASKSTACK_0DB59B6CA22AA3AE
chgrp -R app "$stage/files"; chmod -R g+rX "$stage/files"
if [ ! -s /etc/app/tls/fullchain.pem ] || [ ! -s /etc/app/tls/privkey.pem ] || [ ! -s /etc/app/tls/haproxy.pem ]; then
  install -d -m 0700 -o root -g root /etc/app/tls
  ( umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=example.com -addext subjectAltName=DNS:example.com -keyout /etc/app/tls/privkey.pem -out /etc/app/tls/fullchain.pem >/dev/null 2>&1 ) || fail "could not make a placeholder certificate with openssl"
  ( umask 077; cat /etc/app/tls/fullchain.pem /etc/app/tls/privkey.pem > /etc/app/tls/haproxy.pem )
  echo "flask-stack: no certificate for example.com on web-0 yet: a self-signed placeholder serves HTTPS until the certificate step installs the real one"
fi
haproxy -c -q -f "$stage/files/etc/haproxy/haproxy.cfg" || fail "the new HAProxy config is invalid (see above); nothing was installed, the old config keeps serving"
if ! out=$(systemd-run --quiet --wait --pipe --collect --service-type=exec --uid=app --gid=app --working-directory=/srv/app/current --property=EnvironmentFile=-/etc/app/app.env --property=EnvironmentFile=-/etc/app/secrets.env /srv/app/current/venv/bin/python -m gunicorn --check-config -c "$stage/files"/etc/app/gunicorn.conf.py </dev/null 2>&1); then
  echo "$out" >&2
  hint=""
  if grep -qE 'Read-only file system|Permission denied' <<<"$out"; then
    hint=" The app tried to write where it may not: its release is read-only on the host, and it may write only under /var/lib/app (\$STATE_DIRECTORY); point the path at it, e.g. with an app.env value such as LOG_DIR=/var/lib/app/logs."
  fi
  fail "the app did not load with the new config: Gunicorn's --check-config failed (above); nothing was installed.$hint"
fi
out=$(systemd-analyze verify "$stage/files"/etc/systemd/system/app.failed@.service "$stage/files"/etc/systemd/system/app.service "$stage/files"/etc/systemd/system/app.socket 2>&1) \
  || { echo "$out" >&2; fail "systemd-analyze verify rejected the new units; nothing was installed"; }
if grep -F "$stage" <<<"$out" >&2; then fail "systemd-analyze verify found problems in the new units (above); nothing was installed"; fi
changed=" "
installing=1
put() {  # put STAGED TARGET MODE GROUP KIND
  local src=$1 dst=$2 mode=$3 group=$4 kind=$5
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    # Same content: only an owner or mode changed by hand is put right (nothing reloads).
    if [ "$(stat -c '%a %U:%G' "$dst")" != "${mode#0} root:$group" ]; then
      chown "root:$group" "$dst"; chmod "$mode" "$dst"; echo "put back the owner and mode of $dst"
    fi
    return 0
  fi
  mkdir -p "$rb/files$(dirname "$dst")"
  if [ -f "$dst" ]; then
    [ -e "$rb/files$dst" ] || cp -a "$dst" "$rb/files$dst"
  else
    grep -qxF "$dst" "$rb/created" 2>/dev/null || echo "$dst" >> "$rb/created"
  fi
  install -m "$mode" -o root -g "$group" "$src" "$dst.flaskstack-new"
  mv -f "$dst.flaskstack-new" "$dst"
  changed="$changed$kind "
}
put "$stage/files"/etc/app/flaskstack_wsgi.py /etc/app/flaskstack_wsgi.py 0640 app gunicorn
put "$stage/files"/etc/app/gunicorn.conf.py /etc/app/gunicorn.conf.py 0640 app gunicorn
put "$stage/files"/etc/app/report-failure /etc/app/report-failure 0600 root nothing
put "$stage/files"/etc/haproxy/haproxy.cfg /etc/haproxy/haproxy.cfg 0644 root front
put "$stage/files"/etc/systemd/system/app.failed@.service /etc/systemd/system/app.failed@.service 0644 root daemon
put "$stage/files"/etc/systemd/system/app.service /etc/systemd/system/app.service 0644 root units
put "$stage/files"/etc/systemd/system/app.socket /etc/systemd/system/app.socket 0644 root socket
case "$changed" in *" units "*|*" socket "*|*" daemon "*) systemctl daemon-reload ;; esac
systemctl enable --quiet app.socket app.service
if [[ "$changed" == *" socket "* ]] && systemctl is-active --quiet app.socket; then
  # A new listening address: the only change that briefly refuses connections.
  systemctl stop app.service app.socket
fi
systemctl start app.socket
if systemctl is-active --quiet app.service; then
  if [[ "$changed" == *" units "* || "$changed" == *" socket "* ]]; then
    systemctl restart app.service
  elif [[ "$changed" == *" gunicorn "* ]]; then
    reload_and_wait app.service 40
  fi
else
  systemctl reset-failed app.service 2>/dev/null || true
  systemctl start app.service || { journalctl -u app.service -n 40 --no-pager >&2 || true; fail "the app did not start (its journal is above)"; }
fi
# One public front: the other one, if a previous config used it, steps aside.
if systemctl is-active --quiet nginx 2>/dev/null; then systemctl disable --now --quiet nginx; fi
systemctl enable --quiet haproxy
if ! systemctl is-active --quiet haproxy; then
  systemctl start haproxy
elif [[ "$changed" == *" front "* ]]; then
  reload_and_wait haproxy 30
fi
if [ "$changed" != " " ] && ! healthy_within 60; then
  capture_journal
  undo_config
  if [ $first = 1 ]; then unhealthy "Removed this first config of the app again (the front's own config is back)" first; fi
  unhealthy "Put back the previous config"
fi
installing=0
echo "configured web-0:$changed"
