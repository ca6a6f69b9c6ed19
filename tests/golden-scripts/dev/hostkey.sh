set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: host key check on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: host key check on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
dir=$(mktemp -d)
trap 'rm -rf -- "$dir"' EXIT
presented() {
  : > "$dir/known"
  ssh -F /dev/null -n -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR \
    -o UserKnownHostsFile="$dir/known" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=accept-new -o HashKnownHosts=no -o CheckHostIP=no -o UpdateHostKeys=no \
    -o HostKeyAlgorithms=ssh-ed25519 -o PubkeyAuthentication=no -o PasswordAuthentication=no \
    -o KbdInteractiveAuthentication=no -o GSSAPIAuthentication=no -o HostbasedAuthentication=no \
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
if [ "$got" != 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkqXN6mLzuD2Pg0Nb1R9UTpQe0cjAIdKdYqPRWs8Ilh' ]; then
  shown=$(printf '%s\n' "$got" | ssh-keygen -lf - | cut -d' ' -f2)
  fail "presented the SSH host key $shown (${got%% *}), but the pinned key (recorded at the machine's first contact, in the stack's state) is SHA256:pp1sKBCt+cwt4kaEuHpNuTH44HlEU+pRTh66Ek62sQs; nothing was done on the host. If the host was rebuilt, check the new key on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then record it again: pulumi up --replace URN, with the URN ending in web-0-hostkey-record (pulumi stack --show-urns); if not, someone may be in the middle: do not deploy to it"
fi
echo "$got"
