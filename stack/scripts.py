"""The shell scripts the remote steps run, built as data.

Every command is an argv list joined with `shlex.join` (the one quoting point); file contents
travel in quoted heredocs whose delimiter cannot occur in them; secrets never appear here (they
reach a host on the env step's stdin). Each script starts with `set -euo pipefail` and a trap
that names the step and the host when a command fails, and is safe to run again: a second run
changes nothing that is already right.

Every step that changes what a host serves (env, release, configure) asks the health path
through the front afterwards and, if it does not answer 200 in time, puts back what it replaced
and fails. A failed step thus leaves the host as it was and, since pulumi-command records only
steps that succeeded, the stack's state as it was too: the next `pulumi up` tries it again.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field

from stack import hostfiles
from stack.paths import LETSENCRYPT_LIVE, Paths
from stack.release import Release
from stack.render import ACME_PORT
from stack.settings import Settings

SHELL_PRELUDE = """set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() {{ echo "flask-stack: {step} on host {host}: $*" >&2; exit 1; }}
trap 'rc=$?; echo "flask-stack: {step} on host {host} failed (exit $rc) running: $BASH_COMMAND" >&2' ERR
"""

# Shell functions shared by the steps that reload services.
FUNCTIONS = r"""
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
"""


def health_functions(settings: Settings, host: str, address: str) -> str:
    """probe, healthy_within SECONDS, and unhealthy WHAT-WAS-UNDONE (fails with the journal)."""
    health = settings.deploy.health_path
    timeout = settings.deploy.health_timeout
    service = q(f"{settings.app.name}.service")
    probe = cmd("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                "-H", "Host: localhost", f"http://127.0.0.1{health}")
    where = f"on host {host}" + (f" ({address})" if address and address != host else "")
    return f"""
