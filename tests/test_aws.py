"""The AWS site (stack/aws.py) as the real program declares it, under Pulumi's mocks.

Each test states one rule of the issue and walks the recorded resource graph; a failure names the
offending resource's URN. The examples (examples/aws-minimal.yaml, aws-complete.yaml) run once per
module, with a few variants: single-host mode, a certificate ARN, an ephemeral pr-<n> stack, a
bastion given by address.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await

from stack import aws_plan, inventory, render, settings
from stack.settings import SettingsError
from tests.support import snapshot
from tests.support.cloud import (
    ancestors,
    example_config,
    growth_per_host,
    steps_of_host,
    waits_for,
    with_changes,
)
from tests.support.mocks import REVIEW_EXPIRY, Registered, Run, Secret, StrictMocks, run_program
from tests.support.replay import comparable

ROOT = Path(__file__).resolve().parent.parent
ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
AMI_ID = "ami-0123456789abcdef0"
ZONE_ID = "Z0EXAMPLE123"
ALB_DNS = "site-alb-123456.eu-west-1.elb.amazonaws.com"
ALB_ZONE = "Z32O12XQLNTSW2"
DB_ADDRESS = "site-db.abcdefgh.eu-west-1.rds.amazonaws.com"
DB_PASSWORD = "Mock0Db0Password0Value0From0Rnd"  # what pulumi-random would make
CERT_ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
EIP = "198.51.100.99"

PROVIDER = "pulumi:providers:aws"
SITE = "flask-stack:aws:Site"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
INSTANCE = "aws:ec2/instance:Instance"
KEY_PAIR = "aws:ec2/keyPair:KeyPair"
EIP_TYPE = "aws:ec2/eip:Eip"
ALB = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
LISTENER = "aws:lb/listener:Listener"
CERT = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
RECORD = "aws:route53/record:Record"
DB = "aws:rds/instance:Instance"
DB_SUBNETS = "aws:rds/subnetGroup:SubnetGroup"
DB_PARAMS = "aws:rds/parameterGroup:ParameterGroup"
PASSWORD = "random:index/randomPassword:RandomPassword"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
BUCKET_LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACH_POLICY = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
RANDOM_ID = "random:index/randomId:RandomId"
AZ_CALL = "aws:index/getAvailabilityZones:getAvailabilityZones"
AMI_CALL = "aws:ec2/getAmi:getAmi"
ZONE_CALL = "aws:route53/getZone:getZone"
ACCOUNT_CALL = "aws:index/getCallerIdentity:getCallerIdentity"
ACCOUNT = "123456789012"
STEPS = ("bootstrap", "env", "upload", "release", "configure", "gate")
AUTONAMED = (SG, DB_SUBNETS, DB_PARAMS, TARGET_GROUP, ALB)


# -- a cloud under mocks ------------------------------------------------------------------------
class AwsMocks(StrictMocks):
    """Fills in what AWS would: addresses, endpoints, ARNs, the names AWS or the provider would
    generate, the password pulumi-random would make, ACM's validation records. Records invokes."""

    def __init__(self, zones: list[str] | None = None):
        self.invokes: list[tuple[str, dict, str]] = []
        zones = ZONES if zones is None else zones

        super().__init__(calls={
            AZ_CALL: {"id": "eu-west-1", "names": list(zones),
                      "zoneIds": [f"euw1-az{i + 1}" for i in range(len(zones))]},
            AMI_CALL: {"id": AMI_ID, "name": "debian-12-amd64-20260101-2000", "architecture": "x86_64"},
            ZONE_CALL: {"id": ZONE_ID, "zoneId": ZONE_ID, "name": "example.com"},
            ACCOUNT_CALL: {"id": ACCOUNT, "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci",
                           "userId": "AIDAEXAMPLE"},
        })

    def call(self, args):
        self.invokes.append((args.token, dict(args.args), args.provider))
        return super().call(args)

    def new_resource(self, args):
        _, state = super().new_resource(args)
        name, typ, inputs = args.name, args.typ, args.inputs
        if typ.startswith("aws:"):
            state.setdefault("arn", f"arn:aws:{typ.split(':')[1].split('/')[0]}:eu-west-1:"
                                    f"123456789012:{name}")
        if typ in AUTONAMED and "name" not in inputs:
            state["name"] = f"{name}-a1b2c3d"
        if typ == KEY_PAIR:
            state["keyName"] = f"{name}-a1b2c3d"
        elif typ == INSTANCE:
            index = int(name.rsplit("-", 1)[1])
            state.update(publicIp=f"203.0.113.{10 + index}", privateIp=f"10.20.0.{10 + index}")
        elif typ == EIP_TYPE:
            state["publicIp"] = EIP
        elif typ == ALB:
            state.update(dnsName=ALB_DNS, zoneId=ALB_ZONE, arnSuffix=f"app/{name}/50dc6c495c0c9188")
        elif typ == TARGET_GROUP:
            state["arnSuffix"] = f"targetgroup/{name}/73e2d6bc24d8a067"
        elif typ == BUCKET:
            state.update(bucket=f"{name}-a1b2c3d", arn=f"arn:aws:s3:::{name}-a1b2c3d")
        elif typ == DB:
            state.update(address=DB_ADDRESS, port=5432, endpoint=f"{DB_ADDRESS}:5432",
                         identifier=f"{name}-a1b2c3d")
        elif typ == PASSWORD:
            state["result"] = DB_PASSWORD
        elif typ == RANDOM_ID:
            state.update(hex="a1b2c3d4", b64Url="obLD1A", dec="2712847316")
        elif typ == CERT:
            names = [inputs["domainName"], *inputs.get("subjectAlternativeNames", [])]
            state["domainValidationOptions"] = [
                {"domainName": n, "resourceRecordName": f"_v{i}.{n}.", "resourceRecordType": "CNAME",
                 "resourceRecordValue": f"_w{i}.acm-validations.aws."} for i, n in enumerate(names)]
        elif typ == RECORD:
            state["fqdn"] = str(inputs.get("name", "")).rstrip(".")
        return f"{args.typ}::{args.name}", state  # an id naming its resource: see Graph.by_id


def ident(r: Registered) -> str:
    """The id the mocks gave a resource."""
    return f"{r.type}::{r.name}"


