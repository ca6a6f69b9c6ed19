"""DigitalOcean: droplets behind a DigitalOcean load balancer, with managed PostgreSQL.

What `DigitalOceanSite` declares, all parented under it:
- a VPC in the region; a tag for the web droplets (the load balancer, the cloud firewall and
  the database firewall all find the droplets by it, so none of them waits for a droplet);
- droplets (image and size from settings, monitoring on, inside the VPC) with the deploy key:
  an SSH key resource, or the account's key with the same fingerprint when there is one
  (DigitalOcean refuses the same public key twice in an account);
- a cloud firewall: 80 only from the load balancer (80 and 443 from anywhere in single-host
  mode), 22 only from ssh.adminCidrs (and the bastion), all outbound;
- the load balancer in the VPC: 80 -> 80 and, with a domain, 443 with a DigitalOcean-managed
  Let's Encrypt certificate and HTTP -> HTTPS; an HTTP health check on deploy.healthPath;
- managed PostgreSQL in the VPC (version, size and nodes from settings), the app's database and
  user, a database firewall that trusts only the web tag; DATABASE_URL from the private host with
  sslmode=require, as a secret;
- optionally a project that groups all of it.

The database does not depend on any droplet, so both are created at the same time; only the
hosts' env step (which takes DATABASE_URL) and the one-off database grant wait for it.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from urllib.parse import quote

import pulumi
import pulumi_digitalocean as do

from stack import inventory
from stack.inventory import Host
from stack.settings import Settings
from stack.site import DatabaseAdmin, Site

IMAGES = {"debian-12": "debian-12-x64", "ubuntu-24.04": "ubuntu-24-04-x64",
          "ubuntu-22.04": "ubuntu-22-04-x64"}
ENVIRONMENTS = {"prod": "Production", "production": "Production", "staging": "Staging"}
WORLD = ["0.0.0.0/0", "::/0"]


def slug(text: str) -> str:
    """A name DigitalOcean accepts for droplets, tags, VPCs and clusters."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def fingerprint(public_key: str) -> str:
    """The MD5 fingerprint DigitalOcean shows for an OpenSSH public key (aa:bb:...)."""
    blob = base64.b64decode(public_key.split()[1])
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def admin_sources(settings: Settings) -> list[str]:
    """Who may reach port 22: ssh.adminCidrs, plus the bastion when it is given as an address."""
    sources = list(settings.ssh.admin_cidrs)
    bastion = settings.ssh.bastion
    if bastion:
        try:
            address = ipaddress.ip_address(bastion.host)
            sources.append(f"{address}/{address.max_prefixlen}")
        except ValueError:
            pass  # a name: it must be covered by ssh.adminCidrs (docs/digitalocean.md)
    return sorted(set(sources))


