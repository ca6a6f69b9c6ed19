set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: health gate on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: health gate on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
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
if ! healthy_within 60; then
  capture_journal
  fail "/healthz did not answer 200 within 60 s (last status $code); nothing was changed by this step. Last lines of the app's journal:
$journal"
fi
# Keep the newest 5 releases (the current one among them).
current=/srv/app/current
cd /srv/app/releases
live=$(basename "$(readlink "$current")")
older=0
# Newest first, as `ls -t` orders them (ties by name), without parsing ls.
while read -r _ release; do
  case "$release" in "$live"|.*) continue ;; esac
  older=$((older + 1))
  if [ $older -ge 5 ]; then rm -rf -- "$release"; fi
done < <(find . -mindepth 1 -maxdepth 1 -printf '%T@ %P\n' | sort -k1,1rn -k2,2)
echo "web-0 answers 200 on /healthz"
