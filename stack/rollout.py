"""Rolling the app onto a site's hosts in batches.

Batch k+1's steps depend on batch k's health gates, so a release that fails its gate stops at
the first batch while the rest of the hosts (and the load balancer) keep serving the old one.
The release command (app.releaseCommand, e.g. migrations) runs once, on the first host of the
first batch, before any host switches; the other hosts of that batch wait for it. Where the
site's database needs its app user granted rights first (DigitalOcean), the first host does that
right after its bootstrap, and no host of the first batch releases before it is done.
"""

from __future__ import annotations

import pulumi

from stack import render
from stack.host import AppHost, AppHostArgs
from stack.release import Release
from stack.settings import Settings
from stack.site import Site


def secret_env(settings: Settings, database_url: pulumi.Input[str] | None) -> pulumi.Output[str]:
    """The root-only EnvironmentFile of the app: DATABASE_URL and app.secretEnv, as a secret."""
    values = [pulumi.Output.secret(secret.value or "") for _, secret in settings.app.secret_env]
    url = pulumi.Output.secret(database_url) if database_url is not None else pulumi.Output.from_input("")

    def lines(args: list[str]) -> str:
        url_value, *secret_values = args
        return secret_env_text(settings, url_value, secret_values)

    return pulumi.Output.secret(pulumi.Output.all(url, *values).apply(lines))


def secret_env_text(settings: Settings, database_url: str | None, values: list[str] | None = None) -> str:
    """The secrets file's text from known values (`values` in app.secretEnv's order; by default
    the settings' own, which a decrypted config has)."""
    names = [name for name, _ in settings.app.secret_env]
    if values is None:
        values = [secret.value or "" for _, secret in settings.app.secret_env]
    out = [render.env_file_line("DATABASE_URL", database_url)] if database_url else []
    out += [render.env_file_line(n, v) for n, v in zip(names, values, strict=True)]
    return "".join(f"{line}\n" for line in out)


def batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class Rollout(pulumi.ComponentResource):
    """Every host's AppHost, in batches of deploy.batchSize."""

    def __init__(self, name: str, settings: Settings, site: Site, release: Release,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("flask-stack:app:Rollout", name, None, opts)
        env = secret_env(settings, site.database_url)
        self.hosts: list[AppHost] = []
        after: list[pulumi.Resource] = []
        for k, batch in enumerate(batches(site.hosts, settings.deploy.batch_size)):
            gates = []
            for j, host in enumerate(batch):
                first = k == 0 and j == 0
                waits = list(after)
                if k == 0 and not first and settings.app.release_command:
                    waits.append(self.hosts[0].release)
                grant = self.hosts[0].database if self.hosts else None
                app_host = AppHost(
                    f"{name}-{host.name}",
                    AppHostArgs(settings=settings, host=host, release=release,
                                files=render.render_host(settings, host), secret_env=env,
                                run_release_command=first, after=waits,
                                database_admin=site.database_admin if first else None,
                                release_after=[grant] if grant is not None and k == 0 else []),
                    opts=pulumi.ResourceOptions(parent=self))
                self.hosts.append(app_host)
                gates.append(app_host.gate)
            after = gates
        self.register_outputs({"release": release.id, "hosts": len(self.hosts)})
