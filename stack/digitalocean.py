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
- optionally a project that groups all of it;
- alerts (issue 22, stack/do_plan.py): monitor alerts on the web droplets (by their tag), the
  load balancer and the database cluster, and an uptime check of the public URL's health path
  with its alerts, all sent to alerts.email and alerts.webhook (a Slack incoming webhook);
- the database's storage autoscaling and, with database.pool, a PgBouncer pool (transaction
  mode, sized by stack/settings/budget.py) that DATABASE_URL then points at.

The database does not depend on any droplet, so both are created at the same time; only the
hosts' env step (which takes DATABASE_URL) and the one-off database grant wait for it.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_digitalocean as do

from stack import do_plan
from stack.balancer import DO_LB
from stack.inventory import Host
from stack.settings import Settings
from stack.site import DatabaseAdmin, Site, SiteArgs

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


@dataclass(frozen=True)
class DigitalOceanSiteArgs(SiteArgs):
    """What `DigitalOceanSite` takes (stack.site.SiteArgs).

    - `settings` (required): the sections read are region, hosts (image, size),
      network.vpcCidr, ssh (public key, port, adminCidrs, bastion), load_balancer, domain, tls,
      deploy.healthPath, database (with storageAutoscale and pool), alerts, app.workers and
      processes (the pool's size), doProject, expiresAt, ephemeral and prod.
    - `host_names`: one droplet each; default (None) the inventory's names.
    """


@dataclass
class Tags:
    stack: do.Tag  # on everything that takes tags
    web: do.Tag  # the web droplets: the balancer and both firewalls find them by it
    expiry: list[pulumi.Output[str]]  # an ephemeral stack's expiry, as a tag of its own


@dataclass
class Database:
    url: pulumi.Output[str]  # secret
    endpoint: pulumi.Output[str]
    admin: DatabaseAdmin
    cluster: do.DatabaseCluster