@dataclass
class Graph:
    """One program run: the recorded resources, the invokes, the outputs, the settings."""

    run: Run
    mocks: AwsMocks
    config: dict[str, Any]
    secret_keys: tuple[str, ...]
    stack: str
    settings: settings.Settings = field(init=False)

    def __post_init__(self):  # the settings the program saw, to compare the graph with
        self.settings = settings.load(self.config, stack=self.stack, project_dir=ROOT,
                                      secret_keys=frozenset(self.secret_keys))

    @property
    def all(self) -> list[Registered]:
        return self.run.monitor.registered

    def of(self, typ: str) -> list[Registered]:
        return self.run.monitor.by_type(typ)

    def one(self, typ: str) -> Registered:
        found = self.of(typ)
        assert len(found) == 1, f"{len(found)} resources of type {typ}: {[r.urn for r in found]}"
        return found[0]

    def named(self, name: str, typ: str | None = None) -> Registered:
        found = [r for r in self.all if r.name == name and (typ is None or r.type == typ)]
        assert len(found) == 1, f"{len(found)} resources named {name} ({typ})"
        return found[0]

    def by_id(self, value: str) -> Registered:
        """The resource a mocked id points to."""
        found = [r for r in self.all if ident(r) == value]
        assert len(found) == 1, f"no single resource has id {value!r}"
        return found[0]

    def output(self, key: str) -> Any:
        return _sync_await(pulumi.Output.from_input(self.run.outputs[key]).future())

    def output_is_secret(self, key: str) -> bool:
        return _sync_await(pulumi.Output.from_input(self.run.outputs[key]).is_secret())

    def invokes(self, token: str) -> list[dict]:
        return [args for t, args, _ in self.mocks.invokes if t == token]


def program(config: dict, secret_keys: tuple[str, ...], *, stack: str = "test",
            zones: list[str] | None = None) -> Graph:
    mocks = AwsMocks(zones)
    run = run_program(config, stack=stack, secret_keys=secret_keys, mocks=mocks)
    return Graph(run=run, mocks=mocks, config=config, secret_keys=secret_keys, stack=stack)


MINIMAL, MINIMAL_KEYS = example_config("aws-minimal")
COMPLETE, COMPLETE_KEYS = example_config("aws-complete")
VARIANTS: dict[str, tuple[dict, tuple[str, ...], str]] = {
    "minimal": (MINIMAL, MINIMAL_KEYS, "test"),
    "complete": (COMPLETE, COMPLETE_KEYS, "test"),
    # One host facing the internet itself, its own certificate, DNS in Route 53.
    "single-host": (with_changes(MINIMAL, loadBalancer=False, hosts={"count": 1},
                                 domain={"name": "example.com", "route53Zone": "example.com"},
                                 tls={"enabled": True, "email": "ops@example.com"}),
                    MINIMAL_KEYS, "test"),
    # A certificate the user already has, no Route 53, no www.
    "certificate-arn": (with_changes(MINIMAL, domain={"name": "app.example.org", "wwwRedirect": False,
                                                      "certificateArn": CERT_ARN}),
                        MINIMAL_KEYS, "test"),
    "ephemeral": (with_changes(MINIMAL, expiresAt=REVIEW_EXPIRY), MINIMAL_KEYS, "pr-7"),
    # A bastion given by address, and an IPv6 admin network.
    "bastion-ip": (with_changes(MINIMAL, ssh={**MINIMAL["ssh"], "bastion": {"host": "192.0.2.50"},
                                              "adminCidrs": ["203.0.113.0/28", "2001:db8:7::/48"]}),
                   MINIMAL_KEYS, "test"),
}
BALANCED = ("minimal", "complete", "certificate-arn", "ephemeral", "bastion-ip")
WITH_CERT = ("complete", "certificate-arn")


@pytest.fixture(scope="module")
def graphs() -> dict[str, Graph]:
    return {name: program(config, keys, stack=stack) for name, (config, keys, stack) in VARIANTS.items()}


def each(*names: str):
    return pytest.mark.parametrize("variant", names or tuple(VARIANTS))


@pytest.fixture
def g(graphs, variant) -> Graph:
    return graphs[variant]


def num(value: Any) -> int:
    return int(value) if value is not None else -1


# -- the component -------------------------------------------------------------------------------
@each()
def test_every_cloud_resource_is_a_child_of_the_site(g):
    site = g.one(SITE)
    rollout = {r.urn for r in g.all if r.type.startswith(("flask-stack:app:", "flask-stack:hosts:",
                                                           "command:"))}
    for r in g.all:
        if r.urn == site.urn or r.urn in rollout:
            continue
        assert site.urn in ancestors(g.run.monitor, r), f"{r.urn} is not under the AwsSite"
    assert g.one(PROVIDER).parent == site.urn


@each()
def test_every_aws_resource_and_lookup_goes_through_the_sites_own_provider(g):
    provider = g.one(PROVIDER)
    assert provider.inputs["region"] == g.settings.region, provider.urn
    tags = json.loads(provider.inputs["defaultTags"])["tags"]
    expiry = {"ExpiresAt": g.settings.expires_at} if g.settings.ephemeral else {}
    assert tags == {"Project": "flask-stack", "Stack": g.stack, "ManagedBy": "pulumi", **expiry}, provider.urn
    resources = [r for r in g.all if r.type.startswith("aws:")]
    assert len(resources) > 20
    for r in resources:
        assert r.provider.startswith(f"{provider.urn}::"), f"{r.urn} uses provider {r.provider!r}"
    for token, _, used in g.mocks.invokes:
        assert used.startswith(f"{provider.urn}::"), f"{token} invoked through {used!r}"


@each()
def test_the_site_outputs_url_hosts_and_database_endpoint(g):
    if g.settings.load_balancer:
        expected = (f"https://{g.settings.domain.name}/" if aws_plan.has_certificate(g.settings)
                    else f"http://{ALB_DNS}/")
        hosts = [f"203.0.113.{10 + i}" for i in range(g.settings.hosts.count)]
    else:
        expected, hosts = "https://example.com/", [EIP]
    assert g.output("url") == expected
    assert g.output("hosts") == hosts
    assert g.output("databaseEndpoint") == f"{DB_ADDRESS}:5432"
    assert not g.output_is_secret("url")


# -- network -------------------------------------------------------------------------------------
@each()
def test_the_zones_are_looked_up_not_hard_coded(g):
    calls = g.invokes(AZ_CALL)
    assert len(calls) == 1, calls
    assert calls[0]["state"] == "available"
    assert calls[0]["filters"] == [{"name": "opt-in-status", "values": ["opt-in-not-required"]}]
    zones = g.settings.network.zones
    for kind in ("public", "private"):
        subnets = [r for r in g.of(SUBNET) if r.name.startswith(f"site-{kind}-")]
        assert sorted(s.inputs["availabilityZone"] for s in subnets) == ZONES[:zones], \
            [s.urn for s in subnets]
        assert zones >= 2


