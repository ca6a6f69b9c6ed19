"""The DigitalOcean site under Pulumi's mocks: every rule of issue 5 asserted on the recorded
resource graph, with the offending resource's URN in each failure message."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pulumi
import pytest

from stack import inventory, scripts, settings
from stack.digitalocean import DigitalOceanSiteArgs, fingerprint
from tests.support import snapshot
from tests.support.cloud import (
    TEST_PUBLIC_KEY,
    TEST_WEBHOOK,
    ancestors,
    example_config,
    growth_per_host,
    of_types,
    steps_of_host,
    waits_for,
    with_changes,
)
from tests.support.mocks import Registered, Run, Secret, StrictMocks, plain, run_program
from tests.support.replay import comparable

ROOT = Path(__file__).resolve().parent.parent
DO = "digitalocean:index/"
DROPLET, LB = f"{DO}droplet:Droplet", f"{DO}loadBalancer:LoadBalancer"
FIREWALL, CLUSTER = f"{DO}firewall:Firewall", f"{DO}databaseCluster:DatabaseCluster"
DB, DB_USER = f"{DO}databaseDb:DatabaseDb", f"{DO}databaseUser:DatabaseUser"
DB_FIREWALL, CERT = f"{DO}databaseFirewall:DatabaseFirewall", f"{DO}certificate:Certificate"
KEY, VPC, TAG, PROJECT = f"{DO}sshKey:SshKey", f"{DO}vpc:Vpc", f"{DO}tag:Tag", f"{DO}project:Project"
PROJECT_RESOURCES, DNS = f"{DO}projectResources:ProjectResources", f"{DO}dnsRecord:DnsRecord"
POOL = f"{DO}databaseConnectionPool:DatabaseConnectionPool"
ALERT, UPTIME = f"{DO}monitorAlert:MonitorAlert", f"{DO}uptimeCheck:UptimeCheck"
UPTIME_ALERT = f"{DO}uptimeAlert:UptimeAlert"
SITE = "flask-stack:digitalocean:Site"
USER_PASSWORD = "db-user-pw/+="  # noqa: S105 - what the mock database hands out; needs quoting
ADMIN_PASSWORD = "db-admin-pw"  # noqa: S105
PRIVATE_HOST = "private-site-db.b.db.ondigitalocean.com"


def fake_address(name: str) -> str:
    return f"203.0.113.{int(hashlib.sha256(name.encode()).hexdigest(), 16) % 200 + 20}"


class DoMocks(StrictMocks):
    """StrictMocks that keep every invoke (token, arguments, provider) for the snapshot."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.invokes: list[tuple[str, dict, str]] = []

    def call(self, args):
        self.invokes.append((args.token, dict(args.args), args.provider))
        return super().call(args)


def do_mocks(*, account_keys: list[dict] | None = None, domains: tuple[str, ...] = ("example.com",)):
    """What DigitalOcean would answer: addresses for droplets and the balancer, the database's
    private host and generated passwords; the account's SSH keys and DNS domains."""
    return DoMocks(
        calls={
            f"{DO}getSshKeys:getSshKeys": {"sshKeys": account_keys or []},
            f"{DO}getDomains:getDomains": lambda args: {"domains": [
                {"name": d} for d in domains if d in args["filters"][0]["values"]]},
        },
        outputs={
            DROPLET: lambda a: {"ipv4Address": fake_address(a.name),
                                "dropletUrn": f"do:droplet:{a.name}-id"},
            LB: lambda a: {"ip": "198.51.100.80"},
            KEY: lambda a: {"fingerprint": fingerprint(a.inputs["publicKey"])},
            CLUSTER: lambda a: {"privateHost": PRIVATE_HOST, "port": 25060, "user": "doadmin",
                                "password": ADMIN_PASSWORD},
            DB_USER: lambda a: {"password": USER_PASSWORD},
            POOL: lambda a: {"privateHost": PRIVATE_HOST, "port": 25061},
        })


def run(name_or_config: str | dict, *, stack: str = "test", mocks=None,
        secret_keys: tuple[str, ...] = ("ssh",), **changes) -> Run:
    if isinstance(name_or_config, str):
        config, keys = example_config(name_or_config)
    else:
        config, keys = name_or_config, secret_keys
    config = with_changes(config, **changes)
    return run_program(config, stack=stack, secret_keys=keys, mocks=mocks or do_mocks())