# The app's latest messages (its access log left out), taken before any undo. When a restart
# loop has pushed the cause out of the last 40 lines, its last error lines come first.
capture_journal() {{
  local all errors
  all=$(journalctl -u {service} -n 400 --no-pager -o short-precise 2>&1 \
    | grep -Ev '"[A-Z]+ [^ ]* HTTP/[0-9.]+" [0-9]{{3}} ' || true)
  journal=$(tail -n 40 <<<"$all")
  if ! grep -qE 'Error|Exception' <<<"$journal"; then
    errors=$(grep -E 'Error|Exception' <<<"$all" | tail -n 10 || true)
    if [ -n "$errors" ]; then journal="$errors
[...]
$journal"; fi
  fi
}}
code=000  # the last status the front gave; set before any probe so a report can always name it
probe() {{ code=$({probe} || true); [ "$code" = 200 ]; }}
healthy_within() {{
  local deadline=$((SECONDS + $1))
  code=000
  until probe; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
}}
# unhealthy WHAT-WAS-UNDONE [first]: fail with the journal; "first" when nothing served before,
# so there is no previous version to ask.
unhealthy() {{
  local last=$code after
  [ -n "${{journal:-}}" ] || capture_journal
  if [ "${{2:-}}" = first ]; then after="nothing of the app served here before, so there is nothing to go back to"
  elif healthy_within {timeout}; then after="the previous version answers 200 again"
  else after="the previous version does not answer either (status $code)"; fi
  fail "{health} did not answer 200 within {timeout} s (last status $last) {where}. $1; $after. Last lines of the app's journal:
$journal"
}}
"""


def q(value: str) -> str:
    return shlex.quote(value)


def cmd(*argv: str) -> str:
    return shlex.join(argv)


def heredoc(path: str, content: str, *, under: str = "") -> str:
    """`cat > path` with the content in a quoted heredoc (no expansion). `under`: shell text
    (a variable of the script's own, never a user value) put before the quoted path."""
    delimiter = "FLASKSTACK_" + hashlib.sha256(content.encode()).hexdigest()[:16].upper()
    body = content if content.endswith("\n") else content + "\n"
    return f"cat > {under}{q(path)} <<'{delimiter}'\n{body}{delimiter}\n"


@dataclass
class Script:
    step: str
    host: str
    lines: list[str] = field(default_factory=list)

    def run(self, *argv: str) -> Script:
        self.lines.append(cmd(*argv))
        return self

    def raw(self, text: str) -> Script:
        """Shell text written here, never from user values (those go through cmd or q)."""
        self.lines.append(text.strip("\n"))
        return self

    def text(self) -> str:
        prelude = SHELL_PRELUDE.format(step=self.step, host=self.host.replace("'", ""))
        return prelude + "\n".join(self.lines) + "\n"


def as_root(settings: Settings, script: Script) -> str:
    """The command line a remote step runs: the script under bash, through sudo unless the
    login user is root."""
    line = cmd("bash", "-c", script.text())
    return line if settings.ssh.user == "root" else "sudo -n " + line


# -- bootstrap ------------------------------------------------------------------------------
def packages(settings: Settings) -> list[str]:
    front = "nginx" if settings.front == "nginx" else "haproxy"
    wanted = {front, "python3-venv", "unattended-upgrades", "curl", "ca-certificates"}
    if settings.platform == "digitalocean":
        wanted.add("postgresql-client")  # the database step grants the app's user its rights
    if settings.tls.enabled:
        wanted |= {"certbot", "openssl"}  # the ACME client (its certbot.timer renews) and checks
    return sorted(wanted)


def bootstrap(settings: Settings, host: str) -> Script:
    p = Paths(settings.app.name)
    app = p.app
    s = Script("bootstrap", host)
    s.raw("""
# A new cloud host may still be running cloud-init and its first apt run.
if command -v cloud-init >/dev/null 2>&1; then cloud-init status --wait >/dev/null 2>&1 || true; fi
""")
    s.raw(f"wanted=({' '.join(q(x) for x in packages(settings))})")
    s.raw("""
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq || fail "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \\
    || fail "could not install ${missing[*]}"
fi
""")
    s.raw("# Security updates from the distribution keep arriving on their own.")
    s.raw(heredoc("/etc/apt/apt.conf.d/20auto-upgrades",
                  'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'))
    s.raw("systemctl enable --quiet unattended-upgrades.service 2>/dev/null || true")
    s.raw("# The app's own unprivileged system user.")
    s.raw(f"getent group {q(app)} >/dev/null || " + cmd("groupadd", "--system", app))
    s.raw(f"id -u {q(app)} >/dev/null 2>&1 || " + cmd(
        "useradd", "--system", "--gid", app, "--home-dir", p.state, "--no-create-home",
        "--shell", "/usr/sbin/nologin", app))
    s.run("install", "-d", "-m", "0755", "-o", "root", "-g", "root", p.root, p.releases)
    s.run("install", "-d", "-m", "0750", "-o", "root", "-g", app, p.etc)
    s.run("install", "-d", "-m", "0750", "-o", app, "-g", app, p.state, f"{p.state}/instance")
    s.run("install", "-d", "-m", "0755", f"{p.acme_webroot}/.well-known/acme-challenge")
    if settings.front == "nginx":
        s.raw("# Debian's welcome page would answer for every unknown name (from now on, not only")
        s.raw("# after the next reload).")
        s.raw("if [ -e /etc/nginx/sites-enabled/default ]; then rm -f /etc/nginx/sites-enabled/default; "
              "if systemctl is-active --quiet nginx; then systemctl reload nginx; fi; fi")
    return s


# -- database -------------------------------------------------------------------------------
def database(settings: Settings, host: str, database_name: str, user: str, *,
             wait_seconds: int = 300) -> Script:
    """Grants the app's database user what it needs to own its schema, as the database's
    administrator, whose libpq settings (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE) arrive
    on stdin. A managed service may create the user with no rights at all, and PostgreSQL 15+
    lets only the database owner create in the public schema, so without this the first
    migration fails. Waits for a database that is still starting; safe to run again."""
    s = Script("database", host)
    s.raw('command -v psql >/dev/null 2>&1 || fail "psql is missing (bootstrap installs postgresql-client)"')
    s.raw("""
while IFS='=' read -r key value; do
  case $key in PGHOST|PGPORT|PGUSER|PGPASSWORD|PGSSLMODE) export "$key=$value" ;; esac
done""")
    s.raw(f"export PGDATABASE={q(database_name)} PGCONNECT_TIMEOUT=10")
    s.raw(f"""
deadline=$((SECONDS + {wait_seconds}))
until err=$(psql -X -q -At -c 'select 1' 2>&1 >/dev/null); do
  if [ $SECONDS -ge $deadline ]; then
    fail "cannot reach the database at $PGHOST:$PGPORT (database {database_name}) as $PGUSER after {wait_seconds} s: $err"
  fi
  sleep 5
done""")
    # Names are identifiers checked by the settings ([a-z_][a-z0-9_]*): safe inside quotes.
    s.raw(f"""psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
GRANT ALL PRIVILEGES ON DATABASE "{database_name}" TO "{user}";
GRANT ALL ON SCHEMA public TO "{user}";
SQL""")
    s.raw(f'echo "flask-stack: database {database_name}: user {user} may create its tables"')
    return s


# -- env ------------------------------------------------------------------------------------
def env(settings: Settings, host: str, app_env: str, address: str = "") -> Script:
    """Writes the plain env file (in the script) and the secret one (from stdin), restarting
    the app when either changed (a reload would keep the old environment); if the app does not
    come back healthy, the previous files are put back."""
    p = Paths(settings.app.name)
    svc = q(p.service_name)
    s = Script("env", host)
    s.raw(health_functions(settings, host, address))
    s.raw("umask 077")
    s.run("install", "-d", "-m", "0750", "-o", "root", "-g", p.app, p.etc)
    s.raw("old=$(mktemp -d); trap 'rm -rf \"$old\"' EXIT")
    s.raw(heredoc(f"{p.env_file}.new", app_env))
    s.raw(f"cat > {q(p.secret_env_file + '.new')}")
    s.raw(f"""
changed=0
for f in {q(p.env_file)} {q(p.secret_env_file)}; do
  if [ -f "$f" ] && cmp -s "$f.new" "$f"; then rm -f "$f.new"; continue; fi
  if [ -f "$f" ]; then cp -a "$f" "$old/"; fi
  chown root:root "$f.new"
  chmod 0600 "$f.new"
  mv -f "$f.new" "$f"
  changed=1
done
if [ $changed = 1 ] && systemctl is-active --quiet {svc}; then
  # The socket stays open, so requests wait in its backlog while Gunicorn restarts.
  systemctl restart {svc} || true
  if ! healthy_within {settings.deploy.health_timeout}; then
    capture_journal
    cp -a "$old"/. {q(p.etc)}/
    systemctl reset-failed {svc} 2>/dev/null || true
    systemctl restart {svc} || true
    unhealthy "Put back the previous environment"
  fi
fi
""")
    return s


# -- release --------------------------------------------------------------------------------
def release(settings: Settings, host: str, rel: Release, *, release_command: bool,
            address: str = "", wsgi: str | None = None) -> Script:
    """Unpack the release with its own venv (once), run the release command if asked, switch
    `current` atomically and reload Gunicorn so new workers load the new code; if the app does
    not answer healthy, switch back to the release that served before."""
    p = Paths(settings.app.name)
    app = p.app
    target = p.release_dir(rel)
    archive = p.archive(rel)
    svc = q(p.service_name)
    s = Script("release", host)
    s.raw(FUNCTIONS)
    s.raw(health_functions(settings, host, address))
    s.raw(f"rel={q(target)}; archive={q(archive)}; current={q(p.current)}")
    install = ["\"$rel/venv/bin/python\"", "-m", "pip", "install", "--quiet", "--no-index",
               "--disable-pip-version-check", "--no-warn-script-location",
               "--find-links", "\"$rel/.flaskstack/wheelhouse\"",
               "-r", "\"$rel/.flaskstack/requirements.txt\""]
    s.raw(f"""
if [ ! -f "$rel/.flaskstack/complete" ]; then
  # The pins were resolved for one exact Python (markers like python_full_version): check it first.
  python=$(python3 -c 'import platform; print(platform.python_version())') \\
    || fail "python3 does not run (bootstrap installs python3-venv)"
  [ "$python" = "{rel.python}" ] || fail "python3 here is $python, but the release's requirements were resolved for Python {rel.python}: set flask-stack:hosts.python to \\"$python\\" (it defaults to the image's Python) and run pulumi up again"
  [ -f "$archive" ] || fail "the release archive $archive is missing; run pulumi up again to copy it"
  echo {q(rel.sha256)}"  $archive" | sha256sum --check --quiet - \\
    || fail "the release archive $archive is damaged (checksum mismatch); run pulumi up again"
  rm -rf "$rel"
  # A release that fails half-unpacked leaves nothing behind (the next run starts afresh).
  trap 'rc=$?; if [ $rc -ne 0 ]; then rm -rf "$rel"; fi' EXIT
  install -d -m 0751 -o root -g {q(app)} "$rel"
  # A release whose dependencies are those of a release already here (the usual case: only the
  # app's code changed) starts from a hard-linked copy of that release's venv instead of
  # installing every wheel again; pip never rewrites an installed file in place, so the two
  # releases cannot change each other's.
  deps={q(deps_key(rel))}
  reuse=""
  for other in "$(readlink -f "$current" 2>/dev/null || true)" {q(p.releases)}/*; do
    if [ -n "$other" ] && [ "$other" != "$rel" ] && [ -f "$other/.flaskstack/complete" ] \\
        && [ -x "$other/venv/bin/python" ] && [ "$(cat "$other/.flaskstack/deps" 2>/dev/null)" = "$deps" ]; then
      reuse=$other
      break
    fi
  done
  if [ -n "$reuse" ]; then
    tar -xzf "$archive" -C "$rel" --no-same-owner --no-same-permissions --exclude=.flaskstack/wheelhouse
    cp -al "$reuse/venv" "$rel/venv"
    # Scripts and the venv's own files name its path: point them at this release's.
    {{ grep -rlF --null "$reuse/venv" "$rel/venv/bin" "$rel/venv/pyvenv.cfg" || true; }} \\
      | xargs -0r sed -i "s|$reuse/venv|$rel/venv|g"
  else
    tar -xzf "$archive" -C "$rel" --no-same-owner --no-same-permissions
    python3 -m venv "$rel/venv" || fail "python3 -m venv failed (is python3-venv installed?)"
    {' '.join(install)} || fail "installing the app's requirements from its wheelhouse failed"
  fi
  if compgen -G "$rel/.flaskstack/project/*.whl" >/dev/null; then
    "$rel/venv/bin/python" -m pip install --quiet --no-index --no-deps --force-reinstall \\
      --disable-pip-version-check "$rel"/.flaskstack/project/*.whl \\
      || fail "installing the app's own package failed"
  fi
  echo "$deps" > "$rel/.flaskstack/deps"
  rm -rf "$rel/.flaskstack/wheelhouse"
  # Flask keeps its instance folder beside the app: point it at the writable state directory.
  [ -e "$rel/instance" ] || ln -s {q(p.state + '/instance')} "$rel/instance"
  chown -R root:{q(app)} "$rel"
  chmod -R u+rwX,g+rX,g-w,o-rwx "$rel"
  chmod 0751 "$rel"
""")
    s.raw("""
  touch "$rel/.flaskstack/complete"
  trap - EXIT
fi
rm -f "$archive"
""")
    if settings.app.static_dir and settings.front == "nginx":  # HAProxy leaves them to the app
        s.raw(static_files(f"{target}/{settings.app.static_dir}"))
    if release_command and settings.app.release_command:
        s.raw("# The release command runs once per rollout, here, before any traffic switches.")
        s.raw(cmd("systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
                  f"--uid={app}", f"--gid={app}", f"--working-directory={target}",
                  f"--property=EnvironmentFile=-{p.env_file}",
                  f"--property=EnvironmentFile=-{p.secret_env_file}",
                  f"--setenv=PATH={target}/venv/bin:/usr/local/bin:/usr/bin:/bin",
                  "/bin/sh", "-c", settings.app.release_command)
              + " </dev/null || fail " + q("the release command failed (above); every host keeps "
                                            "the release it had"))
    entry = ""
    if wsgi is not None:
        # The WSGI entry names the app's module: a new release may come with a new app.entry (a
        # renamed module), so a running app's entry switches with its code, and back with it.
        s.raw(f"wsgi={q(p.wsgi)}")
        s.raw(heredoc(p.wsgi + ".flaskstack-release", wsgi))
        entry = f"""
  if systemctl is-active --quiet {svc} && ! cmp -s "$wsgi.flaskstack-release" "$wsgi"; then
    wsgi_old=$(mktemp)
    cp -a "$wsgi" "$wsgi_old"
    install -m 0640 -o root -g {q(app)} "$wsgi.flaskstack-release" "$wsgi.new"
    mv -f "$wsgi.new" "$wsgi"
  fi"""
    s.raw(f"""
previous=$(readlink "$current" 2>/dev/null || true)
switched=0
wsgi_old=""
# Whatever makes this step fail after the switch, the previous release is put back first.
undo_release() {{
  [ $switched = 1 ] && [ -n "$previous" ] || return 0
  switched=0
  if [ -n "$wsgi_old" ]; then cp -a "$wsgi_old" "$wsgi"; fi
  ln -sfn "$previous" "$current.new"
  mv -Tf "$current.new" "$current"
  systemctl reset-failed {svc} 2>/dev/null || true
  systemctl restart {svc} || true
}}
trap 'rc=$?; if [ $rc -ne 0 ]; then undo_release; fi; rm -f ${{wsgi:+"$wsgi.flaskstack-release"}} ${{wsgi_old:+"$wsgi_old"}}' EXIT
if [ "$previous" != "$rel" ]; then{entry}
  ln -sfn "$rel" "$current.new"
  mv -Tf "$current.new" "$current"
  if systemctl is-active --quiet {svc}; then
    switched=1
    reload_and_wait {svc} {settings.app.graceful_timeout + 10} || true
    # Healthy means: every worker runs the new release, and the front gets 200 from it.
    if ! wait_workers_in "$rel" {svc} {settings.deploy.health_timeout} \
        || ! healthy_within {settings.deploy.health_timeout}; then
      probe || true  # the workers never took the release: report what the front answers now
      capture_journal
      if [ -n "$previous" ]; then
        undo_release
        unhealthy "Rolled back to release $(basename "$previous")"
      fi
      unhealthy "Nothing older to go back to"
    fi
    switched=0
  fi
fi
echo "release {rel.id} is current on {host}"
""")
    return s


def deps_key(rel: Release) -> str:
    """What decides a release's venv: the wheels it installs (their names carry versions and
    platform tags). Releases with the same key can share one venv's files."""
    return hashlib.sha256("\n".join(sorted(rel.wheels)).encode()).hexdigest()[:20]


def static_files(static: str) -> str:
    """Shell text for the release step, run every time it runs (so a change of app.staticDir
    alone applies): the static folder's text files pre-compressed for the front (gzip_static),
    and the least the front's user needs to serve it from a release that is otherwise closed to
    it: enter (not list) each folder on the way, read the static folder itself."""
    return f"""
static={q(static)}
if [ -d "$static" ]; then
  find "$static" -type f \\( -name '*.css' -o -name '*.js' -o -name '*.svg' -o -name '*.json' \\
    -o -name '*.txt' -o -name '*.html' -o -name '*.xml' -o -name '*.map' \\) -size +1k -print0 \\
    | while IFS= read -r -d '' file; do [ -e "$file.gz" ] || gzip -9 -n -k "$file"; done
  chmod -R o+rX "$static"
  folder=$(dirname "$static")
  while [ "$folder" != "$rel" ] && [ "$folder" != / ]; do chmod o+x "$folder"; folder=$(dirname "$folder"); done
fi"""


# -- configure ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigFile:
    path: str
    mode: str
    group: str
    kind: str  # what must happen when it changes: hostfiles.Reload's value


def config_files(settings: Settings, files: dict[str, str]) -> list[ConfigFile]:
    """The rendered files the configure step installs, from the host-file table."""
    return [ConfigFile(row.remote(settings), row.mode, row.group_name(settings), row.reloads.value)
            for row in hostfiles.installed_by(settings, hostfiles.Step.CONFIGURE, files)]


def nginx_workers(directory: str, count: int | None = None) -> str:
    """Shell text writing Nginx's worker count into `directory` (a shell word): `count` (the
    frontWorkers setting) or, without one, half the CPUs this host gives us, at least one. On 2
    cores under 256 clients, one worker instead of two took Nginx from about 70 to about 60 µs of
    CPU per proxied request (docs/benchmarks.md: "Why these defaults")."""
    name = Paths("").nginx_workers.rsplit("/", 1)[1]
    if count is None:
        rule = 'cpus=$(nproc); workers=$(( cpus / 2 )); [ "$workers" -ge 1 ] || workers=1'
        why = "half of this host's $cpus CPUs, at least one"
    else:
        rule, why = f"workers={int(count)}", "frontWorkers"
    return f"""{rule}
cat > {directory}/{name} <<FLASKSTACK_WORKERS
# Written by flask-stack's configure step: {why}.
worker_processes $workers;
FLASKSTACK_WORKERS"""


def configure(settings: Settings, host: str, files: dict[str, str], address: str = "") -> Script:
    """Stage the rendered files, validate them with their own tools, install the changed ones
    and reload what they belong to; if the app then does not answer healthy, put the replaced
    files back."""
    p = Paths(settings.app.name)
    app = p.app
    nginx = settings.front == "nginx"
    wanted = config_files(settings, files)
    s = Script("configure", host)
    s.raw(FUNCTIONS)
    s.raw(health_functions(settings, host, address))
    s.raw(f"stage=$(mktemp -d {q(p.etc + '/.stage.XXXXXX')}); rb=\"$stage/replaced\"; installing=0")
    front, other = ("nginx", "haproxy") if nginx else ("haproxy", "nginx")
    svc, sock = q(p.service_name), q(p.socket_name)
    site_link = p.nginx_site_link if nginx else ""
    s.raw(f"""
# What this host ran before, so a failure can put exactly that back. On the host's first config
# (no unit of the app yet) that is: nothing of the app, and the front's own files.
first=1; [ -f {q(p.service_unit)} ] && first=0
front_was_active=0; systemctl is-active --quiet {front} && front_was_active=1
other_was_active=0; systemctl is-active --quiet {other} 2>/dev/null && other_was_active=1
link_existed=0; {f"[ -L {q(site_link)} ] && link_existed=1" if nginx else ":"}
# Whatever makes this step fail once files are being replaced, the replaced ones go back first
# (and on a first config the app's units are stopped and removed), leaving a front whose config
# passes its own check.
undo_config() {{
  [ $installing = 1 ] || return 0
  installing=0
  if [ $first = 1 ]; then systemctl disable --now --quiet {sock} {svc} >/dev/null 2>&1 || true; fi
  if [ -d "$rb/files" ]; then cp -a "$rb/files/." /; fi
  if [ -f "$rb/created" ]; then xargs -r rm -f < "$rb/created"; fi
  {f"[ $link_existed = 1 ] || rm -f {q(site_link)}" if nginx else ":"}
  systemctl daemon-reload
  systemctl reset-failed {svc} {sock} >/dev/null 2>&1 || true
  if [ $first = 0 ]; then systemctl restart {svc} || true; fi
  if [ $front_was_active = 1 ]; then systemctl reload-or-restart {front} || true
  else systemctl disable --now --quiet {front} >/dev/null 2>&1 || true; fi
  if [ $other_was_active = 1 ]; then systemctl enable --now --quiet {other} || true; fi
  if [ $first = 1 ]; then
    echo "flask-stack: configure on host {host}: removed this first config of {app} again (its units, files and front site); the front's own config is back" >&2
  fi
}}
trap 'rc=$?; if [ $rc -ne 0 ]; then undo_config; fi; rm -rf "$stage"' EXIT
""")
    s.raw(f"chgrp {q(app)} \"$stage\"; chmod 0750 \"$stage\"")
    for f in wanted:
        s.raw(f"mkdir -p \"$stage/files\"{q(f.path.rsplit('/', 1)[0])}")
        s.raw(heredoc(f.path, files[f.path], under='"$stage/files"'))
    s.raw(f"chgrp -R {q(app)} \"$stage/files\"; chmod -R g+rX \"$stage/files\"")
    if settings.tls.enabled:
        s.raw(placeholder_certificate(settings, host))
    # -- validate: nothing is installed unless every file passes its own tool
    if nginx:
        site = p.nginx_site.rsplit("/", 1)[1]
        s.raw(f"""
{nginx_workers('"$stage/files/etc/nginx"', settings.front_workers)}
cp -a /etc/nginx "$stage/nginx"
cp "$stage/files{p.nginx_workers}" "$stage/nginx/"
cp "$stage/files{p.nginx_conf}" "$stage/nginx/nginx.conf"
cp "$stage/files{p.nginx_site}" "$stage/nginx/sites-available/{site}"
rm -f "$stage/nginx/sites-enabled/default"
ln -sfn ../sites-available/{site} "$stage/nginx/sites-enabled/{site}"
nginx -t -q -c "$stage/nginx/nginx.conf" || fail "the new Nginx config is invalid (see above); nothing was installed, the old config keeps serving"
""")
    else:
        s.raw(f"""
haproxy -c -q -f "$stage/files{p.haproxy_cfg}" || fail "the new HAProxy config is invalid (see above); nothing was installed, the old config keeps serving"
""")
    check = cmd("systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
                f"--uid={app}", f"--gid={app}", f"--working-directory={p.current}",
                f"--property=EnvironmentFile=-{p.env_file}",
                f"--property=EnvironmentFile=-{p.secret_env_file}",
                f"{p.current}/venv/bin/python", "-m", "gunicorn", "--check-config", "-c")
    check += f" \"$stage/files\"{q(p.gunicorn_conf)}"
    s.raw(f"""
if ! out=$({check} </dev/null 2>&1); then
  echo "$out" >&2
  hint=""
  if grep -qE 'Read-only file system|Permission denied' <<<"$out"; then
    hint=" The app tried to write where it may not: its release is read-only on the host, and it may write only under {p.state} (\\$STATE_DIRECTORY); point the path at it, e.g. with an app.env value such as LOG_DIR={p.state}/logs."
  fi
  fail "the app did not load with the new config: Gunicorn's --check-config failed (above); nothing was installed.$hint"
fi""")
    s.raw(f"""
out=$(systemd-analyze verify "$stage/files{p.socket_unit}" "$stage/files{p.service_unit}" 2>&1) \\
  || {{ echo "$out" >&2; fail "systemd-analyze verify rejected the new units; nothing was installed"; }}
if grep -F "$stage" <<<"$out" >&2; then fail "systemd-analyze verify found problems in the new units (above); nothing was installed"; fi
""")
    # -- install what changed, saving what it replaces
    s.raw("""
changed=" "
installing=1
put() {  # put STAGED TARGET MODE GROUP KIND
  local src=$1 dst=$2 mode=$3 group=$4 kind=$5
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then return 0; fi
  mkdir -p "$rb/files$(dirname "$dst")"
  if [ -f "$dst" ]; then
    [ -e "$rb/files$dst" ] || cp -a "$dst" "$rb/files$dst"
  else
    grep -qxF "$dst" "$rb/created" 2>/dev/null || echo "$dst" >> "$rb/created"
  fi
  install -m "$mode" -o root -g "$group" "$src" "$dst.flaskstack-new"
  mv -f "$dst.flaskstack-new" "$dst"
  changed="$changed$kind "
}
""")
    for f in wanted:
        s.raw(f"put \"$stage/files\"{q(f.path)} {q(f.path)} {f.mode} {q(f.group)} {f.kind}")
    if nginx:
        s.raw(f"put \"$stage/files\"{q(p.nginx_workers)} {q(p.nginx_workers)} 0644 root front")
    s.raw(f"""
case "$changed" in *" units "*|*" socket "*) systemctl daemon-reload ;; esac
systemctl enable --quiet {sock} {svc}
if [[ "$changed" == *" socket "* ]] && systemctl is-active --quiet {sock}; then
  # A new listening address: the only change that briefly refuses connections.
  systemctl stop {svc} {sock}
fi
systemctl start {sock}
if systemctl is-active --quiet {svc}; then
  if [[ "$changed" == *" units "* || "$changed" == *" socket "* ]]; then
    systemctl restart {svc}
  elif [[ "$changed" == *" gunicorn "* ]]; then
    reload_and_wait {svc} {settings.app.graceful_timeout + 10}
  fi
else
  systemctl reset-failed {svc} 2>/dev/null || true
  systemctl start {svc} || {{ journalctl -u {svc} -n 40 --no-pager >&2 || true; fail "the app did not start (its journal is above)"; }}
fi
""")
    if nginx:
        site = p.nginx_site.rsplit("/", 1)[1]
        s.raw(f"ln -sfn ../sites-available/{site} /etc/nginx/sites-enabled/{site}")
    s.raw(f"""
# One public front: the other one, if a previous config used it, steps aside.
if systemctl is-active --quiet {other} 2>/dev/null; then systemctl disable --now --quiet {other}; fi
systemctl enable --quiet {front}
if ! systemctl is-active --quiet {front}; then
  systemctl start {front}
elif [[ "$changed" == *" front "* ]]; then
  reload_and_wait {front} 30
fi
if [ "$changed" != " " ] && ! healthy_within {settings.deploy.health_timeout}; then
  capture_journal
  undo_config
  if [ $first = 1 ]; then unhealthy "Removed this first config of the app again (the front's own config is back)" first; fi
  unhealthy "Put back the previous config"
fi
installing=0
echo "configured {host}:$changed"
""")
    return s


# -- certificate ----------------------------------------------------------------------------
def tls_names(settings: Settings) -> list[str]:
    domain = settings.domain.name or ""
    return [domain, f"www.{domain}"] if settings.domain.www_redirect else [domain]


def placeholder_certificate(settings: Settings, host: str) -> str:
    """Shell text for configure: until the certificate step has installed a real certificate,
    a self-signed one lets the front load its TLS config (Nginx and HAProxy refuse to start
    without the files). Plain HTTP, the ACME challenges among it, works meanwhile."""
    p = Paths(settings.app.name)
    domain = settings.domain.name or ""
    san = ",".join(f"DNS:{n}" for n in tls_names(settings))
    make = cmd("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
               "-nodes", "-days", "30", "-subj", f"/CN={domain}", "-addext", f"subjectAltName={san}",
               "-keyout", p.tls_key, "-out", p.tls_fullchain)
    return f"""
if [ ! -s {q(p.tls_fullchain)} ] || [ ! -s {q(p.tls_key)} ] || [ ! -s {q(p.tls_pem)} ]; then
  install -d -m 0700 -o root -g root {q(p.tls_dir)}
  ( umask 077; {make} >/dev/null 2>&1 ) || fail "could not make a placeholder certificate with openssl"
  ( umask 077; cat {q(p.tls_fullchain)} {q(p.tls_key)} > {q(p.tls_pem)} )
  echo "flask-stack: no certificate for {domain} on {host} yet: a self-signed placeholder serves HTTPS until the certificate step installs the real one"
fi
"""


def certificate(settings: Settings, host: str, files: dict[str, str], address: str = "") -> Script:
    """Obtain the domain's certificate over HTTP-01 (once; certbot.timer renews it), install it
    where the front reads it and reload the front (the renew hook, which certbot also runs after
    every renewal). Nginx answers the challenges from the ACME webroot; HAProxy passes them to
    certbot's own server on a loopback port while it runs. If the ACME server says no, nothing
    changes on the host, and the step fails naming the host and the domain."""
    p = Paths(settings.app.name)
    tls = settings.tls
    domain = settings.domain.name or ""
    names = tls_names(settings)
    where = host + (f" ({address})" if address and address != host else "")
    s = Script("certificate", host)
    s.raw(f"install -d -m 0700 -o root -g root {q(p.tls_dir)}")
    s.raw(f"install -d -m 0755 {q(p.renew_hook.rsplit('/', 1)[0])}")
    s.raw(heredoc(p.renew_hook + ".new", files[p.renew_hook]))
    s.raw(f"chmod 0755 {q(p.renew_hook + '.new')}; mv -f {q(p.renew_hook + '.new')} {q(p.renew_hook)}")
    dropin = p.certbot_dropin
    if tls.acme_ca_bundle:
        s.raw("# The ACME server's HTTPS certificate comes from a private CA (tls.acmeCaBundle): the")
        s.raw("# ACME client trusts it besides the system's CAs, here and in certbot.service (renewals).")
        s.raw(heredoc(p.tls_dir + "/acme-ca.pem", tls.acme_ca_bundle))
        s.raw(f"cat /etc/ssl/certs/ca-certificates.crt {q(p.tls_dir + '/acme-ca.pem')} > "
              f"{q(p.acme_ca_bundle + '.new')} && mv -f {q(p.acme_ca_bundle + '.new')} {q(p.acme_ca_bundle)}")
        s.raw(f"export REQUESTS_CA_BUNDLE={q(p.acme_ca_bundle)}")
        unit = (f"# Rendered by flask-stack for {settings.app.name}.\n[Service]\n"
                f"Environment=REQUESTS_CA_BUNDLE={p.acme_ca_bundle}\n")
        s.raw(f"install -d -m 0755 {q(dropin.rsplit('/', 1)[0])}")
        s.raw(heredoc(dropin + ".new", unit))
        s.raw(f"if cmp -s {q(dropin + '.new')} {q(dropin)}; then rm -f {q(dropin + '.new')}; "
              f"else mv -f {q(dropin + '.new')} {q(dropin)}; systemctl daemon-reload; fi")
    else:
        s.raw(f"if [ -e {q(dropin)} ]; then rm -f {q(dropin)}; systemctl daemon-reload; fi")
    s.raw('systemctl enable --now --quiet certbot.timer || fail "certbot.timer (renewals) could not be '
          'started"')
    if settings.front == "nginx":
        authenticator = "webroot"
        how = ["--webroot", "--webroot-path", p.acme_webroot]
    else:
        authenticator = "standalone"
        how = ["--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", str(ACME_PORT)]
    certbot = ["certbot", "certonly", "--non-interactive", "--agree-tos", "--no-eff-email",
               "--email", tls.email or "", "--server", tls.acme_directory, "--cert-name", domain,
               "--preferred-challenges", "http", "--keep-until-expiring", *how]
    for name in names:
        certbot += ["--domain", name]
    renewal = f"/etc/letsencrypt/renewal/{domain}.conf"
    names_text = " and ".join(names)  # host names checked by the settings: plain text in quotes
    s.raw(f"acme={q(tls.acme_directory)}")
    s.raw(f"""
# A certificate from another ACME server, or answered another way, is replaced now: renewals
# would otherwise keep going to the old server, or answer challenges where nothing listens.
force=()
if [ -f {q(renewal)} ]; then
  grep -qxF {q("server = " + tls.acme_directory)} {q(renewal)} || force=(--force-renewal)
  grep -qxF {q("authenticator = " + authenticator)} {q(renewal)} || force=(--force-renewal)
fi
if ! out=$({cmd(*certbot)} "${{force[@]}}" 2>&1); then
  fail "no certificate for {names_text} from $acme: the ACME server could not validate host {where} over HTTP-01 or refused the order. Nothing changed on the host: it serves what it served before. Check that {names_text} resolve to this host and that port 80 is open to the internet. certbot said:
$(tail -n 25 <<<"$out")"
fi
RENEWED_LINEAGE={q(f"{LETSENCRYPT_LIVE}/{domain}")} {q(p.renew_hook)} \
  || fail "the certificate for {domain} was obtained but the front did not serve it (above); the previous certificate serves again"
echo "flask-stack: {host} serves the certificate of {names_text} from $acme; certbot.timer renews it"
""")
    return s


# -- health gate ----------------------------------------------------------------------------
def gate(settings: Settings, host: str, address: str) -> Script:
    """The barrier between batches: the host answers the health path through its front (each
    changing step has already checked, and undone itself on failure), then old releases are
    pruned."""
    p = Paths(settings.app.name)
    health = settings.deploy.health_path
    keep = settings.deploy.releases_kept
    s = Script("health gate", host)
    s.raw(health_functions(settings, host, address))
    s.raw(f"""
if ! healthy_within {settings.deploy.health_timeout}; then
  capture_journal
  fail "{health} did not answer 200 within {settings.deploy.health_timeout} s (last status $code) on host {host} ({address}); nothing was changed by this step. Last lines of the app's journal:
$journal"
fi
# Keep the newest {keep} releases (the current one among them).
current={q(p.current)}
cd {q(p.releases)}
live=$(basename "$(readlink "$current")")
older=0
for release in $(ls -1t); do
  case "$release" in "$live"|.*) continue ;; esac
  older=$((older + 1))
  if [ $older -ge {keep} ]; then rm -rf -- "$release"; fi
done
echo "{host} answers 200 on {health}"
""")
    return s
