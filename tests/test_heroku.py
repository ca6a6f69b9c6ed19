"""The Heroku site under Pulumi's mocks: the app, Heroku Postgres, the build of the release, the
formation, preboot and the domains, asserted on the recorded resource graph."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cloud import example_config, with_changes
from tests.support.mocks import Registered, Run, Secret, StrictMocks, run_program
from tests.support.replay import comparable

ROOT = Path(__file__).resolve().parent.parent
APP, ADDON = "heroku:app/app:App", "heroku:addon/addon:Addon"
FEATURE, BUILD = "heroku:app/feature:Feature", "heroku:build/build:Build"
FORMATION, DOMAIN = "heroku:formation/formation:Formation", "heroku:domain/domain:Domain"
SITE = "flask-stack:heroku:Site"
DATABASE_URL = "postgres://u1:pw2@ec2-198-51-100-9.compute-1.amazonaws.com:5432/d3"


def heroku_mocks() -> StrictMocks:
    """What Heroku would answer: the app's URL, the add-on's DATABASE_URL, each domain's CNAME."""
    return StrictMocks(outputs={
        APP: lambda a: {"webUrl": f"https://{a.inputs['name']}-0a1b2c3d4e5f.herokuapp.com/",
                        "uuid": f"{a.name}-uuid"},
        ADDON: lambda a: {"configVarValues": {"DATABASE_URL": DATABASE_URL},
                          "configVars": ["DATABASE_URL"]},
        DOMAIN: lambda a: {"cname": f"{a.inputs['hostname']}.herokudns.com"},
    })


def run(example: str, *, stack: str = "test", **changes) -> Run:
    config, secret_keys = example_config(example)
    return run_program(with_changes(config, **changes), stack=stack, secret_keys=secret_keys,
                       mocks=heroku_mocks())


@pytest.fixture(scope="module")
def complete() -> Run:
    return run("heroku-complete", stack="prod")


@pytest.fixture(scope="module")
def minimal() -> Run:
    return run("heroku-minimal", stack="dev")


@pytest.fixture(scope="module")
def review() -> Run:
    return run("heroku-minimal", stack="pr-7")


def one(r: Run, type_: str) -> Registered:
    found = r.monitor.by_type(type_)
    assert len(found) == 1, f"{len(found)} of {type_}: {[x.urn for x in found]}"
    return found[0]


def test_everything_is_one_component(complete):
    site = one(complete, SITE)
    for resource in complete.monitor.registered:
        if resource.type != SITE:
            assert resource.parent == site.urn, resource.urn


def test_the_app_is_named_placed_and_owned_as_configured(complete, minimal):
    app = one(complete, APP).inputs
    assert (app["name"], app["region"], app["stack"]) == ("acme-rocket", "eu", "heroku-24")
    assert app["organization"] == {"name": "acme"}
    assert app["acm"] is True and app["buildpacks"] == ["heroku/python"]
    small = one(minimal, APP).inputs
    assert (small["name"], small["region"], small["acm"]) == ("acme-rocket-dev", "us", False)
    assert "organization" not in small or small["organization"] is None


def test_config_vars_are_plain_and_secrets_stay_secret(complete):
    app = one(complete, APP).inputs
    assert app["configVars"] == {"APP_ENV": "production", "LOG_LEVEL": "info"}
    sensitive = app["sensitiveConfigVars"]
    assert isinstance(sensitive, Secret) or all(isinstance(v, Secret) for v in sensitive.values())
    opened = sensitive.value if isinstance(sensitive, Secret) else {k: v.value for k, v in sensitive.items()}
    assert set(opened) == {"SECRET_KEY"}
    assert "DATABASE_URL" not in app["configVars"]  # the add-on sets it


def test_the_workers_setting_stays_in_the_dynos_gunicorn_config():
    fixed = run("heroku-minimal", stack="dev", app={"workers": 3})
    assert "WEB_CONCURRENCY" not in one(fixed, APP).inputs["configVars"]
    assert fixed.resolved["release"] != run("heroku-minimal", stack="dev").resolved["release"]


@pytest.mark.parametrize(("example", "stack", "plan"), [
    ("heroku-minimal", "dev", "essential-0"), ("heroku-minimal", "prod", "standard-0"),
    ("heroku-minimal", "pr-7", "essential-0"), ("heroku-complete", "prod", "premium-0"),
])
def test_the_postgres_plan_follows_the_stack(example, stack, plan):
    addon = one(run(example, stack=stack), ADDON)
    assert addon.inputs["plan"] == f"heroku-postgresql:{plan}"
    assert addon.inputs["config"] == {"version": "16"}