@each()
def test_public_and_private_subnets_per_zone_inside_the_vpc_without_overlap(g):
    vpc = g.one(VPC)
    network = ipaddress.ip_network(vpc.inputs["cidrBlock"])
    assert str(network) == g.settings.network.vpc_cidr, vpc.urn
    seen: list[ipaddress.IPv4Network] = []
    for subnet in g.of(SUBNET):
        assert subnet.inputs["vpcId"] == ident(vpc), subnet.urn
        cidr = ipaddress.ip_network(subnet.inputs["cidrBlock"])
        assert cidr.subnet_of(network), f"{subnet.urn}: {cidr} outside {network}"
        assert cidr.prefixlen <= 27, f"{subnet.urn}: {cidr} is smaller than a load balancer takes"
        assert not any(cidr.overlaps(other) for other in seen), f"{subnet.urn} overlaps another subnet"
        seen.append(cidr)
        public = subnet.name.startswith("site-public-")
        assert subnet.inputs["mapPublicIpOnLaunch"] is public, subnet.urn
    assert len(seen) == 2 * g.settings.network.zones


def route_table_of(g: Graph, subnet: Registered) -> Registered:
    links = [a for a in g.of(ASSOCIATION) if a.inputs["subnetId"] == ident(subnet)]
    assert len(links) == 1, f"{subnet.urn} has {len(links)} route table associations"
    return g.by_id(links[0].inputs["routeTableId"])


@each()
def test_only_public_subnets_route_to_the_internet(g):
    gateway = g.one("aws:ec2/internetGateway:InternetGateway")
    for subnet in g.of(SUBNET):
        table = route_table_of(g, subnet)
        routes = [r for r in g.of(ROUTE) if r.inputs["routeTableId"] == ident(table)]
        assert not table.inputs.get("routes"), f"{table.urn} has inline routes"
        out = [r for r in routes if r.inputs.get("destinationCidrBlock") == "0.0.0.0/0"]
        if subnet.name.startswith("site-private-"):
            assert not routes, f"{subnet.urn} (private) has routes: {[r.urn for r in routes]}"
        else:
            assert len(out) == 1 and out[0].inputs["gatewayId"] == ident(gateway), subnet.urn
    assert not g.of("aws:ec2/natGateway:NatGateway")


@each()
def test_the_database_subnet_group_is_the_private_subnets(g):
    group = g.one(DB_SUBNETS)
    private = sorted(ident(s) for s in g.of(SUBNET) if s.name.startswith("site-private-"))
    assert sorted(group.inputs["subnetIds"]) == private, group.urn
    assert len({g.by_id(i).inputs["availabilityZone"] for i in private}) >= 2, group.urn


def test_too_few_zones_stop_the_program_naming_the_setting():
    with pytest.raises(pulumi.RunError) as caught:
        program(MINIMAL, MINIMAL_KEYS, zones=["eu-west-1a"])
    message = str(caught.value)
    assert "flask-stack:network.zones" in message and "eu-west-1a" in message, message
    assert "Traceback" not in message
    with pytest.raises(pulumi.RunError, match=r"network.zones is 3.*set network.zones to 2"):
        program(COMPLETE, COMPLETE_KEYS, zones=ZONES[:2])


def test_subnets_keep_their_ranges_when_zones_are_added():
    two = aws_plan.subnet_cidrs("10.20.0.0/16", 2)
    three = aws_plan.subnet_cidrs("10.20.0.0/16", 3)
    assert two == (["10.20.0.0/20", "10.20.16.0/20"], ["10.20.128.0/20", "10.20.144.0/20"])
    assert three[0][:2] == two[0] and three[1][:2] == two[1]
    public, private = aws_plan.subnet_cidrs("192.168.4.0/23", 6)
    assert all(ipaddress.ip_network(c).prefixlen == 27 for c in public + private)


def test_a_vpc_too_small_for_the_subnets_is_refused_naming_the_key():
    raw = {"platform": "aws", "region": "eu-west-1", "network": {"vpcCidr": "10.20.0.0/24"}}
    with pytest.raises(SettingsError) as caught:
        settings.load(raw, stack="dev", project_dir=ROOT, offline=True)
    assert any(e.startswith("flask-stack:network.vpcCidr: must be /16 to /23 on aws")
               for e in caught.value.errors), caught.value.errors
    settings.load({**raw, "network": {"vpcCidr": "10.20.0.0/23"}}, stack="dev", project_dir=ROOT,
                  offline=True)


# -- security groups -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    urn: str
    group: str  # the security group's resource name
    direction: str
    protocol: str
    ports: tuple[int, int]
    cidr: str | None
    source: str | None  # the referenced group's resource name


def rules(g: Graph) -> list[Rule]:
    out = []
    for typ, direction in ((INGRESS, "in"), (EGRESS, "out")):
        for r in g.of(typ):
            i = r.inputs
            ref = i.get("referencedSecurityGroupId")
            every_port = i["ipProtocol"] == "-1"  # all protocols: the ports given do not matter
            out.append(Rule(r.urn, g.by_id(i["securityGroupId"]).name, direction, i["ipProtocol"],
                            (0, 65535) if every_port else (num(i.get("fromPort")), num(i.get("toPort"))),
                            i.get("cidrIpv4") or i.get("cidrIpv6"),
                            g.by_id(ref).name if ref else None))
    return out


def rules_of(g: Graph, group: str, direction: str = "in") -> list[Rule]:
    return [r for r in rules(g) if r.group == group and r.direction == direction]


@each()
def test_security_groups_have_no_inline_rules(g):
    for group in g.of(SG):
        assert not group.inputs.get("ingress") and not group.inputs.get("egress"), group.urn
        assert group.inputs["vpcId"] == ident(g.one(VPC)), group.urn
    for rule in rules(g):
        assert (rule.cidr is None) != (rule.source is None), f"{rule.urn}: one source, CIDR or group"


@each(*BALANCED)
def test_the_load_balancer_takes_http_and_https_from_the_world_and_talks_only_to_the_hosts(g):
    ingress = rules_of(g, "site-alb")
    expected = {(80, 80)} | ({(443, 443)} if aws_plan.has_certificate(g.settings) else set())
    assert {r.ports for r in ingress} == expected, [r.urn for r in ingress]
    for r in ingress:
        assert r.cidr == "0.0.0.0/0" and r.protocol == "tcp", r.urn
    egress = rules_of(g, "site-alb", "out")
    assert [(r.source, r.ports, r.protocol) for r in egress] == [("site-hosts", (80, 80), "tcp")], \
        [r.urn for r in egress]


@each(*BALANCED)
def test_hosts_take_http_only_from_the_load_balancers_group(g):
    http = [r for r in rules_of(g, "site-hosts") if r.ports != (g.settings.ssh.port,) * 2]
    assert http, "no HTTP rule on the hosts"
    for r in http:
        assert r.ports == (80, 80), f"{r.urn} opens {r.ports} on the hosts"
        assert r.cidr is None, f"{r.urn}: port 80 on the hosts from a CIDR ({r.cidr})"
        assert r.source == "site-alb", f"{r.urn}: port 80 on the hosts from {r.source}"


