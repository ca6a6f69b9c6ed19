"""The policy pack (policy/) over the resource graphs the program declares under Pulumi's mocks:
every example stack passes every policy, and for each policy a graph with exactly that violation
is caught, naming the offending URN."""

from __future__ import annotations

import copy
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from policy import baseline
from tests.support.mocks import Registered, Run, plain
from tests.test_aws import VARIANTS as AWS_VARIANTS
from tests.test_aws import program as run_aws
from tests.test_digitalocean import run as run_do
from tests.test_heroku import run as run_heroku

ROOT = Path(__file__).resolve().parent.parent


# -- running the pack over a recorded graph -----------------------------------------------------
def as_policy_resources(registered: list[Registered]) -> list[PolicyResource]:
    """The recorded graph as pulumi-policy hands it to stack policies (inputs, options, parents,
    dependencies)."""
    out: dict[str, PolicyResource] = {}
    for r in registered:
        opts = PolicyResourceOptions(
            protect=r.protect, ignore_changes=list(r.ignore_changes),
            delete_before_replace=r.delete_before_replace, aliases=[],
            custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[],
            parent=r.parent or None)
        out[r.urn] = PolicyResource(r.type, plain(r.inputs), r.urn, r.name, opts, None,
                                    parent=None, dependencies=[], property_dependencies={})
    for r in registered:
        out[r.urn].parent = out.get(r.parent)
        out[r.urn].dependencies = [out[d] for d in r.dependencies if d in out]
    return list(out.values())


def violations(resources: list[PolicyResource], level=EnforcementLevel.MANDATORY) -> dict[str, list[str]]:
    """{policy name: [messages]} of every policy of the pack that reports something."""
    found: dict[str, list[str]] = {}
    for policy in baseline.policies(level):
        messages: list[str] = []

        def report(message: str, urn: str | None = None, _messages=messages) -> None:
            _messages.append(message)

        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                policy.validate(ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, r.opts,
                                                       None), report)
        else:
            policy.validate(StackValidationArgs(resources), report)
        if messages:
            found[policy.name] = messages
    return found


def graph_of(run: Run) -> list[PolicyResource]:
    return as_policy_resources(run.monitor.registered)


def find(resources: list[PolicyResource], type_: str) -> PolicyResource:
    return next(r for r in resources if r.resource_type == type_)


def changed(resources: list[PolicyResource], type_: str, **props: Any) -> list[PolicyResource]:
    """A copy of the graph whose first `type_` resource has `props` set."""
    out = copy.deepcopy(resources)
    target = find(out, type_)
    target.props = {**target.props, **props}
    return out


# -- the graphs ---------------------------------------------------------------------------------
DO_EXAMPLES = ["digitalocean-minimal", "digitalocean-complete", "Pulumi.dev"]


@pytest.fixture(scope="module")
def do_graphs() -> dict[str, list[PolicyResource]]:
    graphs = {name: graph_of(run_do(name)) for name in DO_EXAMPLES}
    graphs["digitalocean-complete@prod"] = graph_of(run_do("digitalocean-complete", stack="prod"))
    graphs["digitalocean-minimal@pr-7"] = graph_of(run_do("digitalocean-minimal", stack="pr-7"))
    graphs["prod@prod"] = graph_of(run_do("prod", stack="prod"))
    return graphs


@pytest.fixture(scope="module")
def aws_graphs() -> dict[str, list[PolicyResource]]:
    graphs = {name: graph_of(run_aws(config, keys, stack=stack).run)
              for name, (config, keys, stack) in AWS_VARIANTS.items()}
    config, keys, _ = AWS_VARIANTS["complete"]
    graphs["complete@prod"] = graph_of(run_aws(config, keys, stack="prod").run)
    return graphs


@pytest.fixture(scope="module")
def heroku_graphs() -> dict[str, list[PolicyResource]]:
    return {f"{name}@{stack}": graph_of(run_heroku(name, stack=stack))
            for name, stack in [("heroku-minimal", "dev"), ("heroku-minimal", "prod"),
                                ("heroku-complete", "prod"), ("heroku-minimal", "pr-7")]}


def test_every_example_stack_passes_every_policy(do_graphs, aws_graphs, heroku_graphs):
    for name, resources in {**do_graphs, **aws_graphs, **heroku_graphs}.items():
        assert violations(resources) == {}, name


HEROKU_PROD = "heroku-complete@prod"


