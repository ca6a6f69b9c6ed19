set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: host key check on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: host key check on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
dir=$(mktemp -d)
trap 'rm -rf -- "$dir"' EXIT
# The bastion's login key, from stdin: only this user can read it, and it is removed on exit.
(umask 077 && cat > "$dir/key")
proxy="ssh -F /dev/null -i $(printf %q "$dir/key") "'-o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o ConnectTimeout=10 -p 2222 -l deploy -W %h:%p bastion.example.com'
presented() {
  : > "$dir/known"
  ssh -F /dev/null -n -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR \
    -o UserKnownHostsFile="$dir/known" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=accept-new -o HashKnownHosts=no -o CheckHostIP=no -o UpdateHostKeys=no \
    -o HostKeyAlgorithms=ssh-ed25519 -o PubkeyAuthentication=no -o PasswordAuthentication=no \
    -o KbdInteractiveAuthentication=no -o GSSAPIAuthentication=no -o HostbasedAuthentication=no \
    -o ProxyCommand="$proxy" \
    -p 22 -l deploy 203.0.113.10 true > /dev/null 2> "$dir/err" || true
  local _ type key
  read -r _ type key _ < "$dir/known" || return 1
  [ -n "$key" ] || return 1
  echo "$type $key"
}
deadline=$((SECONDS + 90))
until got=$(presented); do
  if [ $SECONDS -ge $deadline ]; then
    fail "SSH did not show its host key within 90 s: $(tail -n 1 "$dir/err")"
  fi
  sleep 5
done
if [ "$got" != 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyR6E6TISzLkMABixy6N+k0E449lzgYW4KdaRZsjbn9' ]; then
  shown=$(printf '%s\n' "$got" | ssh-keygen -lf - | cut -d' ' -f2)
  fail "presented the SSH host key $shown (${got%% *}), but the pinned key (hosts.hostKeys[\"203.0.113.10\"]) is SHA256:MZy0iOU0M/T4n3brlWb+XLe3lBvzMSGat+reQjuptiY; nothing was done on the host. If the host was rebuilt, check the new key on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pin it: pulumi config set --path 'hosts.hostKeys[\"203.0.113.10\"]' \"\$(ssh-keyscan -t ed25519 203.0.113.10 | cut -d' ' -f2-)\"; if not, someone may be in the middle: do not deploy to it"
fi
echo "$got"