@pytest.fixture(scope="module")
def minimal() -> Run:
    return run("digitalocean-minimal")


@pytest.fixture(scope="module")
def complete() -> Run:
    return run("digitalocean-complete")


@pytest.fixture(scope="module", params=["minimal", "complete"])
def either(request, minimal, complete) -> Run:
    return {"minimal": minimal, "complete": complete}[request.param]


def one(run: Run, type_: str) -> Registered:
    found = run.monitor.by_type(type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.urn for r in found]}"
    return found[0]


def id_of(resource: Registered) -> str:
    return f"{resource.name}-id"  # what StrictMocks hands out as a resource's id


# -- droplets ---------------------------------------------------------------------------------
def configure_triggers(run: Run) -> list:
    steps = [r for r in run.monitor.by_type("command:remote:Command") if r.name.endswith("-configure")]
    assert steps
    return [plain(r.inputs["triggers"]) for r in steps]


def test_a_resized_droplet_runs_configure_again_so_nginx_workers_follow_its_cpus(minimal):
    resized = run("digitalocean-minimal", hosts={"size": "s-2vcpu-2gb"})
    before, after = configure_triggers(minimal), configure_triggers(resized)
    assert all(a != b for a, b in zip(before, after, strict=True))
    assert all("size s-2vcpu-2gb" in t for t in after)
    # A fixed count, or HAProxy (which counts the CPUs itself when it starts), needs no such run.
    for change in ({"frontWorkers": 2}, {"front": "haproxy"}):
        other = run("digitalocean-minimal", hosts={"size": "s-2vcpu-2gb"}, **change)
        assert not any(str(t).startswith("size ") for ts in configure_triggers(other) for t in ts), change


def test_droplets_take_image_size_key_tag_monitoring_and_the_vpc(either):
    vpc, key = one(either, VPC), one(either, KEY)
    web_tag = next(t for t in either.monitor.by_type(TAG) if t.name == "site-web-tag")
    droplets = either.monitor.by_type(DROPLET)
    assert droplets
    for d in droplets:
        i = d.inputs
        assert i["image"] == "debian-12-x64", d.urn
        assert i["size"] in ("s-1vcpu-1gb", "s-2vcpu-2gb"), d.urn
        assert i["region"] == "fra1", d.urn
        assert i["vpcUuid"] == id_of(vpc), d.urn
        assert i["sshKeys"] == [fingerprint(key.inputs["publicKey"])], d.urn
        assert web_tag.inputs["name"] in i["tags"], d.urn
        assert i["monitoring"] is True, d.urn
        assert "ssh_keys" in d.ignore_changes or "sshKeys" in d.ignore_changes, (
            f"{d.urn}: rotating ssh.publicKey would replace the droplet")


def test_vpc_is_in_the_region_with_the_configured_range(either):
    vpc = one(either, VPC)
    assert (vpc.inputs["region"], vpc.inputs["ipRange"]) == ("fra1", "10.20.0.0/16"), vpc.urn


def test_the_ssh_key_resource_carries_the_configured_public_key(minimal):
    config, _ = example_config("digitalocean-minimal")
    key = one(minimal, KEY)
    assert key.inputs["publicKey"] == config["ssh"]["publicKey"], key.urn


def test_a_key_already_in_the_account_is_used_instead_of_uploaded_twice():
    config, _ = example_config("digitalocean-minimal")
    theirs = {"name": "laptop", "fingerprint": fingerprint(config["ssh"]["publicKey"]),
              "publicKey": config["ssh"]["publicKey"], "id": 7}
    result = run("digitalocean-minimal", mocks=do_mocks(account_keys=[theirs]))
    assert not result.monitor.by_type(KEY), "uploaded a key DigitalOcean already has"
    for d in result.monitor.by_type(DROPLET):
        assert d.inputs["sshKeys"] == [theirs["fingerprint"]], d.urn


def test_the_stacks_own_key_stays_managed_once_it_exists():
    config, _ = example_config("digitalocean-minimal")
    ours = {"name": "flask-stack-test-deploy", "fingerprint": fingerprint(config["ssh"]["publicKey"]),
            "publicKey": config["ssh"]["publicKey"], "id": 8}
    result = run("digitalocean-minimal", mocks=do_mocks(account_keys=[ours]))
    assert len(result.monitor.by_type(KEY)) == 1, "the second `pulumi up` would delete the stack's key"


