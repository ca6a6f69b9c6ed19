set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: env on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: env on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
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
# Draining, behind a load balancer: before a change that closes connections, the health path
# answers 503 (/run/rocket.drain exists) for 35 s, so the balancer stops sending
# here; after it, the host waits 25 s for the balancer to take it back.
drained=0
drain_start() {
  [ $drained = 0 ] || return 0
  touch /run/rocket.drain
  drained=1
  echo "draining web-0: 35 s for the balancer to stop sending to it"
  sleep 35
}
drain_end() {
  [ $drained = 1 ] || return 0
  rm -f /run/rocket.drain
  drained=2
}
undrain_wait() {
  [ $drained = 2 ] || return 0
  echo "waiting 25 s for the balancer to send to web-0 again"
  sleep 25
}
umask 077
install -d -m 0750 -o root -g rocket /etc/rocket
old=$(mktemp -d); trap 'rm -rf "$old"; rm -f /run/rocket.drain' EXIT
cat > /etc/rocket/app.env.new <<'FLASKSTACK_719DFE07B7E3467C'
# Rendered by flask-stack for rocket. Do not edit here: the next deploy replaces it.
# Plain environment of rocket; secrets are in /etc/rocket/secrets.env (root only).
# systemd also sets STATE_DIRECTORY=/var/lib/rocket: the app's writable directory.
APP_ENV="production"
LOG_LEVEL="info"
FLASKSTACK_719DFE07B7E3467C
cat > /etc/rocket/secrets.env.new
changed=0
for f in /etc/rocket/app.env /etc/rocket/secrets.env; do
  if [ -f "$f" ] && cmp -s "$f.new" "$f"; then
    rm -f "$f.new"
    # Same content: only an owner or mode changed by hand is put right (nothing restarts).
    if [ "$(stat -c '%a %U:%G' "$f")" != "600 root:root" ]; then
      chown root:root "$f"; chmod 0600 "$f"; echo "put back the owner and mode of $f"
    fi
    continue
  fi
  if [ -f "$f" ]; then cp -a "$f" "$old/"; fi
  chown root:root "$f.new"
  chmod 0600 "$f.new"
  mv -f "$f.new" "$f"
  changed=1
done
if [ $changed = 1 ] && systemctl is-active --quiet rocket.service; then
  # The socket stays open, so requests wait in its backlog while Gunicorn restarts.
  drain_start
  systemctl restart rocket.service || true
  drain_end
  if ! healthy_within 120; then
    capture_journal
    cp -a "$old"/. /etc/rocket/
    systemctl reset-failed rocket.service 2>/dev/null || true
    systemctl restart rocket.service || true
    unhealthy "Put back the previous environment"
  fi
  undrain_wait
fi
if [ $changed = 1 ]; then
  # The processes read their environment when they start: running instances restart.
  systemctl try-restart 'rocket-worker@*.service' || true
fi
