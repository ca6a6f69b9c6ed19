set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: host key record on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: host key record on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
dir=$(mktemp -d)
trap 'rm -rf -- "$dir"' EXIT
# The bastion's login key, from stdin: only this user can read it, and it is removed on exit.
(umask 077 && cat > "$dir/key")
proxy="ssh -F /dev/null -i $(printf %q "$dir/key") "'-o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o ConnectTimeout=10 -p 22 -l deploy -W %h:%p 203.0.113.5'
presented() {
  : > "$dir/known"
  ssh -F /dev/null -n -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR \
    -o UserKnownHostsFile="$dir/known" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=accept-new -o HashKnownHosts=no -o CheckHostIP=no -o UpdateHostKeys=no \
    -o HostKeyAlgorithms=ssh-ed25519 -o PubkeyAuthentication=no -o PasswordAuthentication=no \
    -o KbdInteractiveAuthentication=no -o GSSAPIAuthentication=no -o HostbasedAuthentication=no \
    -o ProxyCommand="$proxy" \
    -p 22 -l root 203.0.113.10 true > /dev/null 2> "$dir/err" || true
  local _ type key
  read -r _ type key _ < "$dir/known" || return 1
  [ -n "$key" ] || return 1
  echo "$type $key"
}
deadline=$((SECONDS + 600))
until got=$(presented); do
  if [ $SECONDS -ge $deadline ]; then
    fail "SSH did not show its host key within 600 s: $(tail -n 1 "$dir/err")"
  fi
  sleep 5
done
echo "$got"