@each()
def test_ssh_only_from_the_admin_cidrs_and_never_from_the_world(g):
    port = g.settings.ssh.port
    expected = set(g.settings.ssh.admin_cidrs)
    bastion = g.settings.ssh.bastion
    if bastion and bastion.host[0].isdigit():
        expected.add(f"{bastion.host}/32")
    ssh = [r for r in rules_of(g, "site-hosts") if r.ports == (port, port)]
    assert {r.cidr for r in ssh} == expected, [r.urn for r in ssh]
    for r in rules(g):
        if r.direction == "in" and (r.ports[0] <= 22 <= r.ports[1] or r.ports[0] <= port <= r.ports[1]):
            assert r.group == "site-hosts", f"{r.urn} opens SSH on {r.group}"
            assert r.cidr not in ("0.0.0.0/0", "::/0") and r.source is None, f"{r.urn}: SSH from {r.cidr}"
            if r.cidr and ":" in r.cidr:
                assert g.named(r.urn.rsplit("::", 1)[1], INGRESS).inputs.get("cidrIpv6") == r.cidr


def test_a_bastion_by_name_needs_its_address_in_admin_cidrs():
    config = with_changes(COMPLETE, ssh={**COMPLETE["ssh"], "adminCidrs": []})
    with pytest.raises(pulumi.RunError) as caught:
        program(config, COMPLETE_KEYS)
    assert "flask-stack:ssh.adminCidrs: is empty and ssh.bastion.host is a name" in str(caught.value)
    by_address = with_changes(config, ssh={**config["ssh"], "bastion": {"host": "198.51.100.20"}})
    g = program(by_address, COMPLETE_KEYS)
    assert [r.cidr for r in rules(g) if r.ports == (22, 22)] == ["198.51.100.20/32"]


@each()
def test_the_database_takes_postgres_only_from_the_hosts(g):
    ingress = rules_of(g, "site-db")
    assert [(r.ports, r.source, r.cidr) for r in ingress] == [((5432, 5432), "site-hosts", None)], \
        [r.urn for r in ingress]
    assert not rules_of(g, "site-db", "out")
    db = g.one(DB)
    assert [g.by_id(i).name for i in db.inputs["vpcSecurityGroupIds"]] == ["site-db"], db.urn


@each()
def test_only_the_front_is_open_to_the_world(g):
    front = "site-alb" if g.settings.load_balancer else "site-hosts"
    for r in rules(g):
        if r.direction == "in" and r.cidr in ("0.0.0.0/0", "::/0"):
            assert r.group == front and r.ports in ((80, 80), (443, 443)), f"{r.urn} is open to the world"


@each("single-host")
def test_a_single_host_takes_http_and_https_from_the_world_itself(g):
    world = {r.ports for r in rules_of(g, "site-hosts") if r.cidr == "0.0.0.0/0"}
    assert world == {(80, 80), (443, 443)}
    assert not g.of(ALB) and not g.of(TARGET_GROUP) and not g.of(LISTENER) and not g.of(ATTACHMENT)
    assert not [r for r in g.of(SG) if r.name == "site-alb"]


# -- hosts ---------------------------------------------------------------------------------------
@each()
def test_the_image_is_the_publishers_newest_for_the_arch(g):
    (call,) = g.invokes(AMI_CALL)
    query = aws_plan.ami_query(g.settings.hosts.image, g.settings.hosts.arch)
    assert call["owners"] == [query.owner] and call["mostRecent"] is True, call
    filters = {f["name"]: f["values"] for f in call["filters"]}
    assert filters["name"] == [query.name] and filters["architecture"] == [query.architecture], call
    for instance in g.of(INSTANCE):
        assert instance.inputs["ami"] == AMI_ID, instance.urn
        assert "ami" in instance.ignore_changes, f"{instance.urn}: a newer image would replace it"


@pytest.mark.parametrize(("image", "arch", "owner", "name", "ec2_arch"), [
    ("debian-12", "x86_64", "136693071363", "debian-12-amd64-*", "x86_64"),
    ("debian-12", "aarch64", "136693071363", "debian-12-arm64-*", "arm64"),
    ("ubuntu-24.04", "x86_64", "099720109477",
     "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*", "x86_64"),
    ("ubuntu-22.04", "aarch64", "099720109477",
     "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-*", "arm64"),
])
def test_image_queries(image, arch, owner, name, ec2_arch):
    assert aws_plan.ami_query(image, arch) == aws_plan.AmiQuery(owner, name, ec2_arch)


@each()
def test_instances_require_imdsv2_and_encrypt_their_root_volume(g):
    instances = g.of(INSTANCE)
    assert len(instances) == g.settings.hosts.count
    for instance in instances:
        meta = instance.inputs["metadataOptions"]
        assert meta["httpTokens"] == "required", f"{instance.urn}: IMDSv1 allowed"
        assert num(meta["httpPutResponseHopLimit"]) == 1, instance.urn
        root = instance.inputs["rootBlockDevice"]
        assert root["encrypted"] is True, f"{instance.urn}: root volume not encrypted"
        assert root["volumeType"] == "gp3", instance.urn
        assert num(root["volumeSize"]) == g.settings.hosts.disk_gb, instance.urn
        assert instance.inputs["instanceType"] == g.settings.hosts.size, instance.urn


@each()
def test_instances_log_in_with_the_configured_key(g):
    key = g.one(KEY_PAIR)
    assert key.inputs["publicKey"] == g.settings.ssh.public_key, key.urn
    for instance in g.of(INSTANCE):
        assert instance.inputs["keyName"] == f"{key.name}-a1b2c3d", instance.urn


@each()
def test_instances_are_spread_over_the_zones_in_public_subnets_with_the_hosts_group(g):
    used = set()
    for i, instance in enumerate(sorted(g.of(INSTANCE), key=lambda r: r.name)):
        subnet = g.by_id(instance.inputs["subnetId"])
        assert subnet.name == f"site-public-{i % g.settings.network.zones}", instance.urn
        used.add(subnet.inputs["availabilityZone"])
        groups = [g.by_id(s).name for s in instance.inputs["vpcSecurityGroupIds"]]
        assert groups == ["site-hosts"], instance.urn
    assert len(used) == min(g.settings.hosts.count, g.settings.network.zones)


@each()
def test_instances_are_tagged_with_project_and_stack(g):
    for instance in g.of(INSTANCE):
        tags = instance.inputs["tags"]
        assert tags["Project"] == "flask-stack" and tags["Stack"] == g.stack, instance.urn
        assert tags["Name"].endswith(instance.name.removeprefix("site-")), instance.urn


@each(*BALANCED)
def test_no_elastic_ip_behind_the_load_balancer(g):
    assert not g.of(EIP_TYPE)


@each("single-host")
def test_a_single_host_keeps_its_address_in_an_elastic_ip_with_dns_pointing_at_it(g):
    eip = g.one(EIP_TYPE)
    assert eip.inputs["instance"] == ident(g.one(INSTANCE)) and eip.inputs["domain"] == "vpc", eip.urn
    records = {r.inputs["name"]: r for r in g.of(RECORD)}
    assert set(records) == {"example.com", "www.example.com"}
    for r in records.values():
        assert r.inputs["type"] == "A" and r.inputs["records"] == [EIP], r.urn
        assert r.inputs["zoneId"] == ZONE_ID, r.urn
    assert not g.of(CERT)


