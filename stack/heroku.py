"""Heroku: the app on dynos behind Heroku's router, with Heroku Postgres. No host, no SSH.

What `HerokuSite` declares, all parented under it:
- the Heroku **app** (`heroku.appName`, in `region`, on `heroku.stack`, owned by `heroku.team`
  when set), with Automated Certificate Management on when there is a domain, the plain config
  vars from `app.env` and the sensitive ones from `app.secretEnv` (Pulumi secrets to the end);
- **Heroku Postgres** as an add-on on the plan `database.size` at `database.engineVersion`: it
  sets `DATABASE_URL` on the app itself (the app gets it unchanged), and on prod it is protected
  and kept on delete like the other clouds' databases;
- the **preboot** feature on professional dynos (new web dynos start and take traffic before the
  old ones stop), before any build, so the first deploy after it already uses it;
- a **build** from the release archive stack/dyno.py made (its path, its SHA-256 as the build's
  checksum, the release id as the version), once the database exists: the Procfile's `release:`
  line (app.releaseCommand) runs in Heroku's release phase with DATABASE_URL set, and a failed
  build or release command fails `pulumi up` with the old release still serving;
- the **formation**: `hosts.count` web dynos of `hosts.size`, after the build (the build's
  release is what defines the `web` process type);
- **domains**: `domain.name` and, with `domain.wwwRedirect`, `www.` as custom domains; their
  DNS targets are an output, for the user's DNS provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumiverse_heroku as heroku

from stack.release import Release
from stack.settings import Settings
from stack.settings.heroku import SMALL_DYNOS

BUILDPACK = "heroku/python"  # the officially supported Python buildpack, from the registry


@dataclass(frozen=True)
class HerokuSiteArgs:
    """What `HerokuSite` takes.

    - `settings` (required): the sections read are heroku, region, hosts (count, size), database
      (size, engineVersion), app (env, secretEnv, workers), domain, ephemeral and prod.
    - `release` (required): the Heroku source archive (stack/dyno.py), built before the program
      declares anything.
    - `project_dir`: the archive's path is given relative to it, so a preview on another machine
      (CI, a laptop) shows no change for the same release. Default: the current directory, where
      the Pulumi CLI runs the program.
    """

    settings: Settings
    release: Release
    project_dir: Path | None = None


def config_vars(settings: Settings) -> dict[str, str]:
    """The plain config vars: app.env. (app.workers is written into the dyno's Gunicorn config,
    which prefers it to the WEB_CONCURRENCY the buildpack sets per dyno size.)"""
    return dict(settings.app.env)


def sensitive_config_vars(settings: Settings) -> dict[str, pulumi.Output[str]]:
    """app.secretEnv, each value a Pulumi secret (Heroku's provider keeps them out of its plan)."""
    return {name: pulumi.Output.secret(secret.value or "")
            for name, secret in settings.app.secret_env}


def domain_names(settings: Settings) -> list[str]:
    name = settings.domain.name
    if not name:
        return []
    return [name, f"www.{name}"] if settings.domain.www_redirect else [name]


class HerokuSite(pulumi.ComponentResource):
    """The Heroku side of a stack; its outputs are `url`, `database_url` (secret), `app_name`
    and `dns_targets` (custom domain -> the CNAME to point it at)."""

    url: pulumi.Output[str]
    database_url: pulumi.Output[str]
    app_name: pulumi.Output[str]
    dns_targets: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: HerokuSiteArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("flask-stack:heroku:Site", name, None, opts)
        self._name = name
        self._s = s = args.settings
        app = self._app()
        database = self._database(app)
        features = self._preboot(app)
        build = self._build(app, args.release, args.project_dir, [database, *features])
        self._formation(app, build)
        self._process_formations(app, build)
        domains = self._domains(app)

        self.app_name = app.name
        self.database_url = pulumi.Output.secret(
            database.config_var_values.apply(lambda values: (values or {}).get("DATABASE_URL", "")))
        self.dns_targets = pulumi.Output.all(*[d.hostname for d in domains],
                                             *[d.cname for d in domains]).apply(
            lambda parts: dict(zip(parts[:len(parts) // 2], parts[len(parts) // 2:], strict=True)))
        self.url = (pulumi.Output.from_input(f"https://{s.domain.name}/") if s.domain.name
                    else app.web_url)
        self.register_outputs({"url": self.url, "appName": self.app_name,
                               "dnsTargets": self.dns_targets})

    def _opts(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _app(self) -> heroku.app.App:
        s = self._s
        assert s.heroku is not None
        team = heroku.app.AppOrganizationArgs(name=s.heroku.team) if s.heroku.team else None
        return heroku.app.App(
            f"{self._name}-app", name=s.heroku.app_name, region=s.region or "us",
            stack=s.heroku.stack, organization=team, acm=bool(s.domain.name),
            buildpacks=[BUILDPACK], config_vars=config_vars(s),
            sensitive_config_vars=sensitive_config_vars(s),
            # Deleting the app deletes its add-ons: it is protected whenever the database is.
            opts=self._opts(protect=not s.ephemeral, retain_on_delete=s.is_prod))

    def _database(self, app: heroku.app.App) -> heroku.addon.Addon:
        """Heroku Postgres. Protected unless the stack is ephemeral, and kept on prod even
        after a destroy, as RDS and DigitalOcean's database are (a final snapshot there)."""
        s = self._s
        return heroku.addon.Addon(
            f"{self._name}-database", app_id=app.id,
            plan=f"heroku-postgresql:{s.database.size}",
            config={"version": s.database.engine_version},
            opts=self._opts(protect=not s.ephemeral, retain_on_delete=s.is_prod))

    def _preboot(self, app: heroku.app.App) -> list[heroku.app.Feature]:
        """Preboot: on professional dynos only (eco and basic cannot have it)."""
        if self._s.hosts.size in SMALL_DYNOS:
            return []
        return [heroku.app.Feature(f"{self._name}-preboot", app_id=app.id, name="preboot",
                                   enabled=True, opts=self._opts())]

    def _build(self, app: heroku.app.App, release: Release, project_dir: Path | None,
               after: list[pulumi.Resource]) -> heroku.build.Build:
        archive = release.archive
        base = (project_dir or Path.cwd()).resolve()
        path = archive.relative_to(base).as_posix() if archive.is_relative_to(base) else str(archive)
        return heroku.build.Build(
            f"{self._name}-build", app_id=app.id, buildpacks=[BUILDPACK],
            source=heroku.build.BuildSourceArgs(path=path, checksum=f"SHA256:{release.sha256}",
                                                version=release.id),
            opts=self._opts(depends_on=after))

    def _formation(self, app: heroku.app.App, build: heroku.build.Build) -> heroku.formation.Formation:
        s = self._s
        return heroku.formation.Formation(
            f"{self._name}-web", app_id=app.id, type="web", quantity=s.hosts.count,
            size=s.hosts.size, opts=self._opts(depends_on=[build]))

    def _process_formations(self, app: heroku.app.App,
                            build: heroku.build.Build) -> list[heroku.formation.Formation]:
        """One formation per process type of the Procfile (processes.<name>): count dynos of its
        size, or of the web dynos' size."""
        s = self._s
        return [heroku.formation.Formation(
            f"{self._name}-{proc.name}", app_id=app.id, type=proc.name, quantity=proc.count,
            size=proc.size or s.hosts.size, opts=self._opts(depends_on=[build]))
            for proc in s.processes]

    def _domains(self, app: heroku.app.App) -> list[heroku.domain.Domain]:
        return [heroku.domain.Domain(f"{self._name}-domain-{i}", app_id=app.id, hostname=host,
                                     opts=self._opts())
                for i, host in enumerate(domain_names(self._s))]