def test_fingerprint_matches_what_ssh_keygen_prints(tmp_path):
    (tmp_path / "k.pub").write_text(TEST_PUBLIC_KEY + "\n")
    out = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(tmp_path / "k.pub")],
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[1] == "MD5:" + fingerprint(TEST_PUBLIC_KEY)


# -- firewall ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["digitalocean-minimal", "digitalocean-complete"])
def test_firewall_lets_80_in_only_from_the_balancer_and_22_only_from_admin_cidrs(name, minimal, complete):
    either = minimal if name.endswith("minimal") else complete
    config, _ = example_config(name)
    allowed = set(config["ssh"]["adminCidrs"]) | {"203.0.113.5/32"}  # and the complete one's bastion
    fw, lb = one(either, FIREWALL), one(either, LB)
    web_tag = next(t for t in either.monitor.by_type(TAG) if t.name == "site-web-tag")
    assert fw.inputs["tags"] == [web_tag.inputs["name"]], fw.urn
    rules = fw.inputs["inboundRules"]
    ports = sorted(r["portRange"] for r in rules)
    assert ports == ["22", "80"], f"{fw.urn}: inbound ports {ports}"
    for rule in rules:
        if rule["portRange"] == "80":
            assert rule.get("sourceLoadBalancerUids") == [id_of(lb)], fw.urn
            assert not rule.get("sourceAddresses"), f"{fw.urn}: port 80 open to addresses"
        else:
            assert rule["sourceAddresses"], fw.urn
            for cidr in rule["sourceAddresses"]:
                assert not cidr.endswith("/0"), f"{fw.urn}: SSH open to the world ({cidr})"
                assert cidr in allowed, f"{fw.urn}: SSH from {cidr}"


def test_the_bastion_address_may_reach_ssh(complete):
    fw = one(complete, FIREWALL)
    ssh = next(r for r in fw.inputs["inboundRules"] if r["portRange"] == "22")
    assert "203.0.113.5/32" in ssh["sourceAddresses"], fw.urn


def test_firewall_allows_all_outbound(either):
    fw = one(either, FIREWALL)
    protocols = {r["protocol"] for r in fw.inputs["outboundRules"]}
    assert protocols == {"tcp", "udp", "icmp"}, fw.urn
    for rule in fw.inputs["outboundRules"]:
        assert set(rule["destinationAddresses"]) == {"0.0.0.0/0", "::/0"}, fw.urn


def test_a_bastion_known_only_by_name_needs_admin_cidrs():
    config, _ = example_config("digitalocean-minimal")
    config["ssh"] = {**config["ssh"], "adminCidrs": [], "bastion": {"host": "bastion.example.com"}}
    with pytest.raises(pulumi.RunError, match=r"flask-stack:ssh.adminCidrs: is empty and "
                                              r"ssh.bastion.host is a name \(bastion.example.com\)"):
        run(config)


def test_a_bastion_given_by_address_is_the_only_ssh_source():
    config, _ = example_config("digitalocean-minimal")
    config["ssh"] = {**config["ssh"], "adminCidrs": [], "bastion": {"host": "203.0.113.5"}}
    fw = one(run(config), FIREWALL)
    ssh = [r for r in fw.inputs["inboundRules"] if r["portRange"] == "22"]
    assert [r["sourceAddresses"] for r in ssh] == [["203.0.113.5/32"]], fw.urn


# -- load balancer ----------------------------------------------------------------------------
def test_balancer_in_the_vpc_finds_droplets_by_tag_and_checks_health(either):
    lb, vpc = one(either, LB), one(either, VPC)
    web_tag = next(t for t in either.monitor.by_type(TAG) if t.name == "site-web-tag")
    assert lb.inputs["vpcUuid"] == id_of(vpc), lb.urn
    assert lb.inputs["dropletTag"] == web_tag.inputs["name"], lb.urn
    assert {"entryProtocol": "http", "entryPort": 80, "targetProtocol": "http", "targetPort": 80}.items() <= \
        lb.inputs["forwardingRules"][0].items(), lb.urn
    check = lb.inputs["healthcheck"]
    assert (check["protocol"], check["port"], check["path"]) == ("http", 80, "/healthz"), lb.urn
    assert lb.inputs["httpIdleTimeoutSeconds"] < 75, f"{lb.urn}: idle timeout above the hosts' keepalive"


