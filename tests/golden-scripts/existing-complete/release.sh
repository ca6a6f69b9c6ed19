set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: release on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: release on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
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
  all=$(journalctl -u rocket.service -n 400 --no-pager -o short-precise 2>&1 \
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
  elif healthy_within 120; then after="the previous version answers 200 again"
  else after="the previous version does not answer either (status $code)"; fi
  fail "/healthz did not answer 200 within 120 s (last status $last). $1; $after. Last lines of the app's journal:
$journal"
}
rel=/srv/rocket/releases/0123456789abcdef0123; archive=/var/tmp/rocket-release-0123456789abcdef0123.tar.gz; current=/srv/rocket/current
if [ ! -f "$rel/.flaskstack/complete" ]; then
  # The pins were resolved for one exact Python (markers like python_full_version): check it first.
  python=$(python3 -c 'import platform; print(platform.python_version())') \
    || fail "python3 does not run (bootstrap installs python3-venv)"
  [ "$python" = "3.11.2" ] || fail "python3 here is $python, but the release's requirements were resolved for Python 3.11.2: set flask-stack:hosts.python to \"$python\" (it defaults to the image's Python) and run pulumi up again"
  [ -f "$archive" ] || fail "the release archive $archive is missing; run pulumi up again to copy it"
  echo 0123456789abcdef012344444444444444444444444444444444444444444444"  $archive" | sha256sum --check --quiet - \
    || fail "the release archive $archive is damaged (checksum mismatch); run pulumi up again"
  rm -rf "$rel"
  # A release that fails half-unpacked leaves nothing behind (the next run starts afresh).
  trap 'rc=$?; if [ $rc -ne 0 ]; then rm -rf "$rel"; fi' EXIT
  install -d -m 0751 -o root -g rocket "$rel"
  # A release whose dependencies are those of a release already here (the usual case: only the
  # app's code changed) starts from a hard-linked copy of that release's venv instead of
  # installing every wheel again; pip never rewrites an installed file in place, so the two
  # releases cannot change each other's.
  deps=c61cccd5ccae2e70c9d4
  reuse=""
  for other in "$(readlink -f "$current" 2>/dev/null || true)" /srv/rocket/releases/*; do
    if [ -n "$other" ] && [ "$other" != "$rel" ] && [ -f "$other/.flaskstack/complete" ] \
        && [ -x "$other/venv/bin/python" ] && [ "$(cat "$other/.flaskstack/deps" 2>/dev/null)" = "$deps" ]; then
      reuse=$other
      break
    fi
  done
  if [ -n "$reuse" ]; then
    tar -xzf "$archive" -C "$rel" --no-same-owner --no-same-permissions --exclude=.flaskstack/wheelhouse
    cp -al "$reuse/venv" "$rel/venv"
    # Scripts and the venv's own files name its path: point them at this release's.
    { grep -rlF --null "$reuse/venv" "$rel/venv/bin" "$rel/venv/pyvenv.cfg" || true; } \
      | xargs -0r sed -i "s|$reuse/venv|$rel/venv|g"
  else
    tar -xzf "$archive" -C "$rel" --no-same-owner --no-same-permissions
    python3 -m venv "$rel/venv" || fail "python3 -m venv failed (is python3-venv installed?)"
    # Every wheel is checked against the sha256 its requirements line gives (--require-hashes).
    "$rel/venv/bin/python" -m pip install --quiet --no-index --require-hashes --disable-pip-version-check --no-warn-script-location --find-links "$rel/.flaskstack/wheelhouse" -r "$rel/.flaskstack/requirements.txt" || fail "installing the app's requirements from its wheelhouse failed"
  fi
  if [ -f "$rel/.flaskstack/project.txt" ]; then
    "$rel/venv/bin/python" -m pip install --quiet --no-index --require-hashes --no-deps --force-reinstall \
      --disable-pip-version-check --find-links "$rel/.flaskstack/project" -r "$rel/.flaskstack/project.txt" \
      || fail "installing the app's own package failed"
  fi
  echo "$deps" > "$rel/.flaskstack/deps"
  rm -rf "$rel/.flaskstack/wheelhouse"
  # Flask keeps its instance folder beside the app: point it at the writable state directory.
  [ -e "$rel/instance" ] || ln -s /var/lib/rocket/instance "$rel/instance"
  chown -R root:rocket "$rel"
  chmod -R u+rwX,g+rX,g-w,o-rwx "$rel"
  chmod 0751 "$rel"
  touch "$rel/.flaskstack/complete"
  trap - EXIT
fi
rm -f "$archive"
# The release command runs once per rollout, here, before any traffic switches: not again when
# this step runs for a change of processes or schedules alone (the release is current already
# and this very command ran for it), but again for a new or changed command.
ran="$rel/.flaskstack/release-command"
if [ "$(readlink "$current" 2>/dev/null || true)" != "$rel" ] || [ "$(cat "$ran" 2>/dev/null || true)" != d5804056de418a15a46c6369d75a5a27f214ca6c2ff106273bb063c10107ddc8 ]; then
systemd-run --quiet --wait --pipe --collect --service-type=exec --uid=rocket --gid=rocket --working-directory=/srv/rocket/releases/0123456789abcdef0123 --property=EnvironmentFile=-/etc/rocket/app.env --property=EnvironmentFile=-/etc/rocket/secrets.env --setenv=PATH=/srv/rocket/releases/0123456789abcdef0123/venv/bin:/usr/local/bin:/usr/bin:/bin /bin/sh -c 'python -c "import rocket"' </dev/null || fail 'the release command failed (above); every host keeps the release it had'
echo d5804056de418a15a46c6369d75a5a27f214ca6c2ff106273bb063c10107ddc8 > "$ran"
fi
wsgi=/etc/rocket/flaskstack_wsgi.py
cat > /etc/rocket/flaskstack_wsgi.py.flaskstack-release <<'FLASKSTACK_0E9EBFC916635CB2'
# Rendered by flask-stack for rocket. Do not edit here: the next deploy replaces it.
"""The WSGI entry Gunicorn serves for rocket: the app named by app.entry (ENTRY below),
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
DRAIN_FILE = "/run/rocket.drain"


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
FLASKSTACK_0E9EBFC916635CB2
previous=$(readlink "$current" 2>/dev/null || true)
# preflight: before `current` switches, the new release loads and answers the health path in a
# process of its own (stack/preflight.py): the app's user, its environment files, the app unit's
# sandbox, the host's Gunicorn config with the release's WSGI entry beside it. A release that
# cannot import, or whose health path fails, stops here: no HUP, no request served by it, nothing
# to roll back, and a balancer in front never sees this host falter. The release step and the
# rollback verb include it, with `previous` set to the release the host serves.
preflight() {
  local dir out
  dir=$(mktemp -d /run/rocket-preflight.XXXXXX)
  install -m 0640 -o root -g rocket /etc/rocket/gunicorn.conf.py "$dir/gunicorn.conf.py"
  install -m 0640 -o root -g rocket "$wsgi.flaskstack-release" "$dir"/flaskstack_wsgi.py
cat > "$dir"/preflight.py <<'FLASKSTACK_964471F1AAD38422'
"""The release step's check of a new release before it switches (templates/scripts/preflight.sh.j2
carries this file to the host): load the app the way a Gunicorn worker of the release will, then
ask it, in this process, the health path as the deploy's gate asks it through the front. Exit 0
when that answers 200; otherwise print why (the traceback, or the status and the start of the
body) and exit 1.

It runs on the host with the new release's own Python, as the app's user, inside the app unit's
sandbox and with its environment files, so it must not import anything of flask-stack and must
run on any Python the release's venv may have: standard library and Gunicorn only.

    python preflight.py GUNICORN_CONF RELEASE_DIR HEALTH_PATH

GUNICORN_CONF is a copy of the host's Gunicorn config beside the new release's WSGI entry (the
config puts its own directory on sys.path); RELEASE_DIR replaces the config's `chdir`, which
names the `current` link that has not switched yet (and Gunicorn checks that it exists).
"""

import io
import os
import sys
import traceback


def load(conf, release):
    """The release's WSGI callable, loaded as Gunicorn loads it: the config file (its `chdir`
    replaced by the release's directory), then chdir there (the directory first on sys.path),
    then the config's wsgi_app. A gevent worker patches the standard library before it loads the
    app, so this does too."""
    from gunicorn.app.wsgiapp import WSGIApplication

    class Release(WSGIApplication):
        def get_config_from_filename(self, filename):
            settings = super().get_config_from_filename(filename)
            settings["chdir"] = release
            return settings

    sys.argv = ["gunicorn", "--config", conf]
    application = Release("%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn")
    if application.cfg.worker_class_str == "gevent":
        from gevent import monkey

        monkey.patch_all()
    return application.wsgi()


def ask(app, path):
    """(status line, start of the body) of GET `path` with the headers the gate's request carries
    when the front passes it on: Host localhost from 127.0.0.1, over plain HTTP."""
    environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_HOST": "localhost", "HTTP_X_FORWARDED_FOR": "127.0.0.1",
               "HTTP_X_FORWARDED_PROTO": "http", "REMOTE_ADDR": "127.0.0.1",
               "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
               "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
               "wsgi.run_once": False}
    answer = []

    def start_response(status, headers, exc_info=None):
        answer.append(status)
        return lambda data: None

    body = app(environ, start_response)
    chunks = []
    try:
        for chunk in body:
            if sum(map(len, chunks)) < 300:
                chunks.append(chunk)
    finally:
        if hasattr(body, "close"):
            body.close()
    text = b"".join(chunks)[:300].decode("utf-8", "replace")
    return (answer[0] if answer else "no status"), text


def main(argv):
    conf, release, path = argv
    try:
        app = load(conf, release)
    except SystemExit:  # Gunicorn printed its own "Error: ..." for a config it could not read
        print("Gunicorn could not read its config with the new release (above)", file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        print("the new release's app did not load (the traceback above)", file=sys.stderr)
        return 1
    try:
        status, text = ask(app, path)
    except BaseException:
        traceback.print_exc()
        print(f"GET {path} raised in the new release (the traceback above)", file=sys.stderr)
        return 1
    if status.split(" ", 1)[0] != "200":
        print(f"GET {path} answered {status} in the new release: {text.strip()[:200]!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Not sys.exit: a thread the app started at import (a scheduler, a client's pool) would keep
    # an ordinary exit waiting for it.
    os._exit(code)
FLASKSTACK_964471F1AAD38422

  chgrp rocket "$dir" "$dir/preflight.py"
  chmod 0750 "$dir"; chmod 0640 "$dir/preflight.py"
  if ! out=$(systemd-run --quiet --wait --pipe --collect --service-type=exec --uid=rocket --gid=rocket --working-directory=/srv/rocket/releases/0123456789abcdef0123 --property=EnvironmentFile=-/etc/rocket/app.env --property=EnvironmentFile=-/etc/rocket/secrets.env --property=StateDirectory=rocket --property=UMask=0027 --property=RuntimeMaxSec=120 --property=NoNewPrivileges=yes --property=CapabilityBoundingSet= --property=AmbientCapabilities= --property=ProtectSystem=strict --property=ProtectHome=yes --property=PrivateTmp=yes --property=PrivateDevices=yes --property=PrivateUsers=yes --property=ProtectHostname=yes --property=ProtectClock=yes --property=ProtectKernelTunables=yes --property=ProtectKernelModules=yes --property=ProtectKernelLogs=yes --property=ProtectControlGroups=yes --property=ProtectProc=invisible --property=ProcSubset=pid '--property=RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' --property=RestrictNamespaces=yes --property=RestrictRealtime=yes --property=RestrictSUIDSGID=yes --property=LockPersonality=yes --property=MemoryDenyWriteExecute=yes --property=RemoveIPC=yes --property=DevicePolicy=closed --property=KeyringMode=private --property=SystemCallArchitectures=native --property=SystemCallFilter=@system-service '--property=SystemCallFilter=~@privileged @resources' --property=SystemCallErrorNumber=EPERM --setenv=PATH=/srv/rocket/releases/0123456789abcdef0123/venv/bin:/usr/local/bin:/usr/bin:/bin --setenv=HOME=/var/lib/rocket /srv/rocket/releases/0123456789abcdef0123/venv/bin/python "$dir/preflight.py" "$dir/gunicorn.conf.py" /srv/rocket/releases/0123456789abcdef0123 /healthz </dev/null 2>&1); then
    rm -rf "$dir"
    echo "$out" >&2
    fail "release 0123456789abcdef0123 failed its check before the switch (above: it loads the app as a worker would and asks /healthz once, within 120 s), so nothing switched: this host keeps serving release ${previous##*/}, and no request reached the new one"
  fi
  rm -rf "$dir"
}
if [ -n "$previous" ] && [ "$previous" != "$rel" ] && systemctl is-active --quiet rocket.service; then
  preflight