class DigitalOceanSite(pulumi.ComponentResource):
    """The DigitalOcean side of a stack; `site` is what the rollout takes."""

    site: Site

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("flask-stack:digitalocean:Site", name, None, opts)
        s = settings
        prefix = slug(f"{s.project}-{s.stack}")
        child = pulumi.ResourceOptions(parent=self)
        hosts = inventory.host_names(s)
        domains = self._domains(s)

        project = None
        if s.do_project:
            project = do.Project(
                f"{name}-project", name=prefix, purpose="Web Application",
                environment=ENVIRONMENTS.get(s.stack, "Development"),
                description=f"flask-stack, stack {s.stack}: droplets, load balancer, PostgreSQL",
                opts=child)
        project_id = project.id if project else None

        stack_tag = do.Tag(f"{name}-stack-tag", name=prefix, opts=child)
        # DigitalOcean tags are bare names: an ephemeral stack's expiry is one of its own, on
        # everything that takes tags (droplets and the database cluster).
        expiry_tags = ([do.Tag(f"{name}-expiry-tag", name=f"expires-at:{s.expires_at}", opts=child).name]
                       if s.expires_at else [])
        web_tag = do.Tag(f"{name}-web-tag", name=f"{prefix}-web", opts=child)
        vpc = do.Vpc(f"{name}-vpc", name=prefix, region=s.region, ip_range=s.network.vpc_cidr,
                     description=f"flask-stack {s.stack}", opts=child)

        key = self._ssh_key(name, s, prefix, child)
        droplets = [
            do.Droplet(
                f"{name}-{host}", name=f"{prefix}-{host}", image=IMAGES[s.hosts.image],
                region=s.region, size=s.hosts.size, vpc_uuid=vpc.id, ssh_keys=[key],
                tags=[stack_tag.name, web_tag.name, *expiry_tags], monitoring=True, droplet_agent=True,
                graceful_shutdown=True,
                # The key only matters when a droplet is made; rotating it must not replace hosts.
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ssh_keys"]))
            for host in hosts
        ]

        balancer = None
        if s.load_balancer:
            balancer = self._load_balancer(name, s, prefix, vpc, web_tag, domains, project_id, child)
        elif domains and s.domain.dns_records:
            for label, _ in domains:
                do.DnsRecord(f"{name}-dns-{label.replace('@', 'apex')}", domain=s.domain.name,
                             type="A", name=label, value=droplets[0].ipv4_address, ttl=300,
                             opts=child)

        self._firewall(name, s, prefix, web_tag, balancer, child)
        database_url, endpoint, admin = self._database(name, s, prefix, vpc, [stack_tag.name, *expiry_tags],
                                                       web_tag, project_id)
        if project is not None:
            do.ProjectResources(f"{name}-project-droplets", project=project.id,
                                resources=[d.droplet_urn for d in droplets], opts=child)

        scheme = "https" if (domains and s.load_balancer) or s.tls.enabled else "http"
        if s.domain.name and scheme == "https":
            url: pulumi.Input[str] = f"https://{s.domain.name}/"
        elif balancer is not None:
            url = balancer.ip.apply(lambda ip: f"http://{ip}/")
        else:
            url = droplets[0].ipv4_address.apply(lambda ip: f"{scheme}://{s.domain.name or ip}/")

        self.site = Site(hosts=[Host(host, d.ipv4_address) for host, d in zip(hosts, droplets, strict=True)],
                         database_url=database_url, url=url, database_endpoint=endpoint,
                         database_admin=admin)
        self.register_outputs({
            "url": url,
            "hosts": [d.ipv4_address for d in droplets],
            "databaseEndpoint": endpoint,
            "loadBalancer": balancer.ip if balancer else None,
        })

    # -- parts ----------------------------------------------------------------------------
    @staticmethod
    def _domains(s: Settings) -> list[tuple[str, str]]:
        """(DNS record name, full name) of every name the site answers to."""
        if not s.domain.name:
            return []
        names = [("@", s.domain.name)]
        if s.domain.www_redirect:
            names.append(("www", f"www.{s.domain.name}"))
        if s.domain.dns_records or s.load_balancer:
            _require_domain_in_account(s.domain.name)
        return names

    @staticmethod
    def _ssh_key(name: str, s: Settings, prefix: str, child: pulumi.ResourceOptions) -> pulumi.Input[str]:
        """The fingerprint the droplets are made with. DigitalOcean accepts each public key once
        per account: a key the user already uploaded (under another name than ours) is used as it
        is; otherwise the stack makes and owns its own."""
        public_key = s.ssh.public_key or ""
        ours = f"{prefix}-deploy"
        wanted = fingerprint(public_key)
        for existing in do.get_ssh_keys().ssh_keys:
            if existing.fingerprint == wanted and existing.name != ours:
                return existing.fingerprint
        return do.SshKey(f"{name}-ssh-key", name=ours, public_key=public_key, opts=child).fingerprint

    @staticmethod
    def _load_balancer(name: str, s: Settings, prefix: str, vpc: do.Vpc, web_tag: do.Tag,
                       domains: list[tuple[str, str]], project_id: pulumi.Input[str] | None,
                       child: pulumi.ResourceOptions) -> do.LoadBalancer:
        rules = [do.LoadBalancerForwardingRuleArgs(
            entry_protocol="http", entry_port=80, target_protocol="http", target_port=80)]
        if domains:
            full_names = [fqdn for _, fqdn in domains]
            # The name follows the domains, so a changed list makes a new certificate before
            # the old one goes (DigitalOcean names are unique).
            digest = hashlib.sha256(",".join(full_names).encode()).hexdigest()[:8]
            certificate = do.Certificate(f"{name}-certificate", name=f"{prefix}-{digest}",
                                         type="lets_encrypt", domains=full_names, opts=child)
            rules.append(do.LoadBalancerForwardingRuleArgs(
                entry_protocol="https", entry_port=443, target_protocol="http", target_port=80,
                certificate_name=certificate.name))
        return do.LoadBalancer(
            f"{name}-lb", name=prefix, region=s.region, vpc_uuid=vpc.id, droplet_tag=web_tag.name,
            size_unit=1, forwarding_rules=rules, redirect_http_to_https=bool(domains),
            # DigitalOcean points the certificate's names at the balancer itself.
            disable_lets_encrypt_dns_records=not s.domain.dns_records,
            healthcheck=do.LoadBalancerHealthcheckArgs(
                protocol="http", port=80, path=s.deploy.health_path, check_interval_seconds=10,
                response_timeout_seconds=5, healthy_threshold=3, unhealthy_threshold=3),
            # Below the front's keepalive_timeout (75 s behind a balancer), so the balancer
            # never reuses a connection the host is closing.
            http_idle_timeout_seconds=60, enable_backend_keepalive=True, project_id=project_id,
            opts=child)

    @staticmethod
    def _firewall(name: str, s: Settings, prefix: str, web_tag: do.Tag,
                  balancer: do.LoadBalancer | None, child: pulumi.ResourceOptions) -> do.Firewall:
        inbound = []
        if balancer is not None:
            inbound.append(do.FirewallInboundRuleArgs(
                protocol="tcp", port_range="80", source_load_balancer_uids=[balancer.id]))
        else:  # single-host mode: the host is the front
            inbound += [do.FirewallInboundRuleArgs(protocol="tcp", port_range=port,
                                                   source_addresses=WORLD) for port in ("80", "443")]
        ssh_from = admin_sources(s)
        if ssh_from:
            inbound.append(do.FirewallInboundRuleArgs(
                protocol="tcp", port_range=str(s.ssh.port), source_addresses=ssh_from))
        outbound = [do.FirewallOutboundRuleArgs(protocol=proto, port_range="1-65535",
                                                destination_addresses=WORLD)
                    for proto in ("tcp", "udp")]
        outbound.append(do.FirewallOutboundRuleArgs(protocol="icmp", destination_addresses=WORLD))
        return do.Firewall(f"{name}-firewall", name=f"{prefix}-web", tags=[web_tag.name],
                           inbound_rules=inbound, outbound_rules=outbound, opts=child)

    def _database(self, name: str, s: Settings, prefix: str, vpc: do.Vpc, tags: list[pulumi.Output[str]],
                  web_tag: do.Tag, project_id: pulumi.Input[str] | None,
                  ) -> tuple[pulumi.Output[str], pulumi.Output[str], DatabaseAdmin]:
        db = s.database
        child = pulumi.ResourceOptions(parent=self)
        cluster = do.DatabaseCluster(
            f"{name}-db", name=f"{prefix}-db", engine="pg", version=db.engine_version,
            size=db.size, region=s.region, node_count=2 if db.high_availability else 1,
            private_network_uuid=vpc.id, tags=tags, project_id=project_id,
            maintenance_windows=[do.DatabaseClusterMaintenanceWindowArgs(day="sunday", hour="03:00:00")],
            # Not even `pulumi destroy` deletes the database of a lasting stack; on prod a
            # destroy after `pulumi state unprotect` still leaves it in the account.
            opts=pulumi.ResourceOptions(parent=self, protect=not s.ephemeral,
                                        retain_on_delete=s.is_prod))
        database = do.DatabaseDb(f"{name}-db-database", cluster_id=cluster.id, name=db.name, opts=child)
        user = do.DatabaseUser(f"{name}-db-user", cluster_id=cluster.id, name=db.user, opts=child)
        firewall = do.DatabaseFirewall(
            f"{name}-db-firewall", cluster_id=cluster.id,
            rules=[do.DatabaseFirewallRuleArgs(type="tag", value=web_tag.name)], opts=child)

        def url(args: list) -> str:
            password, host, port, database_name = args[:4]
            return (f"postgresql://{quote(db.user, safe='')}:{quote(password or '', safe='')}@"
                    f"{host}:{int(port or 25060)}/{quote(database_name, safe='')}?sslmode=require")

        # Waiting on the user, the database and the firewall too: a host must not try the URL
        # before it works.
        database_url = pulumi.Output.secret(pulumi.Output.all(
            user.password, cluster.private_host, cluster.port, database.name, firewall.id).apply(url))
        endpoint = pulumi.Output.all(cluster.private_host, cluster.port).apply(
            lambda a: f"{a[0]}:{int(a[1] or 25060)}")

        def admin_env(args: list) -> str:
            host, port, user_name, password, _ = args
            lines = {"PGHOST": host, "PGPORT": str(int(port or 25060)), "PGUSER": user_name,
                     "PGPASSWORD": password or "", "PGSSLMODE": "require"}
            return "".join(f"{k}={v}\n" for k, v in lines.items())

        admin = DatabaseAdmin(
            env=pulumi.Output.secret(pulumi.Output.all(
                cluster.private_host, cluster.port, cluster.user, cluster.password,
                pulumi.Output.all(user.id, database.id, firewall.id)).apply(admin_env)),
            database=db.name, user=db.user)
        return database_url, endpoint, admin


def _require_domain_in_account(domain: str) -> None:
    """DigitalOcean issues the balancer's Let's Encrypt certificate (and writes the records)
    only for a domain its DNS serves: say so before anything is created."""
    found = do.get_domains(filters=[do.GetDomainsFilterArgs(key="name", values=[domain])]).domains
    if not any(d.name == domain for d in found):
        raise pulumi.RunError(
            f"flask-stack:domain.name: {domain} is not a domain in this DigitalOcean account's DNS. "
            "The load balancer's Let's Encrypt certificate (and the records pointing at it) need "
            f"DigitalOcean to serve its DNS: run `doctl compute domain create {domain}` and point "
            "the registrar's name servers at ns1/ns2/ns3.digitalocean.com, or remove domain.name. "
            "Nothing was created.")