@pytest.mark.parametrize(("type_", "props", "policy"), [
    (baseline.HEROKU_APP, {"configVars": {"APP_ENV": "x", "STRIPE_API_KEY": "sk"}},
     "heroku-no-plain-secrets"),
    (baseline.HEROKU_APP, {"acm": False}, "heroku-acm-with-domain"),
    (baseline.HEROKU_FORMATION, {"quantity": 1}, "heroku-prod"),
    (baseline.HEROKU_FEATURE, {"enabled": False}, "heroku-prod"),
    (baseline.HEROKU_ADDON, {"plan": "heroku-postgresql:essential-0"}, "heroku-prod"),
])
def test_each_heroku_rule_catches_its_mutation(heroku_graphs, type_, props, policy):
    found = violations(changed(heroku_graphs[HEROKU_PROD], type_, **props))
    assert set(found) == {policy}, found


def test_an_unprotected_heroku_prod_app_or_database_is_caught(heroku_graphs):
    for type_ in (baseline.HEROKU_APP, baseline.HEROKU_ADDON):
        graph = copy.deepcopy(heroku_graphs[HEROKU_PROD])
        find(graph, type_).opts.protect = False
        assert "protected" in " ".join(violations(graph)["heroku-prod"]), type_
    review = heroku_graphs["heroku-minimal@pr-7"]
    assert not find(review, baseline.HEROKU_APP).opts.protect and violations(review) == {}


def test_prod_without_preboot_is_caught(heroku_graphs):
    graph = [r for r in heroku_graphs[HEROKU_PROD] if r.resource_type != baseline.HEROKU_FEATURE]
    assert "preboot" in violations(graph)["heroku-prod"][0]


def test_world_open_ssh_is_caught_on_an_aws_security_group_rule(aws_graphs):
    resources = copy.deepcopy(aws_graphs["complete"])
    ssh = next(r for r in resources
               if r.resource_type == baseline.AWS_INGRESS and r.props.get("fromPort") == 22)
    ssh.props = {**ssh.props, "cidrIpv4": "0.0.0.0/0"}
    found = violations(resources)
    assert list(found) == ["no-world-open-ssh"]
    assert found["no-world-open-ssh"] == [f"{ssh.urn}: port 22 is open to 0.0.0.0/0"]


@pytest.mark.parametrize("type_, props, policy", [
    (baseline.AWS_RDS, {"publiclyAccessible": True}, "database-private-encrypted-backed-up"),
    (baseline.AWS_RDS, {"storageEncrypted": False}, "database-private-encrypted-backed-up"),
    (baseline.AWS_RDS, {"backupRetentionPeriod": 0}, "database-private-encrypted-backed-up"),
    (baseline.AWS_INSTANCE, {"metadataOptions": {"httpTokens": "optional"}}, "imdsv2-required"),
    (baseline.AWS_LBS[0], {"dropInvalidHeaderFields": False}, "alb-drops-invalid-headers"),
])
def test_each_aws_resource_violation_is_caught_alone(aws_graphs, type_, props, policy):
    resources = aws_graphs["complete"]
    target = find(resources, type_)
    found = violations(changed(resources, type_, **props))
    assert list(found) == [policy]
    assert found[policy][0].startswith(target.urn + ": ")


def test_an_aws_domain_served_over_plain_http_is_caught(aws_graphs):
    resources = copy.deepcopy(aws_graphs["complete"])
    http = next(r for r in resources if r.resource_type in baseline.AWS_LISTENERS
                and r.props.get("protocol") == "HTTP")
    http.props = {**http.props, "defaultActions": [{"type": "forward", "targetGroupArn": "tg"}]}
    found = violations(resources)
    assert list(found) == ["https-when-domain"]
    assert found["https-when-domain"] == [
        f"{http.urn}: the HTTP listener serves the site instead of redirecting to HTTPS"]


@pytest.mark.parametrize("type_, props", [
    (baseline.AWS_RDS, {"deletionProtection": False}),
    (baseline.AWS_RDS, {"skipFinalSnapshot": True}),
    (baseline.AWS_LBS[0], {"enableDeletionProtection": False}),
])
def test_aws_prod_without_deletion_protection_is_caught(aws_graphs, type_, props):
    resources = aws_graphs["complete@prod"]
    found = violations(changed(resources, type_, **props))
    assert list(found) == ["deletion-protection-on-prod"]
    assert violations(aws_graphs["ephemeral"]) == {}  # pr-7: no protection, and rightly so


# -- operations on prod (issue 22) ---------------------------------------------------------------
AWS_PROD = "complete@prod"


