set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: bootstrap on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: bootstrap on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
# app.name is this app's alone on the host: a user, group, unit or folder of that name that
# flask-stack did not make is the host's own, and is never taken over (checked before any change).
taken() { fail "app.name rocket-shop is already used on this host: $1; nothing was changed. Give the app a name of its own (app.name)"; }
for unit in rocket-shop.service rocket-shop.socket; do
  for dir in /lib/systemd/system /usr/lib/systemd/system; do
    if [ -e "$dir/$unit" ]; then taken "a package installed the unit $dir/$unit"; fi
  done
  if [ -e "/etc/systemd/system/$unit" ] && ! grep -qF '# Rendered by flask-stack for rocket-shop' "/etc/systemd/system/$unit"; then
    taken "the unit /etc/systemd/system/$unit is not one flask-stack wrote"
  fi
done
if id -u rocket-shop >/dev/null 2>&1; then
  home=$(getent passwd rocket-shop | cut -d: -f6)
  if [ "$home" != /var/lib/rocket-shop ]; then taken "the user rocket-shop exists, with home $home"; fi
elif getent group rocket-shop >/dev/null; then
  taken "the group rocket-shop exists without the app's user"
fi
if [ ! -d /srv/rocket-shop/releases ]; then  # the first deploy here: nothing of the app exists yet
  for folder in /etc/rocket-shop /var/lib/rocket-shop; do
    if [ -e "$folder" ]; then taken "$folder exists"; fi
  done
fi
# A new cloud host may still be running cloud-init and its first apt run.
if command -v cloud-init >/dev/null 2>&1; then cloud-init status --wait >/dev/null 2>&1 || true; fi
wanted=(ca-certificates certbot curl nginx openssl python3-venv unattended-upgrades)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq || fail "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "could not install ${missing[*]}"
fi
# Security updates from the distribution keep arriving on their own.
cat > /etc/apt/apt.conf.d/20auto-upgrades <<'FLASKSTACK_B81A3A01864D5ED7'
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
FLASKSTACK_B81A3A01864D5ED7
systemctl enable --quiet unattended-upgrades.service 2>/dev/null || true
# The app's own unprivileged system user.
getent group rocket-shop >/dev/null || groupadd --system rocket-shop
id -u rocket-shop >/dev/null 2>&1 || useradd --system --gid rocket-shop --home-dir /var/lib/rocket-shop --no-create-home --shell /usr/sbin/nologin rocket-shop
install -d -m 0755 -o root -g root /srv/rocket-shop /srv/rocket-shop/releases
install -d -m 0750 -o root -g rocket-shop /etc/rocket-shop
install -d -m 0750 -o rocket-shop -g rocket-shop /var/lib/rocket-shop /var/lib/rocket-shop/instance
install -d -m 0755 /var/www/acme/.well-known/acme-challenge
# Debian's welcome page would answer for every unknown name (from now on, not only
# after the next reload).
if [ -e /etc/nginx/sites-enabled/default ]; then rm -f /etc/nginx/sites-enabled/default; if systemctl is-active --quiet nginx; then systemctl reload nginx; fi; fi