fi
switched=0
wsgi_old=""
# Whatever makes this step fail after the switch, the previous release is put back first.
undo_release() {
  [ $switched = 1 ] && [ -n "$previous" ] || return 0
  switched=0
  if [ -n "$wsgi_old" ]; then cp -a "$wsgi_old" "$wsgi"; fi
  ln -sfn "$previous" "$current.new"
  mv -Tf "$current.new" "$current"
  systemctl reset-failed rocket.service 2>/dev/null || true
  systemctl restart rocket.service || true
}
# Putting back the units of processes and schedules (processes.sh.j2 sets what they use):
# first what runs or is enabled now and was not before stops, then the replaced files return and
# the created ones go; once the release is back too, what ran before starts again.
units_installing=0; units_undone=0; units_stage=""
undo_units() {
  [ $units_installing = 1 ] || return 0
  units_installing=0
  local name
  for name in $(our_active); do grep -qxF "$name" <<<"$active_before" || systemctl stop "$name" || true; done
  for name in $(our_units); do grep -qxF "$name" <<<"$enabled_before" || systemctl disable --quiet "$name" || true; done
  if [ -d "$urb/files" ]; then cp -a "$urb/files/." /; fi
  if [ -f "$urb/created" ]; then xargs -r rm -f < "$urb/created"; fi
  systemctl daemon-reload
  for name in $enabled_before; do systemctl enable --quiet "$name" || true; done
  units_undone=1
}
restart_previous_units() {
  [ $units_undone = 1 ] || return 0
  units_undone=0
  local name
  for name in $active_before; do
    systemctl reset-failed "$name" 2>/dev/null || true
    systemctl restart "$name" || true
  done
}
trap 'rc=$?; if [ $rc -ne 0 ]; then undo_units; undo_release; restart_previous_units; fi; rm -f ${wsgi:+"$wsgi.flaskstack-release"} ${wsgi_old:+"$wsgi_old"}; rm -rf ${units_stage:+"$units_stage"}' EXIT
if [ "$previous" != "$rel" ]; then
  if systemctl is-active --quiet rocket.service && ! cmp -s "$wsgi.flaskstack-release" "$wsgi"; then
    wsgi_old=$(mktemp)
    cp -a "$wsgi" "$wsgi_old"
    install -m 0640 -o root -g rocket "$wsgi.flaskstack-release" "$wsgi.new"
    mv -f "$wsgi.new" "$wsgi"
  fi
  ln -sfn "$rel" "$current.new"
  mv -Tf "$current.new" "$current"
  if systemctl is-active --quiet rocket.service; then
    switched=1
    reload_and_wait rocket.service 40 || true
    # Healthy means: every worker runs the new release, and the front gets 200 from it.
    if ! wait_workers_in "$rel" rocket.service 120 \
        || ! healthy_within 120; then
      probe || true  # the workers never took the release: report what the front answers now
      capture_journal
      if [ -n "$previous" ]; then
        undo_release
        unhealthy "Rolled back to release $(basename "$previous")"
      fi
      unhealthy "Nothing older to go back to"
    fi
  fi