# -- load balancer -------------------------------------------------------------------------------
@each(*BALANCED)
def test_the_load_balancer_drops_invalid_headers_and_is_protected_unless_ephemeral(g):
    alb = g.one(ALB)
    i = alb.inputs
    assert i["dropInvalidHeaderFields"] is True, f"{alb.urn} passes invalid header fields"
    assert i["enableDeletionProtection"] is (not g.settings.ephemeral), alb.urn
    assert i["loadBalancerType"] == "application" and i["internal"] is False, alb.urn
    public = sorted(ident(s) for s in g.of(SUBNET) if s.name.startswith("site-public-"))
    assert sorted(i["subnets"]) == public, alb.urn
    assert [g.by_id(s).name for s in i["securityGroups"]] == ["site-alb"], alb.urn


@each(*BALANCED)
def test_the_balancer_closes_idle_connections_before_the_hosts_nginx_does(g):
    alb = g.one(ALB)
    nginx = render.render_host(g.settings, inventory.planned(g.settings)[0])["/etc/nginx/nginx.conf"]
    (keepalive,) = re.findall(r"^\s*keepalive_timeout (\d+)s;", nginx, re.M)
    assert num(alb.inputs["idleTimeout"]) < int(keepalive), f"{alb.urn}: idle timeout >= Nginx's {keepalive}s"


@each(*BALANCED)
def test_the_target_group_checks_the_health_path_and_drains_quickly(g):
    group = g.one(TARGET_GROUP)
    i = group.inputs
    assert i["protocol"] == "HTTP" and num(i["port"]) == 80 and i["targetType"] == "instance", group.urn
    check = i["healthCheck"]
    assert check["path"] == g.settings.deploy.health_path and check["matcher"] == "200", group.urn
    assert num(check["interval"]) <= 15, group.urn
    assert 0 < num(i["deregistrationDelay"]) <= 60, f"{group.urn}: slow deregistration"


@each(*BALANCED)
def test_every_host_is_attached_to_the_target_group_once(g):
    group = g.one(TARGET_GROUP)
    targets = [a.inputs["targetId"] for a in g.of(ATTACHMENT)]
    for a in g.of(ATTACHMENT):
        assert a.inputs["targetGroupArn"].endswith(f":{group.name}"), a.urn
    assert sorted(targets) == sorted(ident(r) for r in g.of(INSTANCE))


def listeners(g: Graph) -> dict[int, Registered]:
    return {num(r.inputs["port"]): r for r in g.of(LISTENER)}


