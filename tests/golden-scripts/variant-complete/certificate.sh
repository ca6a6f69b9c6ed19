set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: certificate on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: certificate on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
install -d -m 0700 -o root -g root /etc/rocket-shop/tls
install -d -m 0755 /etc/letsencrypt/renewal-hooks/deploy
cat > /etc/letsencrypt/renewal-hooks/deploy/flask-stack-rocket-shop.new <<'FLASKSTACK_84E818CA31B333C4'
#!/bin/sh
# Rendered by flask-stack for rocket-shop. Do not edit here: the next deploy replaces it.
# Installs the certificate of example.com where nginx reads it (/etc/rocket-shop/tls),
# reloads nginx and checks that it serves the new certificate; if it does not, the previous
# one is put back.
# certbot runs this after every renewal (certbot.timer), the deploy's certificate step after
# obtaining one; for other certificates it does nothing. Safe to run again.
# (Values enter quoted: `sh` as a word, `dq` inside double quotes, as in the step scripts.)
set -eu
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
lineage=/etc/letsencrypt/live/example.com
[ "${RENEWED_LINEAGE:-}" = "$lineage" ] || exit 0
dir=/etc/rocket-shop/tls
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
systemctl is-active --quiet nginx || exit 0

fingerprint() { openssl x509 -noout -fingerprint -sha256 2>/dev/null || true; }
served() {
  timeout 5 openssl s_client -connect 127.0.0.1:443 -servername example.com </dev/null 2>/dev/null \
    | fingerprint
}
want=$(fingerprint < "$dir/fullchain.pem")
systemctl reload nginx || true
# A reload returns before the new workers serve: ask what is served until it is the new one.
tries=150
while [ "$(served)" != "$want" ]; do
  tries=$((tries - 1))
  if [ $tries -le 0 ]; then
    for f in fullchain.pem privkey.pem haproxy.pem; do
      if [ -f "$dir/.previous/$f" ]; then cp -p "$dir/.previous/$f" "$dir/$f"; fi
    done
    systemctl reload nginx || systemctl restart nginx || true
    say "nginx did not serve the new certificate within 30 s; put back the previous one"
    exit 1
  fi
  sleep 0.2
done
say "nginx serves the new certificate ($(openssl x509 -noout -enddate < "$dir/fullchain.pem"))"
FLASKSTACK_84E818CA31B333C4
chmod 0755 /etc/letsencrypt/renewal-hooks/deploy/flask-stack-rocket-shop.new; mv -f /etc/letsencrypt/renewal-hooks/deploy/flask-stack-rocket-shop.new /etc/letsencrypt/renewal-hooks/deploy/flask-stack-rocket-shop
# certbot.service (renewals): a failed renewal is reported as the app's failed units are.
install -d -m 0755 /etc/systemd/system/certbot.service.d
cat > /etc/systemd/system/certbot.service.d/flask-stack-rocket-shop.conf.new <<'FLASKSTACK_5A2F51B98AE0AFBF'
# Rendered by flask-stack for rocket-shop.
[Unit]
OnFailure=rocket-shop.failed@%n.service
FLASKSTACK_5A2F51B98AE0AFBF
if cmp -s /etc/systemd/system/certbot.service.d/flask-stack-rocket-shop.conf.new /etc/systemd/system/certbot.service.d/flask-stack-rocket-shop.conf; then rm -f /etc/systemd/system/certbot.service.d/flask-stack-rocket-shop.conf.new; else mv -f /etc/systemd/system/certbot.service.d/flask-stack-rocket-shop.conf.new /etc/systemd/system/certbot.service.d/flask-stack-rocket-shop.conf; systemctl daemon-reload; fi
systemctl enable --now --quiet certbot.timer || fail "certbot.timer (renewals) could not be started"
acme=https://acme-v02.api.letsencrypt.org/directory
# A certificate from another ACME server, or answered another way, is replaced now: renewals
# would otherwise keep going to the old server, or answer challenges where nothing listens.
force=()
if [ -f /etc/letsencrypt/renewal/example.com.conf ]; then
  grep -qxF 'server = https://acme-v02.api.letsencrypt.org/directory' /etc/letsencrypt/renewal/example.com.conf || force=(--force-renewal)
  grep -qxF 'authenticator = webroot' /etc/letsencrypt/renewal/example.com.conf || force=(--force-renewal)
fi
if ! out=$(certbot certonly --non-interactive --agree-tos --no-eff-email --email ops@example.com --server https://acme-v02.api.letsencrypt.org/directory --cert-name example.com --preferred-challenges http --keep-until-expiring --webroot --webroot-path /var/www/acme --domain example.com --domain www.example.com "${force[@]}" 2>&1); then
  fail "no certificate for example.com and www.example.com from $acme: the ACME server could not validate host web-0 (203.0.113.10) over HTTP-01 or refused the order. Nothing changed on the host: it serves what it served before. Check that example.com and www.example.com resolve to this host and that port 80 is open to the internet. certbot said:
$(tail -n 25 <<<"$out")"
fi
RENEWED_LINEAGE=/etc/letsencrypt/live/example.com /etc/letsencrypt/renewal-hooks/deploy/flask-stack-rocket-shop \
  || fail "the certificate for example.com was obtained but the front did not serve it (above); the previous certificate serves again"
echo "flask-stack: web-0 serves the certificate of example.com and www.example.com from $acme; certbot.timer renews it"
