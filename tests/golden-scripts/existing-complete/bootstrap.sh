set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: bootstrap on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: bootstrap on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
# app.name is this app's alone on the host: a user, group, unit or folder of that name that
# flask-stack did not make is the host's own, and is never taken over (checked before any change).
taken() { fail "app.name rocket is already used on this host: $1; nothing was changed. Give the app a name of its own (app.name)"; }
for unit in rocket.service rocket.socket; do
  for dir in /lib/systemd/system /usr/lib/systemd/system; do
    if [ -e "$dir/$unit" ]; then taken "a package installed the unit $dir/$unit"; fi
  done
  if [ -e "/etc/systemd/system/$unit" ] && ! grep -qF '# Rendered by flask-stack for rocket' "/etc/systemd/system/$unit"; then
    taken "the unit /etc/systemd/system/$unit is not one flask-stack wrote"
  fi
done
if id -u rocket >/dev/null 2>&1; then
  home=$(getent passwd rocket | cut -d: -f6)
  if [ "$home" != /var/lib/rocket ]; then taken "the user rocket exists, with home $home"; fi
elif getent group rocket >/dev/null; then
  taken "the group rocket exists without the app's user"
fi
if [ ! -d /srv/rocket/releases ]; then  # the first deploy here: nothing of the app exists yet
  for folder in /etc/rocket /var/lib/rocket; do
    if [ -e "$folder" ]; then taken "$folder exists"; fi
  done
fi
# A new cloud host may still be running cloud-init and its first apt run.
if command -v cloud-init >/dev/null 2>&1; then cloud-init status --wait >/dev/null 2>&1 || true; fi
wanted=(ca-certificates curl haproxy python3-venv unattended-upgrades)
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
getent group rocket >/dev/null || groupadd --system rocket
id -u rocket >/dev/null 2>&1 || useradd --system --gid rocket --home-dir /var/lib/rocket --no-create-home --shell /usr/sbin/nologin rocket
install -d -m 0755 -o root -g root /srv/rocket /srv/rocket/releases
install -d -m 0750 -o root -g rocket /etc/rocket
install -d -m 0750 -o rocket -g rocket /var/lib/rocket /var/lib/rocket/instance
install -d -m 0755 /var/www/acme/.well-known/acme-challenge
# sshd: public keys only, no root login, only deploy (/etc/ssh/sshd_config.d/10-flask-stack.conf). The new file is
# checked inside a copy of the host's whole sshd config (`sshd -t`, and `sshd -T` for what sshd
# would then do) before it replaces the live one; a reload keeps open sessions, this one too.
if [ -x /usr/sbin/sshd ] && [ -f /etc/ssh/sshd_config ]; then
  sshd_stage=$(mktemp -d /etc/ssh/.flask-stack-stage.XXXXXX)
  trap 'rm -rf "$sshd_stage"' EXIT
  mkdir "$sshd_stage/sshd_config.d"
  if [ -d /etc/ssh/sshd_config.d ]; then cp -a /etc/ssh/sshd_config.d/. "$sshd_stage/sshd_config.d/"; fi
  cat > "$sshd_stage/sshd_config.d/"10-flask-stack.conf <<'FLASKSTACK_084BC75CB582A1BC'
# Rendered by flask-stack for every app on this host. Do not edit here: the next deploy replaces it.
# sshd on this host, read before the rest of sshd_config (sshd keeps the first value it reads).
# Only deploy logs in, with its key; passwords and keyboard-interactive logins are off.
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
PermitRootLogin no
AllowUsers deploy
X11Forwarding no
# Each login's key fingerprint in the journal.
LogLevel VERBOSE