@each(*WITH_CERT)
def test_with_a_certificate_http_redirects_and_https_uses_tls13(g):
    found = listeners(g)
    assert set(found) == {80, 443}
    http, https = found[80], found[443]
    (action,) = http.inputs["defaultActions"]
    assert action["type"] == "redirect", f"{http.urn} does not redirect"
    assert action["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}, http.urn
    assert https.inputs["protocol"] == "HTTPS" and "TLS13" in https.inputs["sslPolicy"], https.urn
    (forward,) = https.inputs["defaultActions"]
    assert forward["type"] == "forward", https.urn
    assert forward["targetGroupArn"].endswith(f":{g.one(TARGET_GROUP).name}"), https.urn


@each("minimal", "ephemeral", "bastion-ip")
def test_without_a_certificate_http_forwards_and_nothing_listens_on_443(g):
    found = listeners(g)
    assert set(found) == {80}, [r.urn for r in found.values()]
    (action,) = found[80].inputs["defaultActions"]
    assert action["type"] == "forward", found[80].urn
    assert not g.of(CERT) and not g.of(RECORD) and not g.invokes(ZONE_CALL)


@each("certificate-arn")
def test_a_given_certificate_arn_is_used_as_is(g):
    assert listeners(g)[443].inputs["certificateArn"] == CERT_ARN
    assert not g.of(CERT) and not g.of(VALIDATION) and not g.of(RECORD)


@each("complete")
def test_a_certificate_is_issued_and_validated_in_route53(g):
    (zone_call,) = g.invokes(ZONE_CALL)
    assert zone_call == {"name": "example.com", "privateZone": False}
    cert = g.one(CERT)
    assert cert.inputs["domainName"] == "example.com", cert.urn
    assert cert.inputs["subjectAlternativeNames"] == ["www.example.com"], cert.urn
    assert cert.inputs["validationMethod"] == "DNS", cert.urn
    checks = [r for r in g.of(RECORD) if r.name.startswith("site-cert-")]
    assert sorted(r.inputs["name"] for r in checks) == ["_v0.example.com.", "_v1.www.example.com."]
    for r in checks:
        assert r.inputs["zoneId"] == ZONE_ID and r.inputs["type"] == "CNAME", r.urn
    validation = g.one(VALIDATION)
    assert sorted(validation.inputs["validationRecordFqdns"]) == ["_v0.example.com", "_v1.www.example.com"]
    https = listeners(g)[443]
    assert validation.urn in https.dependencies, f"{https.urn} does not wait for the validation"


@each("complete")
def test_the_domain_and_www_point_at_the_load_balancer(g):
    aliases = {r.inputs["name"]: r for r in g.of(RECORD) if r.name.startswith("site-dns-")}
    assert set(aliases) == {"example.com", "www.example.com"}
    for r in aliases.values():
        (alias,) = r.inputs["aliases"]
        assert r.inputs["type"] == "A" and r.inputs["zoneId"] == ZONE_ID, r.urn
        assert alias["name"] == ALB_DNS and alias["zoneId"] == ALB_ZONE, r.urn


# -- database ------------------------------------------------------------------------------------
@each()
def test_the_database_is_private_encrypted_and_backed_up(g):
    db = g.one(DB)
    i, want = db.inputs, g.settings.database
    assert i["engine"] == "postgres" and i["engineVersion"] == want.engine_version, db.urn
    assert i["publiclyAccessible"] is False, f"{db.urn} is public"
    assert i["storageEncrypted"] is True, f"{db.urn} is not encrypted"
    assert num(i["backupRetentionPeriod"]) == want.backup_retention_days >= 1, db.urn
    assert i["multiAz"] is want.high_availability, db.urn
    assert i["instanceClass"] == want.size and num(i["allocatedStorage"]) == want.storage_gb, db.urn
    assert i["dbSubnetGroupName"] == f"{g.one(DB_SUBNETS).name}-a1b2c3d", db.urn
    assert i["username"] == want.user and i["dbName"] == want.name, db.urn


@each()
def test_the_database_is_protected_and_keeps_a_final_snapshot_unless_ephemeral(g):
    db = g.one(DB)
    i = db.inputs
    if g.settings.ephemeral:
        assert i["deletionProtection"] is False and i["skipFinalSnapshot"] is True, db.urn
        assert not i.get("finalSnapshotIdentifier") and not g.of(RANDOM_ID), db.urn
    else:
        assert i["deletionProtection"] is True, f"{db.urn} can be deleted"
        assert i["skipFinalSnapshot"] is False, f"{db.urn} skips its final snapshot"
        assert i["finalSnapshotIdentifier"] == f"flask-stack-{g.stack}-final-a1b2c3d4", db.urn
        assert g.one(RANDOM_ID).urn in db.dependencies


@each()
def test_ssl_is_forced_by_the_parameter_group(g):
    params = g.one(DB_PARAMS)
    assert params.inputs["family"] == f"postgres{g.settings.database.engine_version}", params.urn
    forced = [p for p in params.inputs["parameters"] if p["name"] == "rds.force_ssl"]
    assert [p["value"] for p in forced] == ["1"], params.urn
    db = g.one(DB)
    assert db.inputs["parameterGroupName"] == f"{params.name}-a1b2c3d", db.urn


@each()
def test_the_password_is_generated_and_kept_secret(g):
    password = g.one(PASSWORD)
    assert num(password.inputs["length"]) >= 24 and password.inputs["special"] is False, password.urn
    db = g.one(DB)
    assert isinstance(db.inputs["password"], Secret), f"{db.urn}: password in plain text"
    assert db.inputs["password"].value == DB_PASSWORD


def plain_strings(value: Any):
    """Every string in an input outside a Secret."""
    if isinstance(value, Secret):
        return
    if isinstance(value, dict):
        for v in value.values():
            yield from plain_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from plain_strings(v)
    elif isinstance(value, str):
        yield value


@each()
def test_the_database_url_requires_tls_and_is_never_in_plain_text(g):
    url = f"postgresql://app:{DB_PASSWORD}@{DB_ADDRESS}:5432/app?sslmode=require"
    assert g.output("databaseUrl") == url and g.output_is_secret("databaseUrl")
    for r in g.all:
        for text in plain_strings(r.inputs):
            assert DB_PASSWORD not in text, f"the database password is in plain text in {r.urn}"
    for host in (h.name for h in inventory.planned(g.settings)):
        env = steps_of_host(g.run.monitor, host)["env"]
        assert isinstance(env.inputs["stdin"], Secret), env.urn
        assert f'DATABASE_URL="{url}"' in env.inputs["stdin"].value, env.urn


def test_database_url_quotes_what_a_url_cannot_hold():
    assert aws_plan.database_url("app", "p@ss/w:rd", "h", 5432.0, "db") == \
        "postgresql://app:p%40ss%2Fw%3Ard@h:5432/db?sslmode=require"


# -- order: database and hosts at once, only env waits ----------------------------------------
@each()
def test_the_database_and_the_instances_are_created_in_parallel(g):
    db = g.one(DB)
    instances = {r.urn for r in g.of(INSTANCE)}
    assert not waits_for(g.run.monitor, db) & instances, f"{db.urn} waits for an instance"
    for instance in g.of(INSTANCE):
        assert db.urn not in waits_for(g.run.monitor, instance), f"{instance.urn} waits for the database"


@each()
def test_only_the_env_step_waits_for_the_database(g):
    db = g.one(DB).urn
    for host in (f"web-{i}" for i in range(g.settings.hosts.count)):
        steps = steps_of_host(g.run.monitor, host)
        tls = ("certificate",) if g.settings.tls.enabled else ()  # the host's own certificate step
        assert sorted(steps) == sorted((*STEPS, *tls)), host
        assert db in steps["env"].dependencies, f"{steps['env'].urn} does not wait for the database"
        for name in ("release", "configure", "gate", *tls):
            assert db not in steps[name].dependencies, f"{steps[name].urn} waits for the database itself"
        for name in ("bootstrap", "upload"):
            assert db not in waits_for(g.run.monitor, steps[name]), f"{steps[name].urn} waits for the db"


# -- the program as a whole ----------------------------------------------------------------------
# -- alerts, logs, the database's operations (issue 22) -------------------------------------------
LASTING = ("minimal", "complete", "single-host", "certificate-arn", "bastion-ip")
MISSING_DATA = {"breaching", "notBreaching", "missing", "ignore"}


def alarms_by_part(g: Graph) -> dict[str, Registered]:
    return {r.name.removeprefix("site-alarm-"): r for r in g.of(ALARM)}


def policy_document(r: Registered, key: str) -> dict:
    return json.loads(r.inputs[key])


@each(*LASTING)
def test_the_alerts_go_to_one_topic_with_the_configured_subscriptions(g):
    topic = g.one(TOPIC)
    alerts = g.settings.alerts
    assert alerts is not None and alerts.enabled
    subscriptions = g.of(SUBSCRIPTION)
    email = sorted(r.inputs["endpoint"] for r in subscriptions if r.inputs["protocol"] == "email")
    assert email == sorted(alerts.email) and email, [r.urn for r in subscriptions]
    for r in subscriptions:
        assert r.inputs["topic"] == f"arn:aws:sns:eu-west-1:123456789012:{topic.name}", r.urn
        assert topic.urn in r.dependencies, r.urn
    hooks = [r for r in subscriptions if r.inputs["protocol"] == "https"]
    if alerts.webhook is None:
        assert not hooks
    else:  # the URL is a credential: it reaches the state as a secret only
        assert len(hooks) == 1 and isinstance(hooks[0].inputs["endpoint"], Secret), hooks
        assert hooks[0].inputs["endpoint"].value == alerts.webhook.value
        assert hooks[0].inputs["endpointAutoConfirms"] is False


@each(*LASTING)
def test_every_alarm_sends_its_alarm_and_its_ok_to_the_topic(g):
    topic = g.one(TOPIC)
    arn = f"arn:aws:sns:eu-west-1:123456789012:{topic.name}"
    assert g.of(ALARM)
    for r in g.of(ALARM):
        assert r.inputs["alarmActions"] == [arn] and r.inputs["okActions"] == [arn], r.urn
        assert r.inputs["treatMissingData"] in MISSING_DATA, r.urn
        assert topic.urn in r.dependencies, r.urn
        assert r.inputs["alarmDescription"].startswith(f"flask-stack flask-stack-{g.stack}: "), r.urn


@each(*LASTING)
def test_the_alarms_watch_the_balancer_each_host_and_the_database(g):
    a = g.settings.alerts
    found = alarms_by_part(g)
    hosts = [f"web-{i}" for i in range(g.settings.hosts.count)]
    balancer = ["unhealthy-hosts", "target-5xx-rate", "response-time-p95", "balancer-5xx"]
    expected = ((balancer if g.settings.load_balancer else [])
                + [f"{h}-{kind}" for h in hosts for kind in ("status", "cpu")]
                + ["db-cpu", "db-free-storage", "db-connections", "db-free-memory"])
    assert sorted(found) == sorted(expected)
    want = {  # part: (namespace, metric, statistic, comparison, threshold, missing data)
        "db-cpu": ("AWS/RDS", "CPUUtilization", "Average", "GreaterThanThreshold", a.cpu_percent,
                   "missing"),
        "db-free-storage": ("AWS/RDS", "FreeStorageSpace", "Minimum", "LessThanThreshold",
                            a.free_storage_gb * 1024 ** 3, "breaching"),
        "db-connections": ("AWS/RDS", "DatabaseConnections", "Maximum", "GreaterThanThreshold",
                           a.database_connections, "missing"),
        "db-free-memory": ("AWS/RDS", "FreeableMemory", "Minimum", "LessThanThreshold",
                           a.free_memory_mb * 1024 ** 2, "breaching"),
    }
    for h in hosts:
        want[f"{h}-status"] = ("AWS/EC2", "StatusCheckFailed", "Maximum",
                               "GreaterThanOrEqualToThreshold", 1, "breaching")
        want[f"{h}-cpu"] = ("AWS/EC2", "CPUUtilization", "Average", "GreaterThanThreshold",
                            a.cpu_percent, "missing")
    if g.settings.load_balancer:
        want.update({
            "unhealthy-hosts": ("AWS/ApplicationELB", "UnHealthyHostCount", "Maximum",
                                "GreaterThanThreshold", 0, "breaching"),
            "balancer-5xx": ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "Sum",
                             "GreaterThanThreshold", 10, "notBreaching"),
        })
    for part, (namespace, metric, statistic, comparison, threshold, missing) in want.items():
        i = found[part].inputs
        assert (i["namespace"], i["metricName"], i["statistic"]) == (namespace, metric, statistic), part
        assert i["comparisonOperator"] == comparison and i["threshold"] == threshold, part
        assert i["treatMissingData"] == missing, part
    instances = {r.name.removeprefix("site-"): r for r in g.of(INSTANCE)}
    for h in hosts:
        for kind in ("status", "cpu"):
            assert found[f"{h}-{kind}"].inputs["dimensions"] == {"InstanceId": ident(instances[h])}
    db = g.one(DB)
    for part in ("db-cpu", "db-free-storage", "db-connections", "db-free-memory"):
        assert found[part].inputs["dimensions"] == {"DBInstanceIdentifier": "site-db-a1b2c3d"}, part
        assert db.urn in found[part].dependencies, part


