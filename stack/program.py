"""What `pulumi up` runs, as a function so tests can run it under Pulumi's mocks."""

from __future__ import annotations

import pulumi

from stack import release, settings, site
from stack.settings import SettingsError


def load_settings() -> settings.Settings:
    """The stack's settings, or a clean error (no traceback) listing every config problem."""
    try:
        loaded = settings.from_pulumi()
    except SettingsError as exc:
        raise pulumi.RunError(exc.report(pulumi.get_stack())) from None
    for warning in loaded.warnings:
        pulumi.log.warn(warning)
    return loaded


def run() -> dict[str, object]:
    config = load_settings()
    if config.platform == settings.HEROKU:
        return run_heroku(config)
    from stack.rollout import Rollout

    try:
        built = release.build(config, settings.project_dir() / ".cache")
    except release.ReleaseError as exc:
        raise pulumi.RunError(f"stack {config.stack!r}: {exc}") from None
    the_site = build_site(config)
    rollout = Rollout("app", config, the_site, built)
    outputs: dict[str, object] = {
        "url": the_site.url,
        "hosts": [host.address for host in the_site.hosts],
        "release": built.id,
        "gates": [h.gate.stdout for h in rollout.hosts],
        # Each host's pinned SSH key, in the order of `hosts`: the day-2 verbs pin it too.
        "hostKeys": [h.host_key for h in rollout.hosts],
    }
    if the_site.database_endpoint is not None:
        outputs["databaseEndpoint"] = the_site.database_endpoint
    if the_site.database_url is not None:
        outputs["databaseUrl"] = pulumi.Output.secret(the_site.database_url)
    return outputs


def build_site(config: settings.Settings) -> site.Site:
    """The platform's cloud side (imported only for its platform: pulumi_aws is slow to load)."""
    if config.platform == "aws":
        from stack.aws import AwsSite, AwsSiteArgs

        return AwsSite("site", AwsSiteArgs(config)).site
    if config.platform == "digitalocean":
        from stack.digitalocean import DigitalOceanSite, DigitalOceanSiteArgs

        return DigitalOceanSite("site", DigitalOceanSiteArgs(config)).site
    return site.existing(config)


def run_heroku(config: settings.Settings) -> dict[str, object]:
    """Heroku: the release archive is built here, as for hosts, and Heroku builds and runs it;
    there is no host to roll out to (preboot swaps the dynos)."""
    from stack import dyno
    from stack.heroku import HerokuSite, HerokuSiteArgs

    try:
        built = dyno.build(config, settings.project_dir() / ".cache")
    except release.ReleaseError as exc:
        raise pulumi.RunError(f"stack {config.stack!r}: {exc}") from None
    if warning := dyno.replaced_warning(built):
        pulumi.log.warn(warning)
    site = HerokuSite("site", HerokuSiteArgs(config, built, settings.project_dir()))
    return {
        "url": site.url,
        "release": built.id,
        "herokuApp": site.app_name,
        "dnsTargets": site.dns_targets,
        "databaseUrl": site.database_url,
    }
