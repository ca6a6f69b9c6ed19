"""Where things live on a host: every path, directory and unit name, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stack.release import Release

WSGI_MODULE = "flaskstack_wsgi"
LETSENCRYPT_LIVE = "/etc/letsencrypt/live"
# The host's sshd settings (one per host, whatever apps it runs). Debian's sshd_config includes
# sshd_config.d/*.conf at its top, and sshd keeps the first value it reads of each keyword: the
# 10- prefix puts this file before the cloud images' own (e.g. 50-cloud-init.conf).
SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-flask-stack.conf"


@dataclass(frozen=True)
class Paths:
    """Where everything of one app lives on a host: the one place for every path and unit name
    the host files, the scripts and the tests use."""

    app: str

    @property
    def root(self) -> str:
        return f"/srv/{self.app}"

    @property
    def releases(self) -> str:
        return f"{self.root}/releases"

    @property
    def current(self) -> str:
        return f"{self.root}/current"

    @property
    def deployed(self) -> str:
        """The release the last deploy made current here (the release step writes it; a rollback
        leaves it, so `status` can tell a rolled-back host from the stack's release)."""
        return f"{self.root}/deployed"

    @property
    def drain(self) -> str:
        """While it exists, the health path answers 503: the balancer takes the host out (the
        WSGI entry checks it; the configure and env steps make it around a change)."""
        return f"/run/{self.app}.drain"

    @property
    def etc(self) -> str:
        return f"/etc/{self.app}"

    @property
    def state(self) -> str:
        return f"/var/lib/{self.app}"

    @property
    def gunicorn_conf(self) -> str:
        return f"{self.etc}/gunicorn.conf.py"

    @property
    def wsgi(self) -> str:
        return f"{self.etc}/{WSGI_MODULE}.py"

    @property
    def env_file(self) -> str:
        return f"{self.etc}/app.env"

    @property
    def secret_env_file(self) -> str:
        return f"{self.etc}/secrets.env"

    @property
    def socket(self) -> str:
        return f"/run/{self.app}/gunicorn.sock"

    @property
    def acme_webroot(self) -> str:
        return "/var/www/acme"

    @property
    def tls_dir(self) -> str:
        """Where the front reads its certificate (root only): installed from certbot's lineage
        by the renewal hook, or a self-signed placeholder until the first one is obtained."""
        return f"{self.etc}/tls"

    @property
    def tls_fullchain(self) -> str:
        return f"{self.tls_dir}/fullchain.pem"

    @property
    def tls_key(self) -> str:
        return f"{self.tls_dir}/privkey.pem"

    @property
    def tls_pem(self) -> str:
        """Chain and key in one file, as HAProxy reads them."""
        return f"{self.tls_dir}/haproxy.pem"

    @property
    def acme_ca_bundle(self) -> str:
        """The system's CAs plus tls.acmeCaBundle, for the ACME client (REQUESTS_CA_BUNDLE)."""
        return f"{self.tls_dir}/acme-ca-bundle.pem"

    @property
    def renew_hook(self) -> str:
        """certbot runs every executable here after it renews a certificate."""
        return f"/etc/letsencrypt/renewal-hooks/deploy/flask-stack-{self.app}"

    @property
    def certbot_dropin(self) -> str:
        return f"/etc/systemd/system/certbot.service.d/flask-stack-{self.app}.conf"

    @property
    def service_unit(self) -> str:
        return f"/etc/systemd/system/{self.service_name}"

    @property
    def socket_unit(self) -> str:
        return f"/etc/systemd/system/{self.socket_name}"

    @property
    def nginx_conf(self) -> str:
        return "/etc/nginx/nginx.conf"

    @property
    def nginx_workers(self) -> str:
        """Nginx's worker count, written on the host from its CPUs by the configure step
        (scripts.nginx_workers), included by nginx.conf."""
        return "/etc/nginx/flask-stack-workers.conf"

    @property
    def nginx_site(self) -> str:
        return f"/etc/nginx/sites-available/{self.app}.conf"

    @property
    def nginx_site_link(self) -> str:
        """The link that enables the site (configure makes it after the site passes nginx -t)."""
        return f"/etc/nginx/sites-enabled/{self.app}.conf"

    @property
    def haproxy_cfg(self) -> str:
        return "/etc/haproxy/haproxy.cfg"

    @property
    def service_name(self) -> str:
        """The app's systemd service (its unit file is `service_unit`)."""
        return f"{self.app}.service"

    @property
    def socket_name(self) -> str:
        return f"{self.app}.socket"

    @property
    def failure_name(self) -> str:
        """The template unit that reports a unit of the app that failed (its instance is the
        failed unit's name). Not `<app>-...`: that prefix is the processes' and schedules', whose
        files the release step removes when the config no longer names them."""
        return f"{self.app}.failed@.service"

    @property
    def failure_unit(self) -> str:
        return f"/etc/systemd/system/{self.failure_name}"

    @property
    def on_failure(self) -> str:
        """OnFailure= of every unit of the app (and certbot's): the report, for that unit."""
        return f"{self.app}.failed@%n.service"

    @property
    def failure_script(self) -> str:
        """What the report runs (templates/systemd/failed.sh.j2)."""
        return f"{self.etc}/report-failure"

    @property
    def unit_prefix(self) -> str:
        """What the unit of every process and schedule of the app begins with."""
        return f"{self.app}-"

    def process_name(self, process: str) -> str:
        """A process's template unit; its instances are `<app>-<process>@<i>.service`."""
        return f"{self.app}-{process}@.service"

    def process_unit(self, process: str) -> str:
        return f"/etc/systemd/system/{self.process_name(process)}"

    def process_env(self, process: str) -> str:
        """A process's own environment (processes.<name>.env), read after the app's."""
        return f"{self.etc}/process-{process}.env"

    def schedule_name(self, schedule: str, kind: str = "service") -> str:
        """A schedule's `.service` (the job) or `.timer` (when it runs)."""
        return f"{self.app}-{schedule}.{kind}"

    def schedule_unit(self, schedule: str, kind: str = "service") -> str:
        return f"/etc/systemd/system/{self.schedule_name(schedule, kind)}"

    def archive(self, release: Release) -> str:
        """Where the release archive is copied to before the release step unpacks it."""
        return f"/var/tmp/{self.app}-release-{release.id}.tar.gz"

    def release_dir(self, release: Release) -> str:
        return f"{self.releases}/{release.id}"