@each("minimal", "complete", "certificate-arn", "bastion-ip")
def test_the_app_alarms_name_the_target_group_and_the_balancer(g):
    found = alarms_by_part(g)
    alb, target = g.one(ALB), g.one(TARGET_GROUP)
    both = {"TargetGroup": f"targetgroup/{target.name}/73e2d6bc24d8a067",
            "LoadBalancer": f"app/{alb.name}/50dc6c495c0c9188"}
    assert found["unhealthy-hosts"].inputs["dimensions"] == both
    assert found["balancer-5xx"].inputs["dimensions"] == {"LoadBalancer": both["LoadBalancer"]}
    p95 = found["response-time-p95"].inputs
    assert p95["extendedStatistic"] == "p95" and "statistic" not in p95
    assert p95["metricName"] == "TargetResponseTime" and p95["dimensions"] == both
    assert p95["threshold"] == g.settings.alerts.response_time_ms / 1000  # the metric is in seconds
    periods = 3 if g.settings.is_prod else 5
    for part in ("unhealthy-hosts", "target-5xx-rate", "response-time-p95", "balancer-5xx"):
        i = found[part].inputs
        assert num(i["evaluationPeriods"]) == num(i["datapointsToAlarm"]) == periods, part
    # The 5xx rate: metric math over the target group's 5xx count and its request count.
    rate = found["target-5xx-rate"].inputs
    assert "metricName" not in rate and rate["threshold"] == g.settings.alerts.error_rate_percent
    queries = {q["id"]: q for q in rate["metricQueries"]}
    assert queries["errors"]["metric"]["metricName"] == "HTTPCode_Target_5XX_Count"
    assert queries["requests"]["metric"]["metricName"] == "RequestCount"
    for name in ("errors", "requests"):
        metric = queries[name]["metric"]
        assert metric["stat"] == "Sum" and metric["dimensions"] == both and num(metric["period"]) == 60
        assert queries[name]["returnData"] is False
    assert queries["rate"]["returnData"] is True
    assert queries["rate"]["expression"] == \
        "IF(requests >= 20, 100 * FILL(errors, 0) / requests, 0)"


def test_the_thresholds_are_sized_per_environment(graphs):
    prod = program(MINIMAL, MINIMAL_KEYS, stack="prod")
    found, dev = alarms_by_part(prod), alarms_by_part(graphs["minimal"])
    assert found["web-0-cpu"].inputs["threshold"] == 80 and dev["web-0-cpu"].inputs["threshold"] == 90
    assert found["target-5xx-rate"].inputs["threshold"] == 1
    assert dev["target-5xx-rate"].inputs["threshold"] == 5
    assert found["response-time-p95"].inputs["threshold"] == 1.0
    assert dev["response-time-p95"].inputs["threshold"] == 2.0
    assert num(found["unhealthy-hosts"].inputs["evaluationPeriods"]) == 3
    # db.t4g.micro: 1 GiB, so max_connections ~ 101 and the alarm at 80% of it
    assert found["db-connections"].inputs["threshold"] == 80


@each("ephemeral")
def test_an_ephemeral_stack_gets_no_paid_extras(g):
    for typ in (TOPIC, SUBSCRIPTION, ALARM, BUCKET, FLOW_LOG, LOG_GROUP, ROLE):
        assert not g.of(typ), f"{typ} on a review stack: {[r.urn for r in g.of(typ)]}"
    i = g.one(DB).inputs
    assert num(i["monitoringInterval"]) == 0 and not i.get("monitoringRoleArn")
    assert i["enabledCloudwatchLogsExports"] == [] and not i.get("maxAllocatedStorage")
    assert i["performanceInsightsEnabled"] is True and num(i["performanceInsightsRetentionPeriod"]) == 7
    assert not g.one(ALB).inputs.get("accessLogs")


