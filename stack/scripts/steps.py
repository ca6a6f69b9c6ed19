"""The remote steps' scripts: which template, with which values.

The shell itself is in templates/scripts/; values reach it only through stack.scripts.shell
(every `{{ }}` becomes one quoted word). Secrets never appear here: they reach a host on the
env and database steps' stdin. Each script starts with `set -Eeuo pipefail` and a trap that
names the step and the host when a command fails, and is safe to run again.

Every step that changes what a host serves (env, release, configure) asks the health path
through the front afterwards and, if it does not answer 200 in time, puts back what it replaced
and fails. A failed step thus leaves the host as it was and, since pulumi-command records only
steps that succeeded, the stack's state as it was too: the next `pulumi up` tries it again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from stack import assets, balancer, hostfiles, sshd
from stack.inventory import Host
from stack.paths import LETSENCRYPT_LIVE, Paths
from stack.release import Release
from stack.render import ACME_PORT, HEADER, environment, render_host
from stack.scripts.shell import Shell, cmd, render
from stack.settings import Settings

# The longest command line a step may be. SSH hands the remote shell the whole command as one
# argument, and Linux takes at most 131,072 bytes in one (MAX_ARG_STRLEN, the NUL included): a
# longer step cannot even start. The margin covers the host's address, which the scripts name
# a few times and which a cloud host has only once it exists (the check runs first with its name).
MAX_COMMAND = 120_000

# What to do about each kind of big content, by the label a Script gives it.
ADVICE = {
    "app.env": "app.env values are limited for this reason; keep a big value in a file of the app, "
               "or in app.secretEnv (secrets reach the host on stdin, which has no such limit)",
    "app.releaseCommand": "put a long release command in a script in the app and call that",
    "tls.acmeCaBundle": "give only the CA certificates behind the ACME server's HTTPS",
}

AUTO_UPGRADES = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'


@dataclass(frozen=True)
class Script:
    """One step's script for one host: `text()` is what runs under bash."""

    step: str
    host: str
    body: str
    address: str = ""  # the address the deploy reaches the host at, for its messages
    # The big things in `body` that come from the config, by what they are ("app.env", a host
    # file's path): what a too-long command line names as the cause.
    parts: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        return prelude(self.step, self.host, self.address) + self.body


def prelude(step: str, host: str, address: str = "") -> str:
    """Strict mode, and `fail` plus an ERR trap that name the step and the host with its address
    (every failure message of a step starts `flask-stack: <step> on host web-0 (203.0.113.10):`)."""
    return render("prelude.sh.j2", step=step, where=where(host, address))


class CommandTooLong(ValueError):
    """A step whose command line is longer than one SSH exec argument may be."""


def as_root(settings: Settings, script: Script) -> str:
    """The command line a remote step runs: the script under bash, through sudo unless the
    login user is root. Refuses one longer than MAX_COMMAND bytes (CommandTooLong), naming the
    biggest part of it, since a host would refuse to run it at all."""
    line = cmd("bash", "-c", script.text())
    line = line if settings.ssh.user == "root" else "sudo -n " + line
    size = len(line.encode())
    if size > MAX_COMMAND:
        raise CommandTooLong(too_long(script, size))
    return line


def quoted_size(text: str) -> int:
    """Bytes `text` takes in the command line: shlex.quote writes each ' as 5 bytes."""
    return len(text.encode()) + 4 * text.count("'")


def too_long(script: Script, size: int) -> str:
    at = named(script.host, script.address)
    message = (f"flask-stack: the {script.step} step for host {at} is {size / 1000:.1f} KB as one "
               f"SSH command, over the {MAX_COMMAND / 1000:.0f} KB a step's command may be (Linux "
               f"passes at most 131 KB in one argument, so the host could not run it)")
    if script.parts:
        what, text = max(script.parts, key=lambda part: quoted_size(part[1]))
        advice = ADVICE.get(what, "make it smaller")
        message += f"; {what} is {quoted_size(text) / 1000:.1f} KB of this: {advice}"
    return message


def named(host: str, address: str) -> str:
    """`web-0 (203.0.113.10)`, or the bare name when the address adds nothing."""
    return host + (f" ({address})" if address and address != host else "")


def where(host: str, address: str) -> str:
    return f"on host {named(host, address)}"


def context(settings: Settings, host: str, address: str = "", **values: object) -> dict:
    return {"settings": settings, "paths": Paths(settings.app.name), "host": host,
            "address": address, "where": where(host, address), **values}


def draining(settings: Settings) -> dict:
    """drain.sh.j2's values: 0 drain seconds (no balancer) leaves draining out of the scripts."""
    drain, undrain = balancer.drain_seconds(settings)
    return {"drain": drain, "undrain": undrain}