def test_without_a_domain_the_balancer_serves_http_only(minimal):
    lb = one(minimal, LB)
    assert [r["entryPort"] for r in lb.inputs["forwardingRules"]] == [80], lb.urn
    assert not lb.inputs.get("redirectHttpToHttps"), lb.urn
    assert not minimal.monitor.by_type(CERT)
    assert minimal.resolved["url"] == "http://198.51.100.80/"


def test_with_a_domain_443_uses_a_lets_encrypt_certificate_and_http_redirects(complete):
    lb, cert = one(complete, LB), one(complete, CERT)
    assert cert.inputs["type"] == "lets_encrypt", cert.urn
    assert cert.inputs["domains"] == ["example.com", "www.example.com"], cert.urn
    https = [r for r in lb.inputs["forwardingRules"] if r["entryPort"] == 443]
    assert len(https) == 1, lb.urn
    assert https[0]["entryProtocol"] == "https" and https[0]["targetPort"] == 80, lb.urn
    assert https[0]["certificateName"] == cert.inputs["name"], lb.urn
    assert lb.inputs["redirectHttpToHttps"] is True, lb.urn
    assert lb.inputs["disableLetsEncryptDnsRecords"] is False, f"{lb.urn}: no DNS records for the domain"
    assert complete.resolved["url"] == "https://example.com/"


def test_a_domain_outside_the_accounts_dns_stops_before_anything_is_made():
    with pytest.raises(pulumi.RunError, match=r"flask-stack:domain.name: example.com is not a domain"):
        run("digitalocean-complete", mocks=do_mocks(domains=()))


# -- database ---------------------------------------------------------------------------------
def test_database_cluster_from_settings_in_the_vpc(minimal, complete):
    for result, nodes, size in ((minimal, 1, "db-s-1vcpu-1gb"), (complete, 2, "db-s-2vcpu-4gb")):
        cluster, vpc = one(result, CLUSTER), one(result, VPC)
        i = cluster.inputs
        got = (i["engine"], i["version"], i["size"], i["nodeCount"])
        assert got == ("pg", "16", size, nodes), cluster.urn
        assert i["privateNetworkUuid"] == id_of(vpc), cluster.urn
        assert i["region"] == "fra1", cluster.urn


def test_the_apps_database_and_user_exist(either):
    cluster = one(either, CLUSTER)
    for type_ in (DB, DB_USER):
        r = one(either, type_)
        assert (r.inputs["clusterId"], r.inputs["name"]) == (id_of(cluster), "app"), r.urn


def test_database_firewall_trusts_only_the_droplets_tag(either):
    fw = one(either, DB_FIREWALL)
    web_tag = next(t for t in either.monitor.by_type(TAG) if t.name == "site-web-tag")
    assert fw.inputs["rules"] == [{"type": "tag", "value": web_tag.inputs["name"]}], fw.urn


def database_url(run: Run):
    env = steps_of_host(run.monitor, "web-0")["env"]
    assert isinstance(env.inputs["stdin"], Secret), f"{env.urn}: the env step's stdin is not secret"
    line = next(x for x in plain(env.inputs["stdin"]).splitlines() if x.startswith("DATABASE_URL="))
    return env, urlsplit(line.split("=", 1)[1].strip('"'))


def test_database_url_is_a_secret_from_the_private_host_with_sslmode_require(either):
    env, url = database_url(either)
    got = (url.scheme, url.hostname, url.port, url.path)
    # The complete example has database.pool: PgBouncer's port, the pool's name as the database.
    pooled = either.monitor.by_type(POOL)
    expected = (25061, "/app-pool") if pooled else (25060, "/app")
    assert got == ("postgresql", PRIVATE_HOST, *expected), env.urn
    assert url.query == "sslmode=require", env.urn
    assert url.username == "app" and url.password == "db-user-pw%2F%2B%3D", f"{env.urn}: password not quoted"
    assert isinstance(either.resolved["databaseUrl"], Secret)
    assert either.resolved["databaseEndpoint"] == f"{PRIVATE_HOST}:25060"
    for r in either.monitor.registered:
        assert USER_PASSWORD not in repr(r.inputs), f"{r.urn} carries the database password in the open"