class DigitalOceanSite(pulumi.ComponentResource):
    """The DigitalOcean side of a stack; `site` is what the rollout takes.

    Children are named `<name>-<part>`, all under this component (`parent=self`, lookups
    included), each part made by one method below."""

    site: Site

    def __init__(self, name: str, args: DigitalOceanSiteArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("flask-stack:digitalocean:Site", name, None, opts)
        self._name = name
        self._s = s = args.settings
        self._hosts = list(args.host_names or ())
        self._prefix = slug(f"{s.project}-{s.stack}")

        domains = self._domains()
        project = self._project()
        project_id = project.id if project else None
        tags = self._tags()
        vpc = self._network()
        droplets = self._droplets(vpc, tags)
        balancer = None
        if s.load_balancer:
            balancer = self._load_balancer(vpc, tags.web, domains, project_id)
        elif domains and s.domain.dns_records:
            self._dns(droplets[0], domains)
        self._firewall(tags.web, balancer)
        database = self._database(vpc, tags, project_id)
        if project is not None:
            do.ProjectResources(f"{name}-project-droplets", project=project.id,
                                resources=[d.droplet_urn for d in droplets], opts=self._opts())
        url = self._url(domains, balancer, droplets[0])
        self._alerts(tags.web, balancer, database.cluster, url)

        self.site = Site(hosts=[Host(host, d.ipv4_address, machine=d.id)
                                for host, d in zip(self._hosts, droplets, strict=True)],
                         database_url=database.url, url=url, database_endpoint=database.endpoint,
                         database_admin=database.admin)
        self.register_outputs({
            "url": url,
            "hosts": [d.ipv4_address for d in droplets],
            "databaseEndpoint": database.endpoint,
            "loadBalancer": balancer.ip if balancer else None,
        })

    # -- helpers ---------------------------------------------------------------------------
    def _opts(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _invoke(self) -> pulumi.InvokeOptions:
        return pulumi.InvokeOptions(parent=self)

    # -- names, project, tags, network -------------------------------------------------------
    def _domains(self) -> list[tuple[str, str]]:
        """(DNS record name, full name) of every name the site answers to."""
        s = self._s
        if not s.domain.name:
            return []
        names = [("@", s.domain.name)]
        if s.domain.www_redirect:
            names.append(("www", f"www.{s.domain.name}"))
        if s.domain.dns_records or s.load_balancer:
            _require_domain_in_account(s.domain.name, self._invoke())
        return names

    def _project(self) -> do.Project | None:
        """doProject: a DigitalOcean project that groups the stack's resources."""
        s = self._s
        if not s.do_project:
            return None
        return do.Project(
            f"{self._name}-project", name=self._prefix, purpose="Web Application",
            environment=ENVIRONMENTS.get(s.stack, "Development"),
            description=f"flask-stack, stack {s.stack}: droplets, load balancer, PostgreSQL",
            opts=self._opts())

    def _tags(self) -> Tags:
        n, s = self._name, self._s
        stack = do.Tag(f"{n}-stack-tag", name=self._prefix, opts=self._opts())
        # DigitalOcean tags are bare names: an ephemeral stack's expiry is one of its own, on
        # everything that takes tags (droplets and the database cluster).
        expiry = ([do.Tag(f"{n}-expiry-tag", name=f"expires-at:{s.expires_at}", opts=self._opts()).name]
                  if s.expires_at else [])
        web = do.Tag(f"{n}-web-tag", name=f"{self._prefix}-web", opts=self._opts())
        return Tags(stack=stack, web=web, expiry=expiry)

    def _network(self) -> do.Vpc:
        s = self._s
        return do.Vpc(f"{self._name}-vpc", name=self._prefix, region=s.region,
                      ip_range=s.network.vpc_cidr, description=f"flask-stack {s.stack}",
                      opts=self._opts())

    # -- hosts -------------------------------------------------------------------------------
    def _droplets(self, vpc: do.Vpc, tags: Tags) -> list[do.Droplet]:
        s = self._s
        key = self._ssh_key()
        return [
            do.Droplet(
                f"{self._name}-{host}", name=f"{self._prefix}-{host}", image=IMAGES[s.hosts.image],
                region=s.region, size=s.hosts.size, vpc_uuid=vpc.id, ssh_keys=[key],
                tags=[tags.stack.name, tags.web.name, *tags.expiry], monitoring=True,
                droplet_agent=True, graceful_shutdown=True,
                # The key only matters when a droplet is made; rotating it must not replace hosts.
                opts=self._opts(ignore_changes=["ssh_keys"]))
            for host in self._hosts
        ]

    def _ssh_key(self) -> pulumi.Input[str]:
        """The fingerprint the droplets are made with. DigitalOcean accepts each public key once
        per account: a key the user already uploaded (under another name than ours) is used as it
        is; otherwise the stack makes and owns its own."""
        public_key = self._s.ssh.public_key or ""
        ours = f"{self._prefix}-deploy"
        wanted = fingerprint(public_key)
        for existing in do.get_ssh_keys(opts=self._invoke()).ssh_keys:
            if existing.fingerprint == wanted and existing.name != ours:
                return existing.fingerprint
        return do.SshKey(f"{self._name}-ssh-key", name=ours, public_key=public_key,
                         opts=self._opts()).fingerprint

    def _firewall(self, web_tag: do.Tag, balancer: do.LoadBalancer | None) -> do.Firewall:
        """80 from the balancer only (80 and 443 from anywhere without one), SSH from the
        admins, everything outbound."""
        s = self._s
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
        return do.Firewall(f"{self._name}-firewall", name=f"{self._prefix}-web", tags=[web_tag.name],
                           inbound_rules=inbound, outbound_rules=outbound, opts=self._opts())

    # -- load balancer, DNS, URL -------------------------------------------------------------
    def _load_balancer(self, vpc: do.Vpc, web_tag: do.Tag, domains: list[tuple[str, str]],
                       project_id: pulumi.Input[str] | None) -> do.LoadBalancer:
        n, s = self._name, self._s
        rules = [do.LoadBalancerForwardingRuleArgs(
            entry_protocol="http", entry_port=80, target_protocol="http", target_port=80)]
        if domains:
            full_names = [fqdn for _, fqdn in domains]
            # The name follows the domains, so a changed list makes a new certificate before
            # the old one goes (DigitalOcean names are unique).
            digest = hashlib.sha256(",".join(full_names).encode()).hexdigest()[:8]
            certificate = do.Certificate(f"{n}-certificate", name=f"{self._prefix}-{digest}",
                                         type="lets_encrypt", domains=full_names, opts=self._opts())
            rules.append(do.LoadBalancerForwardingRuleArgs(
                entry_protocol="https", entry_port=443, target_protocol="http", target_port=80,
                certificate_name=certificate.name))
        return do.LoadBalancer(
            f"{n}-lb", name=self._prefix, region=s.region, vpc_uuid=vpc.id, droplet_tag=web_tag.name,
            size_unit=1, forwarding_rules=rules, redirect_http_to_https=bool(domains),
            # DigitalOcean points the certificate's names at the balancer itself.
            disable_lets_encrypt_dns_records=not s.domain.dns_records,
            healthcheck=do.LoadBalancerHealthcheckArgs(
                protocol="http", port=80, path=s.deploy.health_path, check_interval_seconds=DO_LB.interval,
                response_timeout_seconds=DO_LB.timeout, healthy_threshold=DO_LB.healthy,
                unhealthy_threshold=DO_LB.unhealthy),
            # Below the front's keepalive_timeout (75 s behind a balancer), so the balancer
            # never reuses a connection the host is closing.
            http_idle_timeout_seconds=DO_LB.idle, enable_backend_keepalive=True, project_id=project_id,
            # With TLS at the balancer: TLS 1.2+ with forward-secret AEAD suites only.
            tls_cipher_policy="STRONG" if domains else None, opts=self._opts())

    def _dns(self, droplet: do.Droplet, domains: list[tuple[str, str]]) -> None:
        """Single-host mode: the domain's records point at the one droplet."""
        for label, _ in domains:
            do.DnsRecord(f"{self._name}-dns-{label.replace('@', 'apex')}", domain=self._s.domain.name,
                         type="A", name=label, value=droplet.ipv4_address, ttl=300, opts=self._opts())

    def _url(self, domains: list[tuple[str, str]], balancer: do.LoadBalancer | None,
             first: do.Droplet) -> pulumi.Input[str]:
        s = self._s
        scheme = "https" if (domains and s.load_balancer) or s.tls.enabled else "http"
        if s.domain.name and scheme == "https":
            return f"https://{s.domain.name}/"
        if balancer is not None:
            return balancer.ip.apply(lambda ip: f"http://{ip}/")
        return first.ipv4_address.apply(lambda ip: f"{scheme}://{s.domain.name or ip}/")

    # -- database ----------------------------------------------------------------------------
    def _database(self, vpc: do.Vpc, tags: Tags, project_id: pulumi.Input[str] | None) -> Database:
        n, s = self._name, self._s
        db = s.database
        cluster = do.DatabaseCluster(
            f"{n}-db", name=f"{self._prefix}-db", engine="pg", version=db.engine_version,
            size=db.size, region=s.region, node_count=2 if db.high_availability else 1,
            private_network_uuid=vpc.id, tags=[tags.stack.name, *tags.expiry], project_id=project_id,
            maintenance_windows=[do.DatabaseClusterMaintenanceWindowArgs(day="sunday", hour="03:00:00")],
            # The cluster adds storage before its disk fills (DigitalOcean's own threshold and
            # step); off on an ephemeral stack unless asked.
            storage_autoscale=(do.DatabaseClusterStorageAutoscaleArgs(enabled=True)
                               if db.storage_autoscale else None),
            # Not even `pulumi destroy` deletes the database of a lasting stack; on prod a
            # destroy after `pulumi state unprotect` still leaves it in the account.
            opts=self._opts(protect=not s.ephemeral, retain_on_delete=s.is_prod))
        database = do.DatabaseDb(f"{n}-db-database", cluster_id=cluster.id, name=db.name,
                                 opts=self._opts())
        user = do.DatabaseUser(f"{n}-db-user", cluster_id=cluster.id, name=db.user, opts=self._opts())
        firewall = do.DatabaseFirewall(
            f"{n}-db-firewall", cluster_id=cluster.id,
            rules=[do.DatabaseFirewallRuleArgs(type="tag", value=tags.web.name)], opts=self._opts())

        def url(args: list) -> str:
            password, host, port, database_name = args[:4]
            return (f"postgresql://{quote(db.user, safe='')}:{quote(password or '', safe='')}@"
                    f"{host}:{int(port or 25060)}/{quote(database_name, safe='')}?sslmode=require")

        # Waiting on the user, the database and the firewall too: a host must not try the URL
        # before it works. With a pool, the app connects to PgBouncer: its port, and the pool's
        # name as the database.
        target = (cluster.private_host, cluster.port, database.name)
        if db.pool:
            pool = do.DatabaseConnectionPool(
                f"{n}-db-pool", cluster_id=cluster.id, name=f"{db.name}-pool", mode="transaction",
                size=db.pool_size, db_name=database.name, user=user.name, opts=self._opts())
            target = (pool.private_host, pool.port, pool.name)
        database_url = pulumi.Output.secret(pulumi.Output.all(
            user.password, *target, firewall.id).apply(url))
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
        return Database(url=database_url, endpoint=endpoint, admin=admin, cluster=cluster)

    # -- alerts ------------------------------------------------------------------------------
    def _alerts(self, web_tag: do.Tag, balancer: do.LoadBalancer | None,
                cluster: do.DatabaseCluster, url: pulumi.Input[str]) -> None:
        """The monitor alerts of do_plan.monitor_alerts and the uptime check with its alerts,
        each sent to every alerts.email address and the Slack webhook."""
        n, s = self._name, self._s
        alerts = s.alerts
        specs = do_plan.monitor_alerts(s)
        if alerts is None or not specs:
            return
        emails = list(alerts.email)
        webhook = (pulumi.Output.secret(alerts.webhook.value)
                   if alerts.webhook is not None and alerts.webhook.value else None)
        slacks = ([do.MonitorAlertAlertsSlackArgs(channel=alerts.slack_channel or "", url=webhook)]
                  if webhook is not None else [])
        for spec in specs:
            scope: dict = {"tags": [web_tag.name]}
            if spec.on == "balancer" and balancer is not None:
                scope = {"entities": [balancer.id]}
            elif spec.on == "db":
                scope = {"entities": [cluster.id]}
            do.MonitorAlert(
                f"{n}-alert-{spec.part}", type=spec.type, compare=spec.compare, value=spec.value,
                window=spec.window, enabled=True, description=f"{self._prefix}: {spec.description}",
                alerts=do.MonitorAlertAlertsArgs(emails=emails or None, slacks=slacks or None),
                **scope, opts=self._opts())
        health = s.deploy.health_path
        target = pulumi.Output.from_input(url).apply(lambda u: u.rstrip("/") + health)
        https = (bool(s.domain.name) and s.load_balancer) or s.tls.enabled  # as _url's scheme
        check = do.UptimeCheck(f"{n}-uptime", name=f"{self._prefix}-health", target=target,
                               type="https" if https else "http",
                               regions=do_plan.uptime_regions(s.region), enabled=True, opts=self._opts())
        notify = do.UptimeAlertNotificationArgs(
            emails=emails or None,
            slacks=[do.UptimeAlertNotificationSlackArgs(channel=alerts.slack_channel or "", url=webhook)]
            if webhook is not None else None)
        for spec in do_plan.uptime_alerts(s, https):
            do.UptimeAlert(f"{n}-uptime-{spec.part}", check_id=check.id,
                           name=f"{self._prefix}-{spec.part}", type=spec.type, comparison=spec.comparison,
                           threshold=spec.threshold, period=spec.period, notifications=[notify],
                           opts=self._opts())


def _require_domain_in_account(domain: str, opts: pulumi.InvokeOptions) -> None:
    """DigitalOcean issues the balancer's Let's Encrypt certificate (and writes the records)
    only for a domain its DNS serves: say so before anything is created."""
    found = do.get_domains(filters=[do.GetDomainsFilterArgs(key="name", values=[domain])],
                           opts=opts).domains
    if not any(d.name == domain for d in found):
        raise pulumi.RunError(
            f"flask-stack:domain.name: {domain} is not a domain in this DigitalOcean account's DNS. "
            "The load balancer's Let's Encrypt certificate (and the records pointing at it) need "
            f"DigitalOcean to serve its DNS: run `doctl compute domain create {domain}` and point "
            "the registrar's name servers at ns1/ns2/ns3.digitalocean.com, or remove domain.name. "
            "Nothing was created.")