def health_functions(settings: Settings, host: str, address: str) -> str:
    """probe, healthy_within SECONDS, and unhealthy WHAT-WAS-UNDONE (fails with the journal)."""
    return render("health.sh.j2", **context(settings, host, address))


# -- bootstrap ------------------------------------------------------------------------------
def packages(settings: Settings) -> list[str]:
    front = "nginx" if settings.front == "nginx" else "haproxy"
    wanted = {front, "python3-venv", "unattended-upgrades", "curl", "ca-certificates"}
    if settings.platform == "digitalocean":
        wanted.add("postgresql-client")  # the database step grants the app's user its rights
    if settings.tls.enabled:
        wanted |= {"certbot", "openssl"}  # the ACME client (its certbot.timer renews) and checks
    return sorted(wanted)


def bootstrap(settings: Settings, host: str, address: str = "",
              files: dict[str, str] | None = None) -> Script:
    """The OS packages, the app's user and directories, and the host's own files of the table's
    bootstrap rows (sshd's drop-in). `files`: the host's rendered files (rendered here if not
    given)."""
    # What every unit flask-stack writes for this app begins with (render.HEADER).
    mark = HEADER.format(app=settings.app.name).split(". ")[0]
    if files is None:
        files = render_host(settings, Host(host, address or None))
    rows = hostfiles.installed_by(settings, hostfiles.Step.BOOTSTRAP, files)
    sshd_row = next((row for row in rows if row.validator is hostfiles.Validator.SSHD), None)
    sshd_values = None
    if sshd_row is not None:
        path = sshd_row.remote(settings)
        directory, name = path.rsplit("/", 1)
        sshd_values = {"path": path, "dir": directory, "name": name, "content": files[path],
                       "user": settings.ssh.user, "expected": sshd.expected(settings)}
    body = render("bootstrap.sh.j2", **context(settings, host, address), packages=packages(settings),
                  auto_upgrades=AUTO_UPGRADES, header_mark=mark, sshd=sshd_values)
    parts = ((f"the host file {sshd_values['path']}", sshd_values["content"]),) if sshd_values else ()
    return Script("bootstrap", host, body, address, parts=parts)