def test_a_lasting_stacks_database_is_protected_and_an_ephemeral_ones_is_not(either):
    assert one(either, CLUSTER).protect is True
    review = run("digitalocean-minimal", stack="pr-7")
    cluster = one(review, CLUSTER)
    assert cluster.protect is False, f"{cluster.urn}: a review stack could not be destroyed"


# -- the grant step ---------------------------------------------------------------------------
def test_the_first_host_grants_the_app_user_before_any_first_batch_host_releases(complete):
    first = steps_of_host(complete.monitor, "web-0")
    grant = first["database"]
    assert first["bootstrap"].urn in grant.dependencies, grant.urn
    assert isinstance(grant.inputs["stdin"], Secret), f"{grant.urn}: admin password not secret"
    admin = dict(line.split("=", 1) for line in plain(grant.inputs["stdin"]).splitlines())
    assert admin == {"PGHOST": PRIVATE_HOST, "PGPORT": "25060", "PGUSER": "doadmin",
                     "PGPASSWORD": ADMIN_PASSWORD, "PGSSLMODE": "require"}, grant.urn
    for host in ("web-1", "web-2"):
        assert "database" not in steps_of_host(complete.monitor, host), f"{host} grants again"
    release = first["release"]
    assert grant.urn in release.dependencies, release.urn


def test_every_first_batch_release_waits_for_the_grant():
    result = run("digitalocean-minimal", hosts={"count": 3}, deploy={"batchSize": 2})
    grant = steps_of_host(result.monitor, "web-0")["database"]
    for host in ("web-0", "web-1"):
        release = steps_of_host(result.monitor, host)["release"]
        assert grant.urn in release.dependencies, release.urn


