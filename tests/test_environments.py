"""Environments: a review stack (pr-<n>) can be destroyed with no manual step; prod keeps its data
behind every protection there is."""

from __future__ import annotations

import json

import pytest

from tests.support.cloud import example_config
from tests.support.mocks import REVIEW_EXPIRY, Registered, plain
from tests.test_aws import program as run_aws
from tests.test_digitalocean import run as run_do

PROTECTION_INPUTS = ("deletionProtection", "enableDeletionProtection")
DATABASES = ("aws:rds/instance:Instance", "digitalocean:index/databaseCluster:DatabaseCluster")
BALANCERS = ("aws:lb/loadBalancer:LoadBalancer",)


def graph(platform: str, stack: str) -> list[Registered]:
    """The complete example (every resource there is) as `stack`, leaving `ephemeral` to its
    default (the example pins it to false)."""
    config, keys = example_config(f"{platform}-complete")
    config.pop("ephemeral")
    if stack.startswith("pr-"):
        config["expiresAt"] = REVIEW_EXPIRY
    if platform == "aws":
        return run_aws(config, keys, stack=stack).run.monitor.registered
    return run_do(config, stack=stack, secret_keys=keys).monitor.registered


@pytest.mark.parametrize("platform", ["aws", "digitalocean"])
def test_a_review_stack_has_nothing_protected_or_retained(platform):
    for r in graph(platform, "pr-7"):
        assert not r.protect, f"{r.urn} is protected: `pulumi destroy` of a review stack would stop"
        assert not r.retain_on_delete, f"{r.urn} would outlive its review stack"
        inputs = plain(r.inputs)
        for key in PROTECTION_INPUTS:
            assert not inputs.get(key), f"{r.urn}: {key} is on in a review stack"
        if r.type == DATABASES[0]:
            assert inputs["skipFinalSnapshot"] is True, f"{r.urn} would leave a snapshot behind"


@pytest.mark.parametrize("platform", ["aws", "digitalocean"])
def test_prod_has_every_protection(platform):
    registered = graph(platform, "prod")
    databases = [r for r in registered if r.type in DATABASES]
    assert databases
    for r in databases:
        assert r.protect and r.retain_on_delete, f"{r.urn}: prod's database can be deleted"
        if r.type == DATABASES[0]:
            inputs = plain(r.inputs)
            assert inputs["deletionProtection"] is True, r.urn
            assert not inputs.get("skipFinalSnapshot"), r.urn
    for r in (r for r in registered if r.type in BALANCERS):
        assert plain(r.inputs)["enableDeletionProtection"] is True, r.urn


def test_a_lasting_stack_that_is_not_prod_protects_but_does_not_retain():
    for r in (r for r in graph("digitalocean", "staging") if r.type in DATABASES):
        assert r.protect and not r.retain_on_delete, r.urn


def test_every_taggable_review_resource_carries_the_expiry():
    aws_graph = graph("aws", "pr-7")
    provider = next(r for r in aws_graph if r.type == "pulumi:providers:aws")
    tags = json.loads(plain(provider.inputs)["defaultTags"])  # provider inputs travel as JSON
    assert tags == {"tags": {"Project": "flask-stack", "Stack": "pr-7", "ManagedBy": "pulumi",
                             "ExpiresAt": REVIEW_EXPIRY}}, provider.urn
    do_graph = graph("digitalocean", "pr-7")
    expiry = f"expires-at:{REVIEW_EXPIRY}"
    taggable = [r for r in do_graph if r.type in ("digitalocean:index/droplet:Droplet", DATABASES[1])]
    assert len(taggable) == 4
    for r in taggable:
        assert expiry in r.inputs["tags"], r.urn


def test_a_lasting_stack_carries_no_expiry():
    for r in graph("digitalocean", "staging"):
        assert "expires-at" not in repr(r.inputs), r.urn
