set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: certificate on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: certificate on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
install -d -m 0700 -o root -g root /etc/app/tls
install -d -m 0755 /etc/letsencrypt/renewal-hooks/deploy
cat > /etc/letsencrypt/renewal-hooks/deploy/flask-stack-app.new <<'FLASKSTACK_70B72C8862518815'
#!/bin/sh
# Rendered by flask-stack for app. Do not edit here: the next deploy replaces it.
# Installs the certificate of example.com where haproxy reads it (/etc/app/tls),
# hands it to the running HAProxy through its runtime API (no reload: not one connection is
# closed; a reload only when that API refuses), and checks that it serves the new certificate;
# if it does not, the previous one is put back.
# certbot runs this after every renewal (certbot.timer), the deploy's certificate step after
# obtaining one; for other certificates it does nothing. Safe to run again.
# (Values enter quoted: `sh` as a word, `dq` inside double quotes, as in the step scripts.)
set -eu
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
lineage=/etc/letsencrypt/live/example.com
[ "${RENEWED_LINEAGE:-}" = "$lineage" ] || exit 0
dir=/etc/app/tls
# To the caller and to the journal (certbot -q, as certbot.timer runs it, shows hooks nothing).
say() {
  echo "flask-stack renew hook (example.com, $(hostname)): $*" >&2
  logger -t flask-stack -- "renew hook (example.com): $*" 2>/dev/null || true
}
umask 077
mkdir -p "$dir"
new=$(mktemp -d "$dir/.new.XXXXXX")
trap 'rm -rf "$new"' EXIT
cp "$lineage/fullchain.pem" "$new/fullchain.pem"
cp "$lineage/privkey.pem" "$new/privkey.pem"
cat "$new/fullchain.pem" "$new/privkey.pem" > "$new/haproxy.pem"
same=1
for f in fullchain.pem privkey.pem haproxy.pem; do
  cmp -s "$new/$f" "$dir/$f" || same=0
done
[ $same = 0 ] || exit 0

rm -rf "$dir/.previous"
mkdir "$dir/.previous"
for f in fullchain.pem privkey.pem haproxy.pem; do
  if [ -f "$dir/$f" ]; then cp -p "$dir/$f" "$dir/.previous/$f"; fi
done
for f in fullchain.pem privkey.pem haproxy.pem; do mv -f "$new/$f" "$dir/$f"; done
systemctl is-active --quiet haproxy || exit 0

fingerprint() { openssl x509 -noout -fingerprint -sha256 2>/dev/null || true; }
served() {
  timeout 5 openssl s_client -connect 127.0.0.1:443 -servername example.com </dev/null 2>/dev/null \
    | fingerprint
}
want=$(fingerprint < "$dir/fullchain.pem")
# api COMMAND [PAYLOAD-FILE]: one command on HAProxy's runtime API (the stats socket of
# haproxy.cfg), its answer on stdout. python3 is on every host (bootstrap); socat need not be.
api() {
  python3 - "$@" <<'PY'
import socket
import sys

command = sys.argv[1].encode()
if len(sys.argv) > 2:
    with open(sys.argv[2], "rb") as payload:
        command += b" <<\n" + payload.read().strip(b"\n") + b"\n"
with socket.socket(socket.AF_UNIX) as api:
    api.settimeout(10)
    api.connect("/run/haproxy/admin.sock")
    api.sendall(command + b"\n")
    answer = b""
    while True:
        chunk = api.recv(65536)
        if not chunk:
            break
        answer += chunk
sys.stdout.write(answer.decode("utf-8", "replace"))
PY
}
# HAProxy swaps chain and key together for every new handshake; connections keep theirs.
pem=/etc/app/tls/haproxy.pem
if ! { api "set ssl cert $pem" "$pem" 2>&1 | grep -q "Transaction" \
       && api "commit ssl cert $pem" 2>&1 | grep -q "Success"; }; then
  api "abort ssl cert $pem" >/dev/null 2>&1 || true
  say "HAProxy's runtime API did not take the new certificate; reloading HAProxy instead"
  systemctl reload haproxy || true
fi
# A reload returns before the new workers serve: ask what is served until it is the new one.
tries=150
while [ "$(served)" != "$want" ]; do
  tries=$((tries - 1))
  if [ $tries -le 0 ]; then
    for f in fullchain.pem privkey.pem haproxy.pem; do
      if [ -f "$dir/.previous/$f" ]; then cp -p "$dir/.previous/$f" "$dir/$f"; fi
    done
    systemctl reload haproxy || systemctl restart haproxy || true
    say "haproxy did not serve the new certificate within 30 s; put back the previous one"
    exit 1
  fi
  sleep 0.2