fi
# -- processes and schedules: their units switch with the release -----------------------------
# What this host runs of processes.* and schedules.* (only files flask-stack wrote for this app,
# by their first line), the new units staged and checked first, then installed; every process
# instance restarts on the new release (SIGTERM, up to its stopTimeout, start) and must keep
# running for 5 s. If one does not, the units, their enablement and the release go back
# to what ran before, and that starts again.
systemd_dir=/etc/systemd/system
header='# Rendered by flask-stack for rocket. Do not edit here: the next deploy replaces it.'
ours() { [ -f "$1" ] && [ "$(head -n 1 "$1" 2>/dev/null)" = "$header" ]; }
# The instance or timer names enabled, and the units running, of this app's entries.
our_units() {
  local link name file
  for link in "$systemd_dir"/multi-user.target.wants/rocket-* "$systemd_dir"/timers.target.wants/rocket-*; do
    [ -e "$link" ] || [ -L "$link" ] || continue
    name=${link##*/}; file="$systemd_dir/$(sed -E 's/@[^.]*\./@./' <<<"$name")"
    if ours "$file"; then echo "$name"; fi
  done | sort -u
}
our_active() {
  local name
  systemctl list-units --plain --no-legend --state=active 'rocket-*' 2>/dev/null | awk '{print $1}' \
    | while read -r name; do
        if ours "$systemd_dir/$(sed -E 's/@[^.]*\./@./' <<<"$name")"; then echo "$name"; fi
      done | sort -u
}
enabled_before=$(our_units); active_before=$(our_active)
units_stage=$(mktemp -d /etc/rocket/.units.XXXXXX); urb="$units_stage/replaced"
mkdir -p "$units_stage/files$systemd_dir" "$units_stage/files"/etc/rocket "$urb/files"
staged_units=$(find "$units_stage/files$systemd_dir" -type f | sort)
if [ -n "$staged_units" ]; then
  # shellcheck disable=SC2086
  out=$(systemd-analyze verify $staged_units 2>&1) \
    || { echo "$out" >&2; fail "systemd-analyze verify rejected the units of processes or schedules (above); nothing was changed"; }
  if grep -F "$units_stage" <<<"$out" >&2; then fail "systemd-analyze verify found problems in the units of processes or schedules (above); nothing was changed"; fi
fi
units_installing=1
changed_entries=" "
put_unit() {  # put_unit STAGED TARGET MODE ENTRY
  local src=$1 dst=$2 mode=$3 entry=$4
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then return 0; fi
  mkdir -p "$urb/files$(dirname "$dst")"
  if [ -f "$dst" ]; then
    [ -e "$urb/files$dst" ] || cp -a "$dst" "$urb/files$dst"
  else
    echo "$dst" >> "$urb/created"
  fi
  install -m "$mode" -o root -g root "$src" "$dst.flaskstack-new"
  mv -f "$dst.flaskstack-new" "$dst"
  changed_entries="$changed_entries$entry "
}
# What a previous deploy installed here and this one does not want: stopped and removed.
wanted=( )
is_wanted() { local w; for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }
removed=0
for file in "$systemd_dir"/rocket-* /etc/rocket/process-*.env; do
  if [ ! -f "$file" ] || is_wanted "$file"; then continue; fi
  case "$file" in
    *.env) [ "$(head -n 1 "$file")" = "$header" ] || continue ;;
    *) ours "$file" || continue ;;
  esac
  unit=${file##*/}
  case "$unit" in
    *@.service) systemctl stop "${unit%@.service}@*.service" 2>/dev/null || true
                for link in "$systemd_dir"/multi-user.target.wants/"${unit%@.service}"@*.service; do
                  if [ -L "$link" ]; then systemctl disable --quiet "${link##*/}" 2>/dev/null || true; fi
                done ;;
    *.timer|*.service) systemctl disable --now --quiet "$unit" 2>/dev/null || true ;;
  esac
  mkdir -p "$urb/files$(dirname "$file")"
  [ -e "$urb/files$file" ] || cp -a "$file" "$urb/files$file"
  rm -f "$file"
  removed=1
  echo "removed $unit (no longer in the config for this host)"
