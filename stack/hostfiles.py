"""Every file a host receives, in one table: where it goes, what makes it, who may read it, the
tool that checks it before it replaces the live one, and what a change to it sets off.

Render (`render.render_host`), the steps that install files (`scripts.config_files`, the env and
certificate steps), the step triggers (`host.py`), `stack diff` (what a change reloads) and the
tests all read this table; adding a host file is one row here and one template.

Rows without a template are files the host makes or receives another way (from the env step's
stdin, from the host's CPU count): they are listed so that the table is the whole picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from stack.inventory import host_names
from stack.paths import SSHD_DROPIN, Paths
from stack.settings import Process, Schedule, Settings


class Step(StrEnum):
    """The remote step that installs a file (stack/host.py runs them in this order)."""

    BOOTSTRAP = "bootstrap"  # the host's own settings (sshd), before anything of the app
    ENV = "env"
    RELEASE = "release"  # the process and schedule units, which switch together with the code
    CONFIGURE = "configure"
    CERTIFICATE = "certificate"


class Reload(StrEnum):
    """What a change to a file sets off once it is installed. The value is the word the
    configure step collects for each changed file (`changed=" front gunicorn "`)."""

    FRONT = "front"  # Nginx or HAProxy reloads: new workers, old ones finish their requests
    GUNICORN = "gunicorn"  # Gunicorn's master gets HUP: new workers, no connection refused
    UNITS = "units"  # systemd re-reads its units and the app restarts (the socket stays open)
    SOCKET = "socket"  # a new listening address: the socket and the app restart
    RESTART = "restart"  # the app restarts to read its environment again (the env step)
    PROCESS = "process"  # that process restarts (SIGTERM, then up to stopTimeout); the web app does not
    TIMER = "timer"  # that schedule's timer is set again; the web app and the processes do not
    DAEMON = "daemon"  # systemd re-reads its units; nothing restarts (the failure report)
    NOTHING = "nothing"  # used when it runs next (certbot's renewal hook)
    SSHD = "sshd"  # sshd reloads: new logins follow it, open sessions (the deploy's own) stay

    def describe(self, settings: Settings) -> str:
        front = "Nginx" if settings.front == "nginx" else "HAProxy"
        return {
            Reload.FRONT: f"{front} reloads",
            Reload.GUNICORN: "Gunicorn reloads its workers (HUP)",
            Reload.UNITS: "systemd reloads its units and the app restarts",
            Reload.SOCKET: "the app's socket and the app restart (connections are refused briefly)",
            Reload.RESTART: "the app restarts",
            Reload.PROCESS: "that process restarts (the web app does not)",
            Reload.TIMER: "that schedule's timer is set again (nothing restarts)",
            Reload.DAEMON: "systemd re-reads its units (nothing restarts)",
            Reload.NOTHING: "nothing reloads (used from its next run)",
            Reload.SSHD: "sshd reloads (open SSH sessions stay; new logins follow the new file)",
        }[self]


class Validator(StrEnum):
    """The tool that checks a candidate file before it replaces the live one."""

    NGINX = "nginx -t"
    HAPROXY = "haproxy -c"
    GUNICORN = "gunicorn --check-config"  # loads the app with the new config, as its own user
    SYSTEMD = "systemd-analyze verify"
    SSHD = "sshd -t"  # with the host's whole sshd config, the staged file in it
    NONE = "none"


@dataclass(frozen=True)
class HostFile:
    """One row: a file on every host of a stack where `wanted` holds."""

    name: str  # short name, e.g. "nginx-site"
    path: Callable[[Paths], str]  # where it goes on the host
    template: str | None  # under templates/; None: made on the host or given another way
    step: Step
    mode: str  # octal, e.g. "0644"
    group: str  # "root", or "app" for the app's own group (it reads the file as that user)
    validator: Validator
    reloads: Reload
    wanted: Callable[[Settings], bool] = lambda settings: True
    note: str = ""  # where a file without a template comes from
    entry: Process | Schedule | None = None  # the process or schedule a row of entry_rows is for

    def remote(self, settings: Settings) -> str:
        return self.path(Paths(settings.app.name))

    def group_name(self, settings: Settings) -> str:
        return settings.app.name if self.group == "app" else self.group


def _nginx(settings: Settings) -> bool:
    return settings.front == "nginx"


def _haproxy(settings: Settings) -> bool:
    return settings.front == "haproxy"


def _tls(settings: Settings) -> bool:
    return settings.tls.enabled


def _ssh(settings: Settings) -> bool:
    return bool(settings.ssh.user)  # hosts the deploy logs in to (not a Heroku app)


TABLE: tuple[HostFile, ...] = (
    HostFile("sshd-config", lambda p: SSHD_DROPIN, "ssh/sshd.conf.j2",
             Step.BOOTSTRAP, "0644", "root", Validator.SSHD, Reload.SSHD, _ssh),
    HostFile("gunicorn-conf", lambda p: p.gunicorn_conf, "gunicorn/gunicorn.conf.py.j2",
             Step.CONFIGURE, "0640", "app", Validator.GUNICORN, Reload.GUNICORN),
    HostFile("wsgi-entry", lambda p: p.wsgi, "gunicorn/wsgi.py.j2",
             Step.CONFIGURE, "0640", "app", Validator.GUNICORN, Reload.GUNICORN,
             note="the release step also switches it together with a release"),
    HostFile("service-unit", lambda p: p.service_unit, "systemd/app.service.j2",
             Step.CONFIGURE, "0644", "root", Validator.SYSTEMD, Reload.UNITS),
    HostFile("socket-unit", lambda p: p.socket_unit, "systemd/app.socket.j2",
             Step.CONFIGURE, "0644", "root", Validator.SYSTEMD, Reload.SOCKET),
    HostFile("failure-unit", lambda p: p.failure_unit, "systemd/failed.service.j2",
             Step.CONFIGURE, "0644", "root", Validator.SYSTEMD, Reload.DAEMON),
    HostFile("failure-script", lambda p: p.failure_script, "systemd/failed.sh.j2",
             Step.CONFIGURE, "0600", "root", Validator.NONE, Reload.NOTHING),
    HostFile("app-env", lambda p: p.env_file, "systemd/app.env.j2",
             Step.ENV, "0600", "root", Validator.NONE, Reload.RESTART),
    HostFile("secret-env", lambda p: p.secret_env_file, None,
             Step.ENV, "0600", "root", Validator.NONE, Reload.RESTART,
             note="DATABASE_URL and app.secretEnv, on the env step's stdin (never rendered)"),
    HostFile("nginx-conf", lambda p: p.nginx_conf, "nginx/nginx.conf.j2",
             Step.CONFIGURE, "0644", "root", Validator.NGINX, Reload.FRONT, _nginx),
    HostFile("nginx-site", lambda p: p.nginx_site, "nginx/site.conf.j2",
             Step.CONFIGURE, "0644", "root", Validator.NGINX, Reload.FRONT, _nginx),
    HostFile("nginx-workers", lambda p: p.nginx_workers, None,
             Step.CONFIGURE, "0644", "root", Validator.NGINX, Reload.FRONT, _nginx,
             note="the worker count, from the host's CPUs (or frontWorkers)"),
    HostFile("haproxy-cfg", lambda p: p.haproxy_cfg, "haproxy/haproxy.cfg.j2",
             Step.CONFIGURE, "0644", "root", Validator.HAPROXY, Reload.FRONT, _haproxy),
    HostFile("renew-hook", lambda p: p.renew_hook, "tls/renew-hook.sh.j2",
             Step.CERTIFICATE, "0755", "root", Validator.NONE, Reload.NOTHING, _tls),
)


def entry_rows(settings: Settings) -> list[HostFile]:
    """The rows of the stack's processes and schedules: per process its template unit (and its
    own environment file when it has `env`), per schedule a service and a timer. The release
    step installs them, since a new release may change what they run."""
    rows = []
    for proc in settings.processes:
        rows.append(HostFile(f"process-{proc.name}", lambda p, n=proc.name: p.process_unit(n),
                             "systemd/process.service.j2", Step.RELEASE, "0644", "root",
                             Validator.SYSTEMD, Reload.PROCESS, entry=proc))
        if proc.env:
            rows.append(HostFile(f"process-{proc.name}-env", lambda p, n=proc.name: p.process_env(n),
                                 "systemd/process.env.j2", Step.RELEASE, "0600", "root",
                                 Validator.NONE, Reload.PROCESS, entry=proc))
    for job in settings.schedules:
        rows.append(HostFile(f"schedule-{job.name}", lambda p, n=job.name: p.schedule_unit(n),
                             "systemd/schedule.service.j2", Step.RELEASE, "0644", "root",
                             Validator.SYSTEMD, Reload.TIMER, entry=job))
        rows.append(HostFile(f"schedule-{job.name}-timer",
                             lambda p, n=job.name: p.schedule_unit(n, "timer"),
                             "systemd/schedule.timer.j2", Step.RELEASE, "0644", "root",
                             Validator.SYSTEMD, Reload.TIMER, entry=job))
    return rows


def runs_on(settings: Settings, entry: Process | Schedule, host: str | None) -> bool:
    """Whether `host` runs `entry` (every host for "all", the first for "first"); a host of None
    (the stack as a whole) runs everything."""
    return host is None or entry.on == "all" or host == host_names(settings)[0]


def files_of(settings: Settings, host: str | None = None) -> list[HostFile]:
    """The rows that apply to this stack (to `host` of it, when given), in table order, then the
    processes' and schedules'."""
    return ([row for row in TABLE if row.wanted(settings)]
            + [row for row in entry_rows(settings) if runs_on(settings, row.entry, host)])


def rendered(settings: Settings, host: str | None = None) -> dict[str, HostFile]:
    """{remote path: row} of the files rendered for this stack (for `host`), sorted by path."""
    rows = {row.remote(settings): row for row in files_of(settings, host) if row.template}
    return dict(sorted(rows.items()))


def by_path(settings: Settings) -> dict[str, HostFile]:
    return {row.remote(settings): row for row in files_of(settings)}


def installed_by(settings: Settings, step: Step, files: dict[str, str]) -> list[HostFile]:
    """The rendered files `step` installs, sorted by path."""
    rows = by_path(settings)
    return [rows[path] for path in sorted(files)
            if path in rows and rows[path].step is step and rows[path].template is not None]