done
say "haproxy serves the new certificate ($(openssl x509 -noout -enddate < "$dir/fullchain.pem"))"
FLASKSTACK_70B72C8862518815
chmod 0755 /etc/letsencrypt/renewal-hooks/deploy/flask-stack-app.new; mv -f /etc/letsencrypt/renewal-hooks/deploy/flask-stack-app.new /etc/letsencrypt/renewal-hooks/deploy/flask-stack-app
# The ACME server's HTTPS certificate comes from a private CA (tls.acmeCaBundle): the
# ACME client trusts it besides the system's CAs, here and in certbot.service (renewals).
cat > /etc/app/tls/acme-ca.pem <<'FLASKSTACK_C4D0A2646E124B73'
-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUa4pn3Qv2WSE/Xdtin3HAEOavi00wCgYIKoZIzj0EAwIw
IzEhMB8GA1UEAwwYZmxhc2stc3RhY2sgdGVzdCBBQ01FIENBMB4XDTI2MTEyNDA4
MTUxOFoXDTM2MTEyMTA4MTUxOFowIzEhMB8GA1UEAwwYZmxhc2stc3RhY2sgdGVz
dCBBQ01FIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbE0t7n644M2HqnRJ
2pG0uwyGfbzcPsiDOUE3X0P2iWvrju6EopKQwdoQ5uNd1qIfbDOUtJyPRAXFBrEC
6ZnyRaNTMFEwHQYDVR0OBBYEFPebZ12H6rFUcFXLH+s5/hvqmf/ZMB8GA1UdIwQY
MBaAFPebZ12H6rFUcFXLH+s5/hvqmf/ZMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI
zj0EAwIDRwAwRAIgA/EN2hYIvNqfpdIapx25OVOhtGJ4LC72l/9acUjlpqsCIAni
SR1NQEmnF/ivwKVIk7eHAH6+aOSG+Svq4HJk0cN1
-----END CERTIFICATE-----
FLASKSTACK_C4D0A2646E124B73
cat /etc/ssl/certs/ca-certificates.crt /etc/app/tls/acme-ca.pem > /etc/app/tls/acme-ca-bundle.pem.new && mv -f /etc/app/tls/acme-ca-bundle.pem.new /etc/app/tls/acme-ca-bundle.pem
export REQUESTS_CA_BUNDLE=/etc/app/tls/acme-ca-bundle.pem
# certbot.service (renewals): a failed renewal is reported as the app's failed units are, and
# it trusts that CA too.
install -d -m 0755 /etc/systemd/system/certbot.service.d
cat > /etc/systemd/system/certbot.service.d/flask-stack-app.conf.new <<'FLASKSTACK_7F0D149F8A84DDD8'
# Rendered by flask-stack for app.
[Unit]
OnFailure=app.failed@%n.service
[Service]
Environment=REQUESTS_CA_BUNDLE=/etc/app/tls/acme-ca-bundle.pem
FLASKSTACK_7F0D149F8A84DDD8
if cmp -s /etc/systemd/system/certbot.service.d/flask-stack-app.conf.new /etc/systemd/system/certbot.service.d/flask-stack-app.conf; then rm -f /etc/systemd/system/certbot.service.d/flask-stack-app.conf.new; else mv -f /etc/systemd/system/certbot.service.d/flask-stack-app.conf.new /etc/systemd/system/certbot.service.d/flask-stack-app.conf; systemctl daemon-reload; fi
systemctl enable --now --quiet certbot.timer || fail "certbot.timer (renewals) could not be started"
acme=https://acme.internal:9000/dir
# A certificate from another ACME server, or answered another way, is replaced now: renewals
# would otherwise keep going to the old server, or answer challenges where nothing listens.
force=()
if [ -f /etc/letsencrypt/renewal/example.com.conf ]; then
  grep -qxF 'server = https://acme.internal:9000/dir' /etc/letsencrypt/renewal/example.com.conf || force=(--force-renewal)
  grep -qxF 'authenticator = standalone' /etc/letsencrypt/renewal/example.com.conf || force=(--force-renewal)
fi
if ! out=$(certbot certonly --non-interactive --agree-tos --no-eff-email --email ops@example.com --server https://acme.internal:9000/dir --cert-name example.com --preferred-challenges http --keep-until-expiring --standalone --http-01-address 127.0.0.1 --http-01-port 8402 --domain example.com "${force[@]}" 2>&1); then
  fail "no certificate for example.com from $acme: the ACME server could not validate host web-0 (203.0.113.10) over HTTP-01 or refused the order. Nothing changed on the host: it serves what it served before. Check that example.com resolve to this host and that port 80 is open to the internet. certbot said:
$(tail -n 25 <<<"$out")"
fi
RENEWED_LINEAGE=/etc/letsencrypt/live/example.com /etc/letsencrypt/renewal-hooks/deploy/flask-stack-app \
  || fail "the certificate for example.com was obtained but the front did not serve it (above); the previous certificate serves again"
echo "flask-stack: web-0 serves the certificate of example.com from $acme; certbot.timer renews it"