def without(resources: list[PolicyResource], type_: str) -> list[PolicyResource]:
    """A copy of the graph with every `type_` resource gone (and every dependency on one)."""
    out = [r for r in copy.deepcopy(resources) if r.resource_type != type_]
    kept = {r.urn for r in out}
    for r in out:
        r.dependencies = [d for d in r.dependencies if d.urn in kept]
    return out


@pytest.mark.parametrize("type_, props, policy", [
    (baseline.AWS_LBS[0], {"accessLogs": None}, "access-logs-on-prod"),
    (baseline.AWS_LBS[0], {"accessLogs": {"bucket": "logs", "enabled": False}}, "access-logs-on-prod"),
    (baseline.AWS_RDS, {"maxAllocatedStorage": None}, "storage-autoscaling-on-prod"),
    (baseline.AWS_RDS, {"maxAllocatedStorage": 50}, "storage-autoscaling-on-prod"),  # = allocated
    (baseline.AWS_ALARM, {"okActions": []}, "alerts-on-prod"),
    (baseline.AWS_ALARM, {"alarmActions": None}, "alerts-on-prod"),
])
def test_each_aws_prod_operations_rule_catches_its_mutation(aws_graphs, type_, props, policy):
    assert violations(aws_graphs[AWS_PROD]) == {}
    target = find(aws_graphs[AWS_PROD], type_)
    found = violations(changed(aws_graphs[AWS_PROD], type_, **props))
    assert list(found) == [policy], found
    assert found[policy][0].startswith(target.urn + ": "), found


def test_a_prod_stack_whose_alarms_reach_nobody_is_caught(aws_graphs):
    found = violations(without(aws_graphs[AWS_PROD], baseline.AWS_SUBSCRIPTION))
    assert list(found) == ["alerts-on-prod"]
    assert found["alerts-on-prod"] == ["no SNS topic with a subscription: an alarm would reach "
                                       "nobody (set alerts.email)"]
    found = violations(without(aws_graphs[AWS_PROD], baseline.AWS_ALARM))
    assert list(found) == ["alerts-on-prod"]
    watched = {r.urn for r in aws_graphs[AWS_PROD]
               if r.resource_type in (baseline.AWS_RDS, baseline.AWS_INSTANCE)}
    assert len(watched) == 4  # the database and the three hosts
    assert sorted(found["alerts-on-prod"]) == sorted(f"{urn}: no CloudWatch alarm watches it"
                                                     for urn in watched)


def test_the_operations_rules_hold_only_on_prod(aws_graphs):
    """Staging and review stacks may go without (the rules are mandatory on prod only)."""
    for name in ("complete", "ephemeral"):
        resources = without(changed(aws_graphs[name], baseline.AWS_RDS, maxAllocatedStorage=None),
                            baseline.AWS_SUBSCRIPTION)
        resources = changed(resources, baseline.AWS_LBS[0], accessLogs=None)
        assert violations(resources) == {}, name


DO_PROD = "prod@prod"


@pytest.mark.parametrize("prod", [DO_PROD, "digitalocean-complete@prod"])
@pytest.mark.parametrize("type_, props, policy", [
    (baseline.DO_CLUSTER, {"storageAutoscale": None}, "storage-autoscaling-on-prod"),
    (baseline.DO_CLUSTER, {"storageAutoscale": {"enabled": False}}, "storage-autoscaling-on-prod"),
    (baseline.DO_ALERT, {"alerts": {"emails": []}}, "alerts-on-prod"),
    (baseline.DO_ALERT, {"alerts": None}, "alerts-on-prod"),
])
def test_each_digitalocean_prod_operations_rule_catches_its_mutation(do_graphs, prod, type_, props,
                                                                     policy):
    assert violations(do_graphs[prod]) == {}
    target = find(do_graphs[prod], type_)
    found = violations(changed(do_graphs[prod], type_, **props))
    assert list(found) == [policy], found
    assert found[policy][0].startswith(target.urn + ": "), found