# -- database -------------------------------------------------------------------------------
def sql_identifier(name: str) -> str:
    """A PostgreSQL identifier in double quotes (settings allow only [a-z_][a-z0-9_]*)."""
    if "\n" in name or "\0" in name:
        raise ValueError(f"not an SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def grants(database_name: str, user: str) -> Shell:
    """psql with the grants in a quoted heredoc; identifiers cannot hold a newline, so the
    delimiter line cannot occur in it."""
    db, who = sql_identifier(database_name), sql_identifier(user)
    return Shell(f"psql -X -q -v ON_ERROR_STOP=1 <<'SQL'\n"
                 f"GRANT ALL PRIVILEGES ON DATABASE {db} TO {who};\n"
                 f"GRANT ALL ON SCHEMA public TO {who};\nSQL\n")


def database(settings: Settings, host: str, database_name: str, user: str, *,
             wait_seconds: int = 300, address: str = "") -> Script:
    """Grants the app's database user what it needs to own its schema, as the database's
    administrator, whose libpq settings (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE) arrive
    on stdin. A managed service may create the user with no rights at all, and PostgreSQL 15+
    lets only the database owner create in the public schema, so without this the first
    migration fails. Waits for a database that is still starting; safe to run again."""
    body = render("database.sh.j2", **context(settings, host, address), database_name=database_name,
                  user=user, wait_seconds=int(wait_seconds), grants=grants(database_name, user))
    return Script("database", host, body, address)


# -- env ------------------------------------------------------------------------------------
def env(settings: Settings, host: str, app_env: str, address: str = "") -> Script:
    """Writes the plain env file (in the script) and the secret one (from stdin), restarting
    the app when either changed (a reload would keep the old environment); if the app does not
    come back healthy, the previous files are put back."""
    patterns = [Paths(settings.app.name).process_name(proc.name).replace("@.", "@*.")
                for proc in settings.processes]
    return Script("env", host, render("env.sh.j2", **context(settings, host, address), app_env=app_env,
                                      processes=patterns, **draining(settings)),
                  address, parts=(("app.env", app_env),))


# -- release --------------------------------------------------------------------------------
PREFLIGHT = Path(__file__).resolve().parent.parent / "preflight.py"


@cache
def sandbox() -> tuple[str, ...]:
    """The app unit's hardening block (templates/systemd/hardening.inc.j2) as systemd-run
    properties, so a one-off process (`run`, the release's preflight) is confined as the app is."""
    text = environment().get_template("systemd/hardening.inc.j2").render()
    return tuple(f"--property={line.strip()}" for line in text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#"))


# Seconds a restarted process must keep running for the release step to count it started.
PROCESS_SETTLE = 5


def release(settings: Settings, host: str, rel: Release, *, release_command: bool,
            address: str = "", wsgi: str | None = None, files: dict[str, str] | None = None) -> Script:
    """Unpack the release with its own venv (once), run the release command if asked, switch
    `current` atomically and reload Gunicorn so new workers load the new code; if the app does
    not answer healthy, switch back to the release that served before. `wsgi`: the WSGI entry,
    which switches with the code (a new release may rename the app's module). `files`: the
    host's rendered files, whose process and schedule units switch with the code too."""
    target = Paths(settings.app.name).release_dir(rel)
    static = ""
    if settings.app.static_dir and settings.front == "nginx":  # HAProxy leaves them to the app
        static = f"{target}/{settings.app.static_dir}"
    command = settings.app.release_command if release_command else ""
    units = entry_units(settings, host, files or {})
    body = render("release.sh.j2", **context(settings, host, address), rel=rel, target=target,
                  deps=deps_key(rel), static=static, **compressing(), release_command=command or "",
                  wsgi=wsgi, release_command_sha=text_hash(command or ""),
                  **preflight(settings, target, rel.id, '"$wsgi.flaskstack-release"' if wsgi is not None
                              else Paths(settings.app.name).wsgi),
                  **units)
    parts = (("app.releaseCommand", command or ""), (f"the WSGI module (app.entry {settings.app.entry!r})",
                                                        wsgi or ""),
             *((f"the host file {f['path']}", f["content"]) for f in units["entry_files"]))
    return Script("release", host, body, address, parts=parts)


def preflight(settings: Settings, target: str, release_id: str, entry: str) -> dict:
    """preflight.sh.j2's values: the release `release_id` unpacked at `target`, loaded through
    the WSGI entry `entry` (a shell word: the staged file, or a path)."""
    return {"preflight_run": preflight_run(settings, target),
            "preflight_source": PREFLIGHT.read_text(), "preflight_release": release_id,
            "preflight_entry": Shell(entry)}


def preflight_run(settings: Settings, target: str) -> Shell:
    """systemd-run for the release's preflight (preflight.sh.j2): the app's user, environment
    files, state directory and sandbox, from the new release, bounded by deploy.healthTimeout."""
    p = Paths(settings.app.name)
    return cmd("systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
               f"--uid={p.app}", f"--gid={p.app}", f"--working-directory={target}",
               f"--property=EnvironmentFile=-{p.env_file}",
               f"--property=EnvironmentFile=-{p.secret_env_file}", f"--property=StateDirectory={p.app}",
               "--property=UMask=0027",
               f"--property=RuntimeMaxSec={settings.deploy.health_timeout}", *sandbox(),
               f"--setenv=PATH={target}/venv/bin:/usr/local/bin:/usr/bin:/bin",
               f"--setenv=HOME={p.state}", f"{target}/venv/bin/python")


def entry_units(settings: Settings, host: str, files: dict[str, str]) -> dict:
    """What processes.sh.j2 installs and starts on `host`: the unit and env files of its processes
    and schedules (the host-file table's release rows), each process's instances, each timer."""
    p = Paths(settings.app.name)
    rows = hostfiles.installed_by(settings, hostfiles.Step.RELEASE, files)
    return {
        "entry_files": [{"path": row.remote(settings), "mode": row.mode, "entry": row.entry.name,
                         "content": files[row.remote(settings)]} for row in rows],
        "procs": [{"name": proc.name, "count": proc.count,
                   "instance_prefix": p.process_name(proc.name).removesuffix(".service")}
                  for proc in settings.processes if hostfiles.runs_on(settings, proc, host)],
        "timers": [{"name": job.name, "timer": p.schedule_name(job.name, "timer")}
                   for job in settings.schedules if hostfiles.runs_on(settings, job, host)],
        "settle": PROCESS_SETTLE,
        "prefix": p.unit_prefix,
        "header_line": HEADER.format(app=settings.app.name),
    }


def text_hash(text: str) -> str:
    """SHA-256 of `text`; a lone surrogate is hashed as it is (the renderer refuses it itself)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def deps_key(rel: Release) -> str:
    """What decides a release's venv: the wheels it installs (their names carry versions and
    platform tags). Releases with the same key can share one venv's files."""
    return hashlib.sha256("\n".join(sorted(rel.wheels)).encode()).hexdigest()[:20]


def static_files(static: str) -> str:
    """Shell text for the release step, run every time it runs (so a change of app.staticDir
    alone applies): the static folder's text files pre-compressed for the front (gzip_static),
    and the least the front's user needs to serve it from a release that is otherwise closed to
    it: enter (not list) each folder on the way, read the static folder itself."""
    return render("static.sh.j2", static=static, **compressing())


def compressing() -> dict:
    """What static.sh.j2 compresses (stack/assets.py, the rule a dyno's archive follows too)."""
    return {"names": Shell(assets.find_names()), "larger_than_kib": assets.LARGER_THAN_KIB}


# -- configure ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigFile:
    path: str
    mode: str
    group: str
    kind: str  # what must happen when it changes: hostfiles.Reload's value
    check: str = "none"  # the tool that checks it first: hostfiles.Validator's value


def config_files(settings: Settings, files: dict[str, str]) -> list[ConfigFile]:
    """The rendered files the configure step installs, from the host-file table."""
    return [ConfigFile(row.remote(settings), row.mode, row.group_name(settings), row.reloads.value,
                       row.validator.value)
            for row in hostfiles.installed_by(settings, hostfiles.Step.CONFIGURE, files)]


def nginx_workers(directory: str, count: int | None = None) -> str:
    """Shell text writing Nginx's worker count into `directory` (a path, or a Shell word of
    this package's): `count` (the frontWorkers setting) or, without one, half the CPUs this host
    gives us, at least one. On 2 cores under 256 clients, one worker instead of two took Nginx
    from about 70 to about 60 µs of CPU per proxied request (docs/benchmarks.md: "Why these
    defaults")."""
    name = Paths("").nginx_workers.rsplit("/", 1)[1]
    why = Shell("half of this host's $cpus CPUs, at least one" if count is None else "frontWorkers")
    text = render("nginx_workers.sh.j2", directory=directory, name=name, why=why,
                  count=None if count is None else int(count))
    return Shell(text.rstrip("\n"))


def configure(settings: Settings, host: str, files: dict[str, str], address: str = "") -> Script:
    """Stage the rendered files, validate them with their own tools, install the changed ones
    and reload what they belong to; if the app then does not answer healthy, put the replaced
    files back."""
    p = Paths(settings.app.name)
    nginx = settings.front == "nginx"
    front, other = ("nginx", "haproxy") if nginx else ("haproxy", "nginx")
    workers = nginx_workers(Shell('"$stage/files/etc/nginx"'), settings.front_workers) if nginx else ""
    placeholder = placeholder_certificate(settings, host) if settings.tls.enabled else ""
    wanted = config_files(settings, files)
    body = render("configure.sh.j2", **context(settings, host, address), files=files,
                  wanted=wanted, nginx=nginx, front=front, other=other, **draining(settings),
                  site=p.nginx_site.rsplit("/", 1)[1], workers=workers, placeholder=placeholder)
    parts = tuple((f"the host file {f.path}", files[f.path]) for f in wanted)
    return Script("configure", host, body, address, parts=parts)


# -- certificate ----------------------------------------------------------------------------
def tls_names(settings: Settings) -> list[str]:
    domain = settings.domain.name or ""
    return [domain, f"www.{domain}"] if settings.domain.www_redirect else [domain]


def placeholder_certificate(settings: Settings, host: str) -> str:
    """Shell text for configure: until the certificate step has installed a real certificate,
    a self-signed one lets the front load its TLS config (Nginx and HAProxy refuse to start
    without the files). Plain HTTP, the ACME challenges among it, works meanwhile."""
    san = ",".join(f"DNS:{n}" for n in tls_names(settings))
    domain = settings.domain.name or ""
    # A certificate's CN holds at most 64 characters (openssl refuses more); the SAN names it.
    subject = f"/CN={domain}" if len(domain) <= 64 else "/CN=flask-stack placeholder"
    return render("placeholder.sh.j2", **context(settings, host), domain=domain, san=san,
                  subject=subject)


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
    # certbot.service (the renewals) reports a failed renewal as the app's units report theirs,
    # and trusts a private ACME server's CA (tls.acmeCaBundle) as this step does.
    dropin = (f"# Rendered by flask-stack for {settings.app.name}.\n[Unit]\nOnFailure={p.on_failure}\n"
              + (f"[Service]\nEnvironment=REQUESTS_CA_BUNDLE={p.acme_ca_bundle}\n"
                 if tls.acme_ca_bundle else ""))
    body = render("certificate.sh.j2", **context(settings, host, address),
                  at=named(host, address),
                  renew_hook=files[p.renew_hook], dropin=dropin, authenticator=authenticator,
                  certbot=certbot, names=" and ".join(names), domain=domain,
                  renewal=f"/etc/letsencrypt/renewal/{domain}.conf",
                  lineage=f"{LETSENCRYPT_LIVE}/{domain}")
    parts = (("tls.acmeCaBundle", tls.acme_ca_bundle or ""), ("the renew hook", files[p.renew_hook]))
    return Script("certificate", host, body, address, parts=parts)


# -- health gate ----------------------------------------------------------------------------
def gate(settings: Settings, host: str, address: str) -> Script:
    """The barrier between batches: the host answers the health path through its front (each
    changing step has already checked, and undone itself on failure), then old releases are
    pruned."""
    return Script("health gate", host, render("gate.sh.j2", **context(settings, host, address)), address)