done
if [ "$changed_entries" != " " ] || [ $removed = 1 ]; then systemctl daemon-reload; fi
new_release=0; [ "$previous" != "$rel" ] && new_release=1
entry_changed() { [[ "$changed_entries" == *" $1 "* ]]; }
restart=()
for i in $(seq 1 1); do
  unit=rocket-worker@$i.service
  systemctl enable --quiet "$unit"
  if [ $new_release = 1 ] || entry_changed worker || ! systemctl is-active --quiet "$unit"; then
    restart+=("$unit")
  fi
done
for link in "$systemd_dir"/multi-user.target.wants/rocket-worker@*.service; do
  [ -L "$link" ] || continue
  i=${link##*@}; i=${i%.service}
  if ! [[ "$i" =~ ^[0-9]+$ ]] || [ "$i" -gt 1 ]; then
    systemctl disable --now --quiet "${link##*/}" || true
    echo "stopped ${link##*/} (processes.worker.count is 1)"
  fi
done
restarts() { systemctl show -p NRestarts --value "$1" 2>/dev/null || echo 0; }
declare -A restarted_at
if [ ${#restart[@]} -gt 0 ]; then
  echo "restarting ${restart[*]}"
  systemctl restart "${restart[@]}" || true
  for unit in "${restart[@]}"; do restarted_at[$unit]=$(restarts "$unit"); done
fi
systemctl enable --quiet rocket-heartbeat.timer
if entry_changed heartbeat; then systemctl restart rocket-heartbeat.timer; else systemctl start rocket-heartbeat.timer; fi
# Every restarted process keeps running: active, and not restarted by systemd meanwhile.
process_failed=""
if [ ${#restart[@]} -gt 0 ]; then
  deadline=$((SECONDS + 5))
  while [ -z "$process_failed" ]; do
    for unit in "${restart[@]}"; do
      if ! systemctl is-active --quiet "$unit" || [ "$(restarts "$unit")" != "${restarted_at[$unit]}" ]; then
        process_failed=$unit
        break
      fi
    done
    [ $SECONDS -lt $deadline ] || break
    sleep 0.5
  done
fi
if [ -n "$process_failed" ]; then
  process_journal=$(journalctl -u "$process_failed" -n 30 --no-pager -o short-precise 2>&1 || true)
  undone="Nothing older to go back to: its units were removed again"
  if [ $switched = 1 ] && [ -n "$previous" ]; then undone="Rolled back to release $(basename "$previous"), its processes included"; fi
  [ $new_release = 1 ] || undone="Put back the previous units of processes and schedules"
  undo_units
  undo_release
  restart_previous_units
  fail "the process $process_failed did not keep running for 5 s after it started (systemd: $(systemctl show -p ActiveState,SubState,Result --value "$process_failed" 2>/dev/null | paste -sd' ' -)). $undone. Last lines of its journal:
$process_journal"
fi
units_installing=0
switched=0
# What `python -m stack rollback` needs later: the WSGI entry this release ran with, and which
# release the deploy made current (a rollback leaves that, so `status` can tell).
install -m 0640 -o root -g rocket "$wsgi.flaskstack-release" "$rel/.flaskstack/wsgi.py"
echo 0123456789abcdef0123 > /srv/rocket/deployed.new
mv -f /srv/rocket/deployed.new /srv/rocket/deployed
echo "release 0123456789abcdef0123 is current on web-0"