def test_bootstrap_installs_the_postgresql_client_on_digitalocean_only():
    do_settings = settings.load({"platform": "digitalocean", "region": "fra1"}, stack="t",
                                project_dir=ROOT, offline=True)
    existing = settings.load({"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]}},
                             stack="t", project_dir=ROOT, offline=True)
    assert "postgresql-client" in scripts.packages(do_settings)
    assert "postgresql-client" not in scripts.packages(existing)


# -- the graph as a whole ---------------------------------------------------------------------
def test_every_cloud_resource_is_parented_under_the_site(either):
    site = one(either, SITE)
    for r in either.monitor.registered:
        if r.type.startswith(DO):
            assert site.urn in ancestors(either.monitor, r), f"{r.urn} is not under {site.urn}"


def test_the_database_is_created_alongside_the_droplets_not_after(either):
    droplets = {d.urn for d in either.monitor.by_type(DROPLET)}
    for type_ in (CLUSTER, DB, DB_USER, DB_FIREWALL):
        r = one(either, type_)
        assert not droplets & waits_for(either.monitor, r), f"{r.urn} waits for a droplet"


def test_only_the_env_and_grant_steps_wait_for_the_database(either):
    database = {r.urn for r in of_types(either.monitor, [CLUSTER, DB, DB_USER, DB_FIREWALL])}
    for host in ("web-0", "web-1"):
        for name, step in steps_of_host(either.monitor, host).items():
            direct = database & set(step.dependencies)
            if name in ("env", "database"):
                assert direct, f"{step.urn} does not wait for the database"
            else:
                assert not direct, f"{step.urn} waits for the database directly"
            if name in ("bootstrap", "upload"):
                assert not database & waits_for(either.monitor, step), f"{step.urn} waits for the database"


def test_a_project_groups_the_balancer_database_and_droplets(complete):
    project = one(complete, PROJECT)
    assert project.inputs["name"] == "flask-stack-test", project.urn
    assert project.inputs["environment"] == "Development", project.urn
    for type_ in (LB, CLUSTER):
        r = one(complete, type_)
        assert r.inputs["projectId"] == id_of(project), f"{r.urn} is not in the project"
    grouped = one(complete, PROJECT_RESOURCES)
    urns = {f"do:droplet:{d.name}-id" for d in complete.monitor.by_type(DROPLET)}
    assert set(grouped.inputs["resources"]) == urns, grouped.urn


def test_the_prod_project_says_production_and_no_project_when_turned_off():
    prod = run("digitalocean-minimal", stack="prod")
    assert one(prod, PROJECT).inputs["environment"] == "Production"
    off = run("digitalocean-minimal", doProject=False)
    assert not off.monitor.by_type(PROJECT) and not off.monitor.by_type(PROJECT_RESOURCES)
    assert "projectId" not in one(off, LB).inputs or not one(off, LB).inputs["projectId"]


def test_a_second_run_declares_identical_inputs(complete):
    again = run("digitalocean-complete")
    first = {r.urn: r.inputs for r in complete.monitor.registered}
    second = {r.urn: r.inputs for r in again.monitor.registered}
    assert first.keys() == second.keys()
    for urn in first:
        assert comparable(first[urn]) == comparable(second[urn]), f"{urn} differs between two runs"


def test_each_extra_droplet_adds_fewer_than_twelve_resources():
    """Its droplet, its steps, and the two host key steps (record and check)."""
    assert growth_per_host(lambda n: run("digitalocean-minimal", hosts={"count": n})) < 12


def test_outputs_name_the_hosts_and_keep_the_database_url_secret(complete):
    hosts = [d.name for d in complete.monitor.by_type(DROPLET)]
    assert complete.resolved["hosts"] == [fake_address(f"{h}") for h in hosts]


# -- single-host mode -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def single() -> Run:
    return run("digitalocean-complete", loadBalancer=False, hosts={"count": 1},
               tls={"enabled": True, "email": "ops@example.com"})


def test_single_host_mode_has_no_balancer_and_opens_80_and_443_to_the_world(single):
    assert not single.monitor.by_type(LB) and not single.monitor.by_type(CERT)
    fw = one(single, FIREWALL)
    web = {r["portRange"]: r for r in fw.inputs["inboundRules"] if r["portRange"] in ("80", "443")}
    assert sorted(web) == ["443", "80"], fw.urn
    for rule in web.values():
        assert set(rule["sourceAddresses"]) == {"0.0.0.0/0", "::/0"}, fw.urn


def test_single_host_mode_points_the_domain_at_the_droplet(single):
    droplet = one(single, DROPLET)
    records = {r.inputs["name"]: r for r in single.monitor.by_type(DNS)}
    assert sorted(records) == ["@", "www"]
    for record in records.values():
        assert (record.inputs["type"], record.inputs["domain"]) == ("A", "example.com"), record.urn
        assert record.inputs["value"] == fake_address(droplet.name), record.urn
    assert single.resolved["url"] == "https://example.com/"


# -- the component ----------------------------------------------------------------------------
def test_the_args_take_the_inventorys_host_names_unless_given():
    config, keys = example_config("digitalocean-complete")
    loaded = settings.load(config, stack="test", project_dir=ROOT, secret_keys=frozenset(keys))
    assert DigitalOceanSiteArgs(loaded).host_names == tuple(inventory.host_names(loaded))
    assert DigitalOceanSiteArgs(loaded, ("web-0",)).host_names == ("web-0",)


# -- the resource graph, pinned -----------------------------------------------------------------
MINIMAL_KEY = example_config("digitalocean-minimal")[0]["ssh"]["publicKey"]
SNAPSHOTS = {
    "minimal": lambda: run("digitalocean-minimal", mocks=do_mocks()),
    "complete": lambda: run("digitalocean-complete", mocks=do_mocks()),
    "single-host": lambda: run("digitalocean-complete", mocks=do_mocks(), loadBalancer=False,
                               hosts={"count": 1}, tls={"enabled": True, "email": "ops@example.com"}),
    "account-key": lambda: run("digitalocean-minimal", mocks=do_mocks(account_keys=[{
        "name": "laptop", "fingerprint": fingerprint(MINIMAL_KEY), "publicKey": MINIMAL_KEY,
        "id": 7}])),
    "no-project": lambda: run("digitalocean-minimal", mocks=do_mocks(), doProject=False),
    "prod": lambda: run("prod", stack="prod", mocks=do_mocks()),
    "staging": lambda: run("staging", stack="staging", mocks=do_mocks()),
    "review": lambda: run("review", stack="pr-7", mocks=do_mocks()),
    "dev": lambda: run("Pulumi.dev", stack="dev", mocks=do_mocks()),
}


@pytest.mark.parametrize("variant", SNAPSHOTS)
def test_the_resource_graph_matches_its_snapshot(variant):
    """No resource's type, name, parent, provider or inputs change unnoticed (tests/support/snapshot.py)."""
    result = SNAPSHOTS[variant]()
    mocks = result.monitor.mocks
    snapshot.check(f"digitalocean-{variant}", snapshot.graph(result.monitor, mocks.invokes, result.resolved))


# -- the dev stack and imports ----------------------------------------------------------------
def test_the_dev_stack_evaluates_cleanly():
    dev = run("Pulumi.dev", stack="dev")
    assert len(dev.monitor.by_type(DROPLET)) == 1
    assert one(dev, CLUSTER).inputs["size"] == "db-s-1vcpu-1gb"
    assert dev.resolved["url"] == "http://198.51.100.80/"


def test_a_digitalocean_stack_never_imports_pulumi_aws():
    code = (
        "import sys\n"
        "from tests.test_digitalocean import run\n"
        "run('digitalocean-complete')\n"
        "print('pulumi_aws' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_a_droplets_steps_name_it_with_its_address(minimal):
    """The address is known only once the droplet exists; the scripts are made then, so a
    failure reads `on host web-0 (203.0.113.x)`, not `web-0 ()`."""
    address = fake_address("site-web-0")
    steps = {r.name.rsplit("-", 1)[1]: plain(r.inputs["create"])
             for r in minimal.monitor.by_type("command:remote:Command") if "-web-0-" in r.name}
    for step in ("env", "release", "configure", "gate"):
        assert f"on host web-0 ({address})" in steps[step], step
        assert "web-0 ()" not in steps[step], step


# -- operations (issue 22) --------------------------------------------------------------------
def by_name(run: Run, type_: str) -> dict[str, Registered]:
    return {r.name: r for r in run.monitor.by_type(type_)}


def test_monitor_alerts_watch_the_droplets_balancer_and_database_and_reach_the_recipients(complete):
    alerts = by_name(complete, ALERT)
    web_tag = next(t for t in complete.monitor.by_type(TAG) if t.name == "site-web-tag")
    lb, cluster = one(complete, LB), one(complete, CLUSTER)
    expected = {  # part: (type, value, window, scope)
        "droplet-cpu": ("v1/insights/droplet/cpu", 80, "10m", "tag"),
        "droplet-memory": ("v1/insights/droplet/memory_utilization_percent", 85, "10m", "tag"),
        "droplet-disk": ("v1/insights/droplet/disk_utilization_percent", 80, "5m", "tag"),
        "lb-5xx-rate": ("v1/insights/lbaas/increase_in_http_error_rate_percentage_5xx", 1, "5m", "lb"),
        "lb-response-time-p95": ("v1/insights/lbaas/high_http_request_response_time_95p", 1000, "5m", "lb"),
        "db-cpu": ("v1/dbaas/alerts/cpu_alerts", 80, "10m", "db"),
        "db-memory": ("v1/dbaas/alerts/memory_utilization_alerts", 85, "10m", "db"),
        "db-disk": ("v1/dbaas/alerts/disk_utilization_alerts", 80, "5m", "db"),
    }
    assert set(alerts) == {f"site-alert-{part}" for part in expected}
    for part, (type_, value, window, scope) in expected.items():
        alert = alerts[f"site-alert-{part}"]
        inputs = plain(alert.inputs)
        assert (inputs["type"], inputs["value"], inputs["window"], inputs["compare"]) == (
            type_, value, window, "GreaterThan"), alert.urn
        assert inputs["enabled"] is True, alert.urn
        if scope == "tag":
            assert inputs["tags"] == [web_tag.inputs["name"]] and "entities" not in inputs, alert.urn
            assert web_tag.urn in alert.dependencies, alert.urn
        else:
            target = lb if scope == "lb" else cluster
            assert inputs["entities"] == [id_of(target)] and "tags" not in inputs, alert.urn
        assert inputs["alerts"]["emails"] == ["ops@example.com"], alert.urn
        # The Slack webhook's URL is a credential: the recipients go to the engine as a secret.
        assert isinstance(alert.inputs["alerts"], Secret), f"{alert.urn}: the webhook in the open"
        assert inputs["alerts"]["slacks"] == [{"channel": "#ops", "url": TEST_WEBHOOK}], alert.urn


def test_the_uptime_check_probes_the_health_path_with_down_latency_and_certificate_alerts(complete):
    check = one(complete, UPTIME)
    assert plain(check.inputs) == {"name": "flask-stack-test-health", "target": "https://example.com/healthz",
                                   "type": "https", "regions": ["eu_west", "us_east"], "enabled": True}
    alerts = {r.name: plain(r.inputs) for r in complete.monitor.by_type(UPTIME_ALERT)}
    assert set(alerts) == {"site-uptime-down", "site-uptime-latency", "site-uptime-ssl-expiry"}
    for registered in complete.monitor.by_type(UPTIME_ALERT):  # the Slack webhook is a credential
        assert isinstance(registered.inputs["notifications"], Secret), registered.urn
    for name, alert in alerts.items():
        assert alert["checkId"] == id_of(check), name
        assert alert["notifications"] == [{"emails": ["ops@example.com"],
                                           "slacks": [{"channel": "#ops", "url": TEST_WEBHOOK}]}], name
    assert (alerts["site-uptime-down"]["type"], alerts["site-uptime-down"]["period"]) == ("down_global", "5m")
    latency = alerts["site-uptime-latency"]
    assert (latency["comparison"], latency["threshold"], latency["period"]) == ("greater_than", 1000, "5m")
    expiry = alerts["site-uptime-ssl-expiry"]
    assert (expiry["type"], expiry["comparison"], expiry["threshold"]) == ("ssl_expiry", "less_than", 14)


def test_prod_hears_sooner_and_over_plain_http_there_is_no_certificate_alert():
    prod = run("prod", stack="prod")
    assert plain(by_name(prod, UPTIME_ALERT)["site-uptime-down"].inputs)["period"] == "2m"
    staging = run("staging", stack="staging")  # no domain: the balancer's address, over HTTP
    assert plain(one(staging, UPTIME).inputs)["type"] == "http"
    assert plain(one(staging, UPTIME).inputs)["target"] == "http://198.51.100.80/healthz"
    assert set(by_name(staging, UPTIME_ALERT)) == {"site-uptime-down", "site-uptime-latency"}
    assert plain(by_name(staging, ALERT)["site-alert-droplet-cpu"].inputs)["value"] == 90


def test_without_a_recipient_or_on_a_review_stack_nothing_is_declared(minimal):
    review = run("review", stack="pr-7", expiresAt="2030-01-01T00:00:00Z",
                 alerts={"email": "ops@example.com"})
    for quiet in (minimal, review):  # minimal: no alerts.email; review: alerts off by default
        for type_ in (ALERT, UPTIME, UPTIME_ALERT):
            assert not quiet.monitor.by_type(type_), type_
    asked = run("review", stack="pr-7", expiresAt="2030-01-01T00:00:00Z",
                alerts={"email": "ops@example.com", "enabled": True})
    assert len(asked.monitor.by_type(ALERT)) == 6  # no balancer in single-host mode


def test_the_balancer_terminating_tls_takes_the_strong_cipher_policy(minimal, complete):
    assert one(complete, LB).inputs["tlsCipherPolicy"] == "STRONG"
    assert "tlsCipherPolicy" not in one(minimal, LB).inputs  # HTTP only: DigitalOcean's default


def test_storage_autoscales_on_a_lasting_stack_only(minimal, complete):
    for lasting in (minimal, complete):
        assert one(lasting, CLUSTER).inputs["storageAutoscale"] == {"enabled": True}
    review = run("digitalocean-minimal", stack="pr-7")
    assert "storageAutoscale" not in one(review, CLUSTER).inputs
    asked = run("digitalocean-minimal", stack="pr-7", database={"storageAutoscale": True})
    assert one(asked, CLUSTER).inputs["storageAutoscale"] == {"enabled": True}


def test_the_pool_is_pgbouncer_in_transaction_mode_sized_from_workers_and_hosts(minimal, complete):
    pool = one(complete, POOL)
    cluster, database, user = one(complete, CLUSTER), one(complete, DB), one(complete, DB_USER)
    # 3 hosts x 5 workers + the worker process on every host (3) and the clock on the first (1).
    assert plain(pool.inputs) == {"clusterId": id_of(cluster), "name": "app-pool", "mode": "transaction",
                                  "size": 19, "dbName": "app", "user": "app"}
    assert {database.urn, user.urn} <= set(pool.dependencies)
    assert not minimal.monitor.by_type(POOL)  # database.pool is off by default
    # The grant and the admin tools still go to the cluster itself, not through the pool.
    assert complete.resolved["databaseEndpoint"] == f"{PRIVATE_HOST}:25060"