def test_a_digitalocean_prod_stack_whose_alerts_reach_nobody_is_caught(do_graphs):
    resources = do_graphs[DO_PROD]
    found = violations(without(resources, baseline.DO_ALERT))
    assert list(found) == ["alerts-on-prod"]
    clusters = [r.urn for r in resources if r.resource_type == baseline.DO_CLUSTER]
    droplets = [r.urn for r in resources if r.resource_type == baseline.DO_DROPLET]
    assert (len(clusters), len(droplets)) == (1, 3)
    assert sorted(found["alerts-on-prod"]) == sorted(
        ["no monitor alert with a recipient: nothing would tell anyone (set alerts.email)"]
        + [f"{urn}: no monitor alert watches it" for urn in clusters]
        + [f"{urn}: no monitor alert watches it (by its id or a tag it carries)" for urn in droplets])
    found = violations(without(resources, baseline.DO_UPTIME_ALERT))
    assert found == {"alerts-on-prod": ["no uptime check with an alert that reaches someone: a site "
                                        "that is down from outside would go unnoticed"]}
    # Alerts that no longer share the droplets' tag leave the three droplets unwatched.
    untagged = copy.deepcopy(resources)
    for alert in (r for r in untagged if r.resource_type == baseline.DO_ALERT):
        alert.dependencies = [d for d in alert.dependencies if d.resource_type != baseline.DO_TAG]
    found = violations(untagged)
    assert list(found) == ["alerts-on-prod"] and len(found["alerts-on-prod"]) == 3, found


def test_the_digitalocean_operations_rules_hold_only_on_prod(do_graphs):
    for name in ("digitalocean-complete", "digitalocean-minimal@pr-7"):
        resources = without(changed(do_graphs[name], baseline.DO_CLUSTER, storageAutoscale=None),
                            baseline.DO_ALERT)
        assert violations(resources) == {}, name


def test_world_open_ssh_is_caught_on_a_digitalocean_firewall(do_graphs):
    resources = do_graphs["digitalocean-complete"]
    firewall = find(resources, baseline.DO_FIREWALL)
    rules = [dict(r) for r in firewall.props["inboundRules"]]
    ssh = next(r for r in rules if r["portRange"] == "22")
    ssh["sourceAddresses"] = ["0.0.0.0/1", "128.0.0.0/1"]  # the world, in two halves
    found = violations(changed(resources, baseline.DO_FIREWALL, inboundRules=rules))
    assert list(found) == ["no-world-open-ssh"]
    assert found["no-world-open-ssh"][0].startswith(firewall.urn + ": port 22 (tcp) is open to 0.0.0.0/1")


def test_a_world_open_web_port_is_fine_but_everything_open_is_not(do_graphs):
    resources = do_graphs["digitalocean-minimal"]
    web = [{"protocol": "tcp", "portRange": "443", "sourceAddresses": ["0.0.0.0/0", "::/0"]}]
    assert violations(changed(resources, baseline.DO_FIREWALL, inboundRules=web)) == {}
    everything = [{"protocol": "tcp", "portRange": "1-65535", "sourceAddresses": ["::/0"]}]
    found = violations(changed(resources, baseline.DO_FIREWALL, inboundRules=everything))
    assert list(found) == ["no-world-open-ssh"] and "every port" in found["no-world-open-ssh"][0]


def test_a_cluster_outside_the_vpc_is_caught(do_graphs):
    resources = do_graphs["digitalocean-minimal"]
    cluster = find(resources, baseline.DO_CLUSTER)
    found = violations(changed(resources, baseline.DO_CLUSTER, privateNetworkUuid=None))
    assert list(found) == ["database-private-encrypted-backed-up"]
    assert found["database-private-encrypted-backed-up"][0].startswith(cluster.urn)


def test_a_database_firewall_open_to_the_world_or_missing_is_caught(do_graphs):
    resources = do_graphs["digitalocean-minimal"]
    guard = find(resources, baseline.DO_DB_FIREWALL)
    found = violations(changed(resources, baseline.DO_DB_FIREWALL,
                               rules=[{"type": "ip_addr", "value": "0.0.0.0/0"}]))
    assert list(found) == ["database-firewall"]
    assert found["database-firewall"] == [f"{guard.urn}: the database firewall admits 0.0.0.0/0"]
    without = [r for r in copy.deepcopy(resources) if r.resource_type != baseline.DO_DB_FIREWALL]
    found = violations(without)
    assert list(found) == ["database-firewall"] and "no database firewall" in found["database-firewall"][0]


def test_a_domain_served_over_plain_http_is_caught(do_graphs):
    resources = do_graphs["digitalocean-complete"]
    lb = find(resources, baseline.DO_LB)
    found = violations(changed(resources, baseline.DO_LB, redirectHttpToHttps=False))
    assert list(found) == ["https-when-domain"]
    assert found["https-when-domain"][0].startswith(f"{lb.urn}: redirect_http_to_https is not true")
    rules = [r for r in lb.props["forwardingRules"] if r["entryProtocol"] != "https"]
    found = violations(changed(resources, baseline.DO_LB, forwardingRules=rules))
    assert list(found) == ["https-when-domain"]