# Mozilla's modern OpenSSH guideline, as far as OpenSSH 9.2 has it.
KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp521,ecdh-sha2-nistp384,ecdh-sha2-nistp256,diffie-hellman-group-exchange-sha256
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
HostKey /etc/ssh/ssh_host_rsa_key
FLASKSTACK_084BC75CB582A1BC

  staged="$sshd_stage/sshd_config.d/"10-flask-stack.conf
  # The host's sshd_config as it is, its Include of sshd_config.d pointing at the copy.
  sed "s#/etc/ssh/sshd_config.d/#$sshd_stage/sshd_config.d/#g" /etc/ssh/sshd_config > "$sshd_stage/sshd_config"
  if ! grep -qF "$sshd_stage/sshd_config.d/" "$sshd_stage/sshd_config"; then
    fail "/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf, so /etc/ssh/sshd_config.d/10-flask-stack.conf would not apply; nothing was changed (Debian's sshd_config includes it at its top)"
  fi
  [ -d /run/sshd ] || install -d -m 0755 /run/sshd  # sshd -t wants its privilege separation directory
  if ! out=$(sshd -t -f "$sshd_stage/sshd_config" 2>&1); then
    echo "$out" >&2
    fail "sshd -t rejected the new /etc/ssh/sshd_config.d/10-flask-stack.conf (above; $sshd_stage/sshd_config.d stands for /etc/ssh/sshd_config.d); nothing was installed, the live sshd config is unchanged"
  fi
  effective=$(sshd -T -f "$sshd_stage/sshd_config" -C user=deploy,host=localhost,addr=127.0.0.1 2>&1) \
    || { echo "$effective" >&2; fail "sshd -T could not read the new sshd config; nothing was installed"; }
  # What sshd must then do (a line of `sshd -T` each): a setting that the host's sshd_config or an
  # earlier file of sshd_config.d sets first would win over the drop-in.
  wanted_sshd=('passwordauthentication no' 'kbdinteractiveauthentication no' 'permitrootlogin no' 'allowusers deploy' 'pubkeyauthentication yes' 'kexalgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp521,ecdh-sha2-nistp384,ecdh-sha2-nistp256,diffie-hellman-group-exchange-sha256' 'ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr')
  for want in "${wanted_sshd[@]}"; do
    if ! grep -qixF "$want" <<<"$effective"; then
      fail "with the new /etc/ssh/sshd_config.d/10-flask-stack.conf, sshd would have '$(grep -i "^${want%% *} " <<<"$effective" || echo "no ${want%% *}")', not '$want': the host's sshd config sets it before the drop-in; nothing was installed"
    fi
  done
  if ! cmp -s "$staged" /etc/ssh/sshd_config.d/10-flask-stack.conf; then
    if [ -f /etc/ssh/sshd_config.d/10-flask-stack.conf ]; then cp -a /etc/ssh/sshd_config.d/10-flask-stack.conf "$sshd_stage/previous"; fi
    install -m 0644 -o root -g root "$staged" /etc/ssh/sshd_config.d/10-flask-stack.conf.flaskstack-new
    mv -f /etc/ssh/sshd_config.d/10-flask-stack.conf.flaskstack-new /etc/ssh/sshd_config.d/10-flask-stack.conf
    if systemctl is-active --quiet ssh.service; then
      if ! systemctl reload ssh.service || ! systemctl is-active --quiet ssh.service; then
        if [ -f "$sshd_stage/previous" ]; then cp -a "$sshd_stage/previous" /etc/ssh/sshd_config.d/10-flask-stack.conf; else rm -f /etc/ssh/sshd_config.d/10-flask-stack.conf; fi
        systemctl reload-or-restart ssh.service || true
        fail "sshd did not take the new /etc/ssh/sshd_config.d/10-flask-stack.conf; the previous one is back"
      fi
    fi
    echo "sshd: installed /etc/ssh/sshd_config.d/10-flask-stack.conf and reloaded sshd"
  fi
  chown root:root /etc/ssh/sshd_config.d/10-flask-stack.conf; chmod 0644 /etc/ssh/sshd_config.d/10-flask-stack.conf
  rm -rf "$sshd_stage"; trap - EXIT
else
  echo "sshd: no OpenSSH server at /usr/sbin/sshd; /etc/ssh/sshd_config.d/10-flask-stack.conf is not written"
fi