@each("minimal", "complete", "certificate-arn", "bastion-ip")
def test_the_access_logs_go_to_a_private_encrypted_bucket_of_the_stack(g):
    bucket = g.one(BUCKET)
    arn = f"arn:aws:s3:::{bucket.name}-a1b2c3d"
    assert bucket.inputs["forceDestroy"] is False, f"{bucket.urn}: a destroy would delete the logs"
    for typ in (BUCKET_SSE, BUCKET_BLOCK, BUCKET_OWNERSHIP, BUCKET_LIFECYCLE, BUCKET_POLICY):
        assert g.one(typ).inputs["bucket"] == ident(bucket), typ
    sse = g.one(BUCKET_SSE).inputs["rules"]
    assert sse == [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]  # SSE-S3
    block = g.one(BUCKET_BLOCK).inputs
    for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block[key] is True, key
    assert g.one(BUCKET_OWNERSHIP).inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    rules = g.one(BUCKET_LIFECYCLE).inputs["rules"]
    assert len(rules) == 1 and rules[0]["status"] == "Enabled" and rules[0]["filter"] == {"prefix": ""}
    assert num(rules[0]["expiration"]["days"]) == g.settings.logs.retention_days
    policy = g.one(BUCKET_POLICY)
    assert g.one(BUCKET_BLOCK).urn in policy.dependencies
    statements = policy_document(policy, "policy")["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert allows == [{"Sid": "ElbLogDelivery", "Effect": "Allow",
                       "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                       "Action": "s3:PutObject", "Resource": f"{arn}/alb/AWSLogs/{ACCOUNT}/*"}]
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert denies == [{"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                       "Resource": [arn, f"{arn}/*"],
                       "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]
    alb = g.one(ALB)
    assert alb.inputs["accessLogs"] == {"bucket": ident(bucket), "prefix": "alb", "enabled": True}
    assert policy.urn in alb.dependencies, "the balancer is created before it may write its logs"


def test_an_ephemeral_stack_asking_for_access_logs_gets_a_bucket_a_destroy_empties():
    config = with_changes(MINIMAL, expiresAt=REVIEW_EXPIRY, logs={"accessLogs": True})
    g = program(config, MINIMAL_KEYS, stack="pr-8")
    assert g.one(BUCKET).inputs["forceDestroy"] is True
    days = g.one(BUCKET_LIFECYCLE).inputs["rules"][0]["expiration"]["days"]
    assert num(days) == 7


@each()
def test_the_vpcs_default_security_group_allows_nothing(g):
    default = g.one(DEFAULT_SG)
    assert default.inputs["vpcId"] == ident(g.one(VPC))
    assert default.inputs["ingress"] == [] and default.inputs["egress"] == [], default.urn


@each()
def test_flow_logs_only_when_asked_to_a_log_group_kept_for_the_retention(g):
    if not g.settings.logs.flow_logs:
        assert not g.of(FLOW_LOG) and not g.of(LOG_GROUP)
        return
    flow, group = g.one(FLOW_LOG), g.one(LOG_GROUP)
    assert flow.inputs["vpcId"] == ident(g.one(VPC)) and flow.inputs["trafficType"] == "ALL"
    assert flow.inputs["logDestinationType"] == "cloud-watch-logs"
    assert flow.inputs["logDestination"] == f"arn:aws:cloudwatch:eu-west-1:123456789012:{group.name}"
    assert num(group.inputs["retentionInDays"]) == g.settings.logs.retention_days
    role = g.named("site-flow-logs", ROLE)
    assume = policy_document(role, "assumeRolePolicy")["Statement"]
    assert [s["Principal"] for s in assume] == [{"Service": "vpc-flow-logs.amazonaws.com"}]
    assert assume[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    writes = policy_document(g.one(ROLE_POLICY), "policy")["Statement"]
    group_arn = flow.inputs["logDestination"]
    assert writes[0]["Resource"] == [group_arn, f"{group_arn}:*"]
    assert writes[1] == {"Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"}


@each(*LASTING)
def test_the_database_grows_is_seen_and_never_enrols_in_extended_support(g):
    db = g.one(DB)
    i, want = db.inputs, g.settings.database
    assert num(i["maxAllocatedStorage"]) == want.max_storage_gb > num(i["allocatedStorage"]), db.urn
    assert i["performanceInsightsEnabled"] is True, db.urn
    assert num(i["performanceInsightsRetentionPeriod"]) == 7, "beyond 7 days Performance Insights is paid"
    assert i["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"], db.urn
    assert i["engineLifecycleSupport"] == "open-source-rds-extended-support-disabled", db.urn
    assert i["iamDatabaseAuthenticationEnabled"] is True, db.urn
    assert num(i["monitoringInterval"]) == 60, db.urn
    role = g.named("site-db-monitoring", ROLE)
    assert i["monitoringRoleArn"] == f"arn:aws:iam:eu-west-1:123456789012:{role.name}"
    assume = policy_document(role, "assumeRolePolicy")["Statement"]
    assert [s["Principal"] for s in assume] == [{"Service": "monitoring.rds.amazonaws.com"}]
    attached = g.one(ATTACH_POLICY).inputs
    assert attached["policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
    assert attached["role"] == ident(role), attached  # an IAM role's id is its name


def test_the_args_take_the_inventorys_host_names_unless_given(graphs):
    from stack.aws import AwsSiteArgs  # here: importing the module imports pulumi_aws

    config = graphs["complete"].settings
    names = ("web-0", "web-1", "web-2")
    assert AwsSiteArgs(config).host_names == tuple(inventory.host_names(config)) == names
    assert AwsSiteArgs(config, ("web-0",)).host_names == ("web-0",)


@each()
def test_the_resource_graph_matches_its_snapshot(g, variant):
    """No resource's type, name, parent, provider or inputs change unnoticed (tests/support/snapshot.py)."""
    snapshot.check(f"aws-{variant}", snapshot.graph(g.run.monitor, g.mocks.invokes, g.run.resolved))


@each("minimal", "complete")
def test_a_second_run_declares_identical_inputs(g, variant):
    config, keys, stack = VARIANTS[variant]
    again = program(config, keys, stack=stack)
    first = {r.urn: comparable(r.inputs) for r in g.all}
    second = {r.urn: comparable(r.inputs) for r in again.all}
    assert first.keys() == second.keys()
    changed = [urn for urn in first if first[urn] != second[urn]]
    assert not changed, changed


def test_each_extra_host_adds_fewer_than_fourteen_resources():
    """The instance, its target, its steps, its two alarms (status check, CPU) and its two host
    key steps (record and check)."""
    def run(count: int) -> Run:
        return program(with_changes(COMPLETE, hosts={**COMPLETE["hosts"], "count": count}),
                       COMPLETE_KEYS).run

    assert growth_per_host(run) < 14


def test_pulumi_aws_is_imported_for_aws_and_only_by_stack_aws():
    code = (
        "import sys\n"
        "from tests.test_aws import MINIMAL, MINIMAL_KEYS, program\n"
        "assert 'pulumi_aws' not in sys.modules\n"
        "program(MINIMAL, MINIMAL_KEYS)\n"
        "print('pulumi_aws' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True"
    imports = re.compile(r"^\s*(import|from)\s+pulumi_aws\b", re.M)
    importers = sorted(p.name for p in (ROOT / "stack").glob("*.py") if imports.search(p.read_text()))
    assert importers == ["aws.py"], importers