def test_an_unprotected_prod_database_is_caught_and_only_on_prod(do_graphs):
    prod = copy.deepcopy(do_graphs["digitalocean-complete@prod"])
    cluster = find(prod, baseline.DO_CLUSTER)
    cluster.opts.protect = False
    found = violations(prod)
    assert list(found) == ["deletion-protection-on-prod"]
    assert found["deletion-protection-on-prod"][0].startswith(cluster.urn)
    assert violations(do_graphs["digitalocean-minimal@pr-7"]) == {}  # unprotected, and rightly so


@pytest.mark.parametrize("props, problem", [
    ({"publiclyAccessible": True, "storageEncrypted": True, "backupRetentionPeriod": 7}, "must stay private"),
    ({"storageEncrypted": False, "backupRetentionPeriod": 7}, "encrypted at rest"),
    ({"storageEncrypted": True, "backupRetentionPeriod": 0}, "backups are off"),
])
def test_rds_rules(props, problem):
    assert any(problem in p for p in baseline.database_problems(baseline.AWS_RDS, props))
    good = {"storageEncrypted": True, "backupRetentionPeriod": 7, "publiclyAccessible": False}
    assert baseline.database_problems(baseline.AWS_RDS, good) == []


def test_aws_security_group_forms_are_all_checked():
    world_ssh = [
        (baseline.AWS_SG, {"ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": 22,
                                        "cidrBlocks": ["0.0.0.0/0"]}]}),
        (baseline.AWS_INGRESS, {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"}),
        (baseline.AWS_INGRESS, {"ipProtocol": "-1", "cidrIpv6": "::/0"}),
        (baseline.AWS_SG_RULE, {"type": "ingress", "protocol": "tcp", "fromPort": 0, "toPort": 65535,
                                "cidrBlocks": ["0.0.0.0/0"]}),
    ]
    for type_, props in world_ssh:
        assert baseline.open_to_world(type_, props), (type_, props)
    fine = [
        (baseline.AWS_INGRESS, {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
                                "cidrIpv4": "0.0.0.0/0"}),
        (baseline.AWS_INGRESS, {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                                "cidrIpv4": "198.51.100.7/32"}),
        (baseline.AWS_SG_RULE, {"type": "egress", "protocol": "-1", "cidrBlocks": ["0.0.0.0/0"]}),
    ]
    for type_, props in fine:
        assert baseline.open_to_world(type_, props) == [], (type_, props)


def test_imds_and_header_rules():
    assert baseline.imds_problems(baseline.AWS_INSTANCE, {"metadataOptions": {"httpTokens": "optional"}})
    assert baseline.imds_problems(baseline.AWS_INSTANCE, {}) != []
    required = {"metadataOptions": {"httpTokens": "required"}}
    assert baseline.imds_problems(baseline.AWS_INSTANCE, required) == []
    alb = baseline.AWS_LBS[0]
    assert baseline.header_problems(alb, {"loadBalancerType": "application"})
    assert baseline.header_problems(alb, {"dropInvalidHeaderFields": True}) == []
    assert baseline.header_problems(alb, {"loadBalancerType": "network"}) == []


@pytest.mark.parametrize("stack, ephemeral, level", [
    ("prod", None, EnforcementLevel.MANDATORY),
    ("prod", "true", EnforcementLevel.MANDATORY),
    ("staging", None, EnforcementLevel.MANDATORY),
    ("pr-7", None, EnforcementLevel.ADVISORY),
    ("pr-7", "false", EnforcementLevel.MANDATORY),
    ("scratch", "true", EnforcementLevel.ADVISORY),
])
def test_mandatory_except_on_ephemeral_stacks(stack, ephemeral, level):
    assert baseline.enforcement(stack, ephemeral) == level
    assert {p.enforcement_level for p in baseline.policies(level)} == {level}


def test_the_pack_starts_as_the_pulumi_cli_runs_it():
    """The CLI runs the pack's directory as a program and reads the port it serves on."""
    proc = subprocess.Popen([sys.executable, "-u", str(ROOT / "policy")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT / "policy",
                            env={"PULUMI_STACK": "prod", "PATH": "/usr/bin:/bin"})
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the policy pack printed no port within 60 s"
        line = proc.stdout.readline()
        assert line.strip().isdigit(), proc.stderr.read() if proc.poll() is not None else line
    finally:
        proc.kill()
        proc.wait()