def test_the_build_is_the_release_archive_with_its_checksum(complete):
    build = one(complete, BUILD)
    source = build.inputs["source"]
    archive = ROOT / source["path"]
    assert not Path(source["path"]).is_absolute() and archive.is_file()
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert source["checksum"] == f"SHA256:{digest}"
    assert source["version"] == complete.resolved["release"] == digest[:20]
    assert build.inputs["buildpacks"] == ["heroku/python"]


def test_the_build_waits_for_the_database_and_preboot(complete):
    build = one(complete, BUILD)
    assert one(complete, ADDON).urn in build.dependencies
    assert one(complete, FEATURE).urn in build.dependencies


def test_the_formation_runs_the_web_dynos_after_the_build(complete, minimal):
    web = next(f for f in complete.monitor.by_type(FORMATION) if f.inputs["type"] == "web")
    assert (web.inputs["type"], web.inputs["quantity"], web.inputs["size"]) == ("web", 3, "standard-2x")
    assert one(complete, BUILD).urn in web.dependencies
    small = one(minimal, FORMATION).inputs  # the minimal example has no other process type
    assert (small["quantity"], small["size"]) == (2, "standard-1x")


def test_preboot_is_on_with_professional_dynos_only(complete):
    feature = one(complete, FEATURE).inputs
    assert (feature["name"], feature["enabled"]) == ("preboot", True)
    basic = run("heroku-minimal", stack="dev", hosts={"size": "basic", "count": 1})
    assert not basic.monitor.by_type(FEATURE)


def test_domains_and_their_dns_targets(complete, minimal):
    hosts = sorted(d.inputs["hostname"] for d in complete.monitor.by_type(DOMAIN))
    assert hosts == ["example.com", "www.example.com"]
    assert complete.resolved["dnsTargets"] == {h: f"{h}.herokudns.com" for h in hosts}
    assert complete.resolved["url"] == "https://example.com/"
    assert not minimal.monitor.by_type(DOMAIN)
    assert minimal.resolved["url"].startswith("https://acme-rocket-dev-")
    assert minimal.resolved["dnsTargets"] == {}


def test_the_database_url_output_is_a_secret(complete):
    assert isinstance(complete.resolved["databaseUrl"], Secret)
    assert complete.resolved["databaseUrl"].value == DATABASE_URL
    assert complete.resolved["herokuApp"] == "acme-rocket"


def test_prod_is_protected_and_a_review_stack_is_not(complete, review):
    for type_ in (APP, ADDON):
        kept = one(complete, type_)
        assert kept.protect and kept.retain_on_delete, kept.urn
        gone = one(review, type_)
        assert not gone.protect and not gone.retain_on_delete, gone.urn


def test_a_review_stack_runs_the_smallest_dyno_and_plan(review):
    web = one(review, FORMATION).inputs
    assert (web["quantity"], web["size"]) == (1, "basic")
    assert one(review, ADDON).inputs["plan"] == "heroku-postgresql:essential-0"
    assert one(review, APP).inputs["name"] == "acme-rocket-dev"


def test_a_second_run_declares_identical_inputs(complete):
    again = run("heroku-complete", stack="prod")
    first = {r.urn: r.inputs for r in complete.monitor.registered}
    second = {r.urn: r.inputs for r in again.monitor.registered}
    assert first.keys() == second.keys()
    for urn in first:
        assert comparable(first[urn]) == comparable(second[urn]), f"{urn} differs between two runs"


def test_no_ssh_command_and_no_other_cloud_is_declared(complete):
    types = {r.type.split(":")[0] for r in complete.monitor.registered}
    assert types == {"heroku", "flask-stack"}


def test_a_heroku_stack_imports_neither_aws_nor_digitalocean():
    code = (
        "import sys\n"
        "from tests.support.cloud import example_config\n"
        "from tests.test_heroku import heroku_mocks\n"
        "from tests.support.mocks import run_program\n"
        "config, keys = example_config('heroku-complete')\n"
        "run_program(config, stack='prod', secret_keys=keys, mocks=heroku_mocks())\n"
        "print(sorted(m for m in ('pulumi_aws', 'pulumi_digitalocean', 'pulumi_command') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
