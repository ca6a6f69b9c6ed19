"""The security baseline of a flask-stack stack, as pulumi-policy policies (AWS, DigitalOcean and
Heroku).

Each check is a plain function over a resource's type and inputs (or over the whole stack), so the
tests run the very same functions over the resource graphs the program declares under Pulumi's
mocks. `policies(level)` wraps them for `pulumi preview --policy-pack policy`; __main__.py picks the
level: mandatory, except advisory on ephemeral review stacks (`pr-<number>`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

PUBLIC_PORTS = frozenset({80, 443})  # what a web stack may open to the internet
PROD_STACKS = frozenset({"prod", "production"})

# Resource types, as Pulumi names them.
DO_FIREWALL = "digitalocean:index/firewall:Firewall"
DO_CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster"
DO_DB_FIREWALL = "digitalocean:index/databaseFirewall:DatabaseFirewall"
DO_LB = "digitalocean:index/loadBalancer:LoadBalancer"
DO_CERT = "digitalocean:index/certificate:Certificate"
DO_DROPLET = "digitalocean:index/droplet:Droplet"
DO_TAG = "digitalocean:index/tag:Tag"
DO_ALERT = "digitalocean:index/monitorAlert:MonitorAlert"
DO_UPTIME = "digitalocean:index/uptimeCheck:UptimeCheck"
DO_UPTIME_ALERT = "digitalocean:index/uptimeAlert:UptimeAlert"
AWS_SG = "aws:ec2/securityGroup:SecurityGroup"
AWS_SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
AWS_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
AWS_RDS = "aws:rds/instance:Instance"
AWS_INSTANCE = "aws:ec2/instance:Instance"
AWS_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
AWS_LBS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
AWS_LISTENERS = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
AWS_CERTS = ("aws:acm/certificate:Certificate",)
AWS_TOPIC = "aws:sns/topic:Topic"
AWS_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
AWS_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
HEROKU_APP = "heroku:app/app:App"
HEROKU_ADDON = "heroku:addon/addon:Addon"
HEROKU_FEATURE = "heroku:app/feature:Feature"
HEROKU_FORMATION = "heroku:formation/formation:Formation"
HEROKU_DOMAIN = "heroku:domain/domain:Domain"
# A config var name that holds a credential. The pack keeps its own rule rather than trusting
# the program's settings (which refuse such names in app.env first).
SECRET_NAME = re.compile(r"(^|_)(SECRET|SECRET_KEY|PASSWORD|PASSWD|PASSPHRASE|TOKEN|API_KEY|APIKEY|"
                         r"PRIVATE_KEY|ACCESS_KEY|CLIENT_SECRET|CREDENTIALS?|AUTH_KEY|SIGNING_KEY)$",
                         re.IGNORECASE)
# Heroku Postgres plans without rollback, fork or follower (and up to 4 h of downtime a month).
HOBBY_PLANS = re.compile(r"heroku-postgresql:(essential|mini|basic|hobby)(-.*)?$")


def stack_of(urn: str) -> str:
    """The stack a URN belongs to (urn:pulumi:<stack>::<project>::<type>::<name>)."""
    return urn.split("::", 1)[0].split(":")[-1]


def is_ephemeral(stack: str) -> bool:
    return re.fullmatch(r"pr-[0-9]+", stack) is not None


# -- networks open to everyone ------------------------------------------------------------------
def _is_world(cidr: Any) -> bool:
    """0.0.0.0/0, ::/0, or anything as wide as a /8 or wider (0.0.0.0/1 + 128.0.0.0/1 is the world)."""
    try:
        net = ipaddress.ip_network(str(cidr), strict=False)
    except ValueError:
        return False
    return net.prefixlen <= (8 if net.version == 4 else 16)


def _ports(low: Any, high: Any) -> set[int] | None:
    """The ports a rule covers; None means all of them."""
    try:
        lo, hi = int(low), int(high)
    except (TypeError, ValueError):
        return None
    if lo == -1 or (lo <= 1 and hi in (0, 65535)):
        return None
    return set(range(lo, hi + 1)) if hi - lo < 70000 else None


def _do_port_range(text: Any) -> set[int] | None:
    if text in (None, "", "all", "0"):
        return None
    low, _, high = str(text).partition("-")
    return _ports(low, high or low)


def _world_opening(ports: set[int] | None) -> str | None:
    if ports is None:
        return "every port"
    extra = sorted(ports - PUBLIC_PORTS)
    if not extra:
        return None
    return f"port {extra[0]}" if len(extra) == 1 else f"ports {extra[0]}-{extra[-1]}"


def open_to_world(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Inbound rules letting the whole internet reach anything but HTTP(S) (SSH above all)."""
    found = []
    if resource_type == DO_FIREWALL:
        for rule in props.get("inboundRules") or []:
            if rule.get("protocol") == "icmp":
                continue
            world = [c for c in rule.get("sourceAddresses") or [] if _is_world(c)]
            what = _world_opening(_do_port_range(rule.get("portRange")))
            if world and what:
                found.append(f"{what} ({rule.get('protocol')}) is open to {', '.join(world)}")
    elif resource_type == AWS_SG:
        for rule in props.get("ingress") or []:
            world = [c for c in [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])]
                     if _is_world(c)]
            every = str(rule.get("protocol")) == "-1"
            what = _world_opening(None if every else _ports(rule.get("fromPort"), rule.get("toPort")))
            if world and what:
                found.append(f"{what} is open to {', '.join(world)}")
    elif resource_type in (AWS_INGRESS, AWS_SG_RULE):
        if resource_type == AWS_SG_RULE and props.get("type") != "ingress":
            return []
        cidrs = [props.get("cidrIpv4"), props.get("cidrIpv6"), *(props.get("cidrBlocks") or []),
                 *(props.get("ipv6CidrBlocks") or [])]
        world = [c for c in cidrs if c and _is_world(c)]
        protocol = str(props.get("ipProtocol", props.get("protocol")))
        ports = None if protocol in ("-1", "all") else _ports(props.get("fromPort"), props.get("toPort"))
        what = _world_opening(ports)
        if world and what:
            found.append(f"{what} is open to {', '.join(world)}")
    return found


# -- databases ----------------------------------------------------------------------------------
def database_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A database that is public, unencrypted or without backups."""
    found = []
    if resource_type == AWS_RDS:
        if props.get("publiclyAccessible"):
            found.append("publicly_accessible is true: the database must stay private")
        if not props.get("storageEncrypted"):
            found.append("storage_encrypted is not true: the database must be encrypted at rest")
        if int(props.get("backupRetentionPeriod") or 0) < 1:
            found.append("backup_retention_period is 0: automated backups are off")
    # DigitalOcean encrypts every cluster at rest and keeps 7 days of backups; privacy is the
    # VPC here plus a database firewall (checked over the whole stack).
    elif resource_type == DO_CLUSTER and not props.get("privateNetworkUuid"):
        found.append("private_network_uuid is not set: the cluster must live in the stack's VPC")
    return found


def unguarded_do_clusters(resources: Iterable[Any]) -> list[tuple[str, str]]:
    """(urn, problem) for DigitalOcean clusters no database firewall restricts to the droplets."""
    resources = list(resources)
    found = []
    for cluster in (r for r in resources if r.resource_type == DO_CLUSTER):
        guards = [r for r in resources if r.resource_type == DO_DB_FIREWALL
                  and cluster.urn in {d.urn for d in r.dependencies}]
        if not guards:
            found.append((cluster.urn, "no database firewall: anyone on the internet may try to log in"))
            continue
        for guard in guards:
            for rule in guard.props.get("rules") or []:
                if rule.get("type") == "ip_addr" and _is_world(rule.get("value")):
                    found.append((guard.urn, f"the database firewall admits {rule.get('value')}"))
            if not guard.props.get("rules"):
                found.append((guard.urn, "the database firewall has no rules (it admits everyone)"))
    return found


# -- hosts and the load balancer ----------------------------------------------------------------
def imds_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type in (AWS_INSTANCE, AWS_LAUNCH_TEMPLATE):
        tokens = (props.get("metadataOptions") or {}).get("httpTokens")
        if tokens != "required":
            return [f"metadata_options.http_tokens is {tokens or 'unset'}: require IMDSv2 "
                    "(http_tokens = \"required\") so SSRF cannot read the instance's credentials"]
    return []


def header_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    application = props.get("loadBalancerType", "application") == "application"
    if resource_type in AWS_LBS and application and props.get("dropInvalidHeaderFields") is not True:
        return ["drop_invalid_header_fields is not true: the load balancer passes malformed "
                "header fields (a request smuggling aid) to the hosts"]
    return []


def https_problems(resources: Iterable[Any]) -> list[tuple[str, str]]:
    """When the stack serves a domain (it holds a certificate), plain HTTP must only redirect."""
    resources = list(resources)
    found = []
    aws_tls = any(r.resource_type in AWS_CERTS for r in resources) or any(
        r.resource_type in AWS_LISTENERS and r.props.get("certificateArn") for r in resources)
    if aws_tls:
        listeners = [r for r in resources if r.resource_type in AWS_LISTENERS]
        if not any(r.props.get("protocol") == "HTTPS" for r in listeners):
            found.append((listeners[0].urn if listeners else "", "a certificate but no HTTPS listener"))
        for r in listeners:
            if r.props.get("protocol") == "HTTP":
                actions = r.props.get("defaultActions") or []
                redirect = all(a.get("type") == "redirect"
                               and (a.get("redirect") or {}).get("protocol") == "HTTPS" for a in actions)
                if not actions or not redirect:
                    found.append((r.urn, "the HTTP listener serves the site instead of redirecting "
                                         "to HTTPS"))
    if any(r.resource_type == DO_CERT for r in resources):
        for lb in (r for r in resources if r.resource_type == DO_LB):
            rules = lb.props.get("forwardingRules") or []
            if not any(x.get("entryProtocol") == "https" for x in rules):
                found.append((lb.urn, "a certificate but no HTTPS forwarding rule"))
            if lb.props.get("redirectHttpToHttps") is not True:
                found.append((lb.urn, "redirect_http_to_https is not true: the site is served "
                                      "over plain HTTP"))
    return found


def deletion_problems(resource_type: str, props: Mapping[str, Any], protected: bool) -> list[str]:
    """What a prod stack must keep from being deleted (by a mistake or a `pulumi destroy`)."""
    found = []
    if resource_type == AWS_RDS:
        if props.get("deletionProtection") is not True:
            found.append("deletion_protection is not true")
        if props.get("skipFinalSnapshot"):
            found.append("skip_final_snapshot is true: a deletion would lose the data")
    elif resource_type in AWS_LBS and props.get("enableDeletionProtection") is not True:
        found.append("enable_deletion_protection is not true")
    elif resource_type == DO_CLUSTER and not protected:
        found.append("the cluster is not protected (Pulumi `protect`): `pulumi destroy` would delete it")
    return found


# -- operations on prod (issue 22) ---------------------------------------------------------------
def _on_aws_prod(resources: list[Any]) -> bool:
    """A prod stack with AWS machines (DigitalOcean's: _on_do_prod; Heroku's: heroku_prod_problems)."""
    return any(r.resource_type in (AWS_RDS, AWS_INSTANCE, *AWS_LBS) and stack_of(r.urn) in PROD_STACKS
               for r in resources)


def _waits_for(resource: Any, urn: str) -> bool:
    return urn in {d.urn for d in resource.dependencies or []}


def alert_problems(resources: Iterable[Any]) -> list[tuple[str, str]]:
    """On prod, alarms reach a person: an SNS topic with a subscription, alarms on the database
    and on each host, and every alarm sends its ALARM and its OK to a topic of the stack (AWS);
    monitor alerts with a recipient on the database and each droplet, and an uptime check with
    an alert (DigitalOcean)."""
    resources = list(resources)
    if _on_do_prod(resources):
        return do_alert_problems(resources)
    if not _on_aws_prod(resources):
        return []
    found = []
    topics = [r for r in resources if r.resource_type == AWS_TOPIC]
    heard = [t for t in topics if any(r.resource_type == AWS_SUBSCRIPTION and _waits_for(r, t.urn)
                                      for r in resources)]
    if not heard:
        found.append(("", "no SNS topic with a subscription: an alarm would reach nobody "
                          "(set alerts.email)"))
    alarms = [r for r in resources if r.resource_type == AWS_ALARM]
    for alarm in alarms:
        for key in ("alarmActions", "okActions"):
            if not alarm.props.get(key) or not any(_waits_for(alarm, t.urn) for t in topics):
                found.append((alarm.urn, f"{key} does not send to the stack's SNS topic"))
    for target in (r for r in resources if r.resource_type in (AWS_RDS, AWS_INSTANCE)):
        if not any(_waits_for(alarm, target.urn) for alarm in alarms):
            found.append((target.urn, "no CloudWatch alarm watches it"))
    return found


def _on_do_prod(resources: list[Any]) -> bool:
    return any(r.resource_type in (DO_CLUSTER, DO_DROPLET) and stack_of(r.urn) in PROD_STACKS
               for r in resources)


def _recipients(notify: Any) -> bool:
    """Does an alert's `alerts` (MonitorAlert) or `notifications` item (UptimeAlert) name an
    email address or a Slack channel?"""
    return isinstance(notify, Mapping) and bool(notify.get("emails") or notify.get("slacks"))


def _tags_of(resource: Any) -> set[str]:
    return {d.urn for d in resource.dependencies or [] if d.resource_type == DO_TAG}


def do_alert_problems(resources: list[Any]) -> list[tuple[str, str]]:
    """DigitalOcean prod: every monitor alert has a recipient; the cluster is watched (the alert
    names it) and each droplet too (the alert names it or a tag it carries); the public URL has
    an uptime check with an alert that has a recipient."""
    found = []
    alerts = [r for r in resources if r.resource_type == DO_ALERT]
    heard = [a for a in alerts if _recipients(a.props.get("alerts"))]
    for alert in alerts:
        if alert not in heard:
            found.append((alert.urn, "alerts names no email address or Slack channel"))
    if not heard:
        found.append(("", "no monitor alert with a recipient: nothing would tell anyone "
                          "(set alerts.email)"))
    for cluster in (r for r in resources if r.resource_type == DO_CLUSTER):
        if not any(_waits_for(a, cluster.urn) for a in heard):
            found.append((cluster.urn, "no monitor alert watches it"))
    for droplet in (r for r in resources if r.resource_type == DO_DROPLET):
        if not any(_waits_for(a, droplet.urn) or _tags_of(a) & _tags_of(droplet) for a in heard):
            found.append((droplet.urn, "no monitor alert watches it (by its id or a tag it carries)"))
    checks = [r for r in resources if r.resource_type == DO_UPTIME]
    told = [c for c in checks if any(
        r.resource_type == DO_UPTIME_ALERT and _waits_for(r, c.urn)
        and any(_recipients(n) for n in r.props.get("notifications") or []) for r in resources)]
    if not told:
        found.append(("", "no uptime check with an alert that reaches someone: a site that is "
                          "down from outside would go unnoticed"))
    return found


def access_log_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """On prod, the load balancer keeps access logs (who asked what, when it failed)."""
    if resource_type in AWS_LBS:
        logs = props.get("accessLogs") or {}
        if logs.get("enabled") is not True or not logs.get("bucket"):
            return ["access_logs is not enabled with a bucket: requests leave no trace"]
    return []


def storage_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """On prod, the database's storage grows before it fills (RDS storage autoscaling, a
    DigitalOcean cluster's storage_autoscale)."""
    if resource_type == DO_CLUSTER:
        autoscale = props.get("storageAutoscale") or {}
        if not isinstance(autoscale, Mapping) or autoscale.get("enabled") is not True:
            return ["storage_autoscale is not enabled: a full disk stops the database"]
    if resource_type == AWS_RDS:
        allocated = int(props.get("allocatedStorage") or 0)
        ceiling = int(props.get("maxAllocatedStorage") or 0)
        if ceiling <= allocated:
            return [f"max_allocated_storage is {ceiling or 'unset'}: storage autoscaling is off, "
                    "so a full disk stops the database"]
    return []


# -- Heroku ---------------------------------------------------------------------------------------
def heroku_config_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A credential never goes in a plain config var: Heroku shows those to every collaborator
    and the Pulumi state keeps them in clear text."""
    if resource_type != HEROKU_APP:
        return []
    names = sorted(name for name in (props.get("configVars") or {}) if SECRET_NAME.search(name))
    return [f"config var {name} looks like a credential but is plain; move it to app.secretEnv "
            "(sensitive_config_vars)" for name in names]


def heroku_acm_problems(resources: Iterable[Any]) -> list[tuple[str, str]]:
    """An app with a custom domain has Automated Certificate Management on, or the domain is
    served without a certificate."""
    resources = list(resources)
    if not any(r.resource_type == HEROKU_DOMAIN for r in resources):
        return []
    return [(r.urn, "the app has a custom domain but acm is not true: it would be served "
                    "without a certificate") for r in resources
            if r.resource_type == HEROKU_APP and r.props.get("acm") is not True]


def heroku_prod_problems(resources: Iterable[Any]) -> list[tuple[str, str]]:
    """A prod Heroku app runs 2 or more web dynos with preboot, on a production Postgres plan,
    and both the app and its database are protected from deletion."""
    resources = list(resources)
    apps = [r for r in resources if r.resource_type == HEROKU_APP]
    if not apps or stack_of(apps[0].urn) not in PROD_STACKS:
        return []
    found = []
    webs = [r for r in resources if r.resource_type == HEROKU_FORMATION and r.props.get("type") == "web"]
    if not webs:
        found.append((apps[0].urn, "no web formation"))
    for web in webs:
        if int(web.props.get("quantity") or 0) < 2:
            found.append((web.urn, "fewer than 2 web dynos: a dyno restart leaves none serving"))
    if not any(r.resource_type == HEROKU_FEATURE and r.props.get("name") == "preboot"
               and r.props.get("enabled") is True for r in resources):
        found.append((apps[0].urn, "preboot is not on: every deploy stops the old dynos before "
                                   "the new ones serve"))
    for addon in (r for r in resources if r.resource_type == HEROKU_ADDON):
        plan = str(addon.props.get("plan") or "")
        if plan.startswith("heroku-postgresql") and HOBBY_PLANS.match(plan):
            found.append((addon.urn, f"{plan} is not a production plan (no rollback); use "
                                     "standard-0 or larger"))
        if plan.startswith("heroku-postgresql") and not addon.opts.protect:
            found.append((addon.urn, "the database is not protected (Pulumi `protect`)"))
    for app in apps:
        if not app.opts.protect:
            found.append((app.urn, "the app is not protected (Pulumi `protect`): destroying it "
                                   "deletes its database with it"))
    return found


# -- the pulumi-policy wrappers -----------------------------------------------------------------
def _resource_policy(name: str, description: str, level: EnforcementLevel,
                     check: Callable[[ResourceValidationArgs], list[str]]) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for problem in check(args):
            report_violation(f"{args.urn}: {problem}", None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=level)


def _stack_policy(name: str, description: str, level: EnforcementLevel,
                  check: Callable[[list[Any]], list[tuple[str, str]]]) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for urn, problem in check(list(args.resources)):
            report_violation(f"{urn}: {problem}" if urn else problem, urn or None)

    return StackValidationPolicy(name=name, description=description, validate=validate,
                                 enforcement_level=level)


def policies(level: EnforcementLevel) -> list:
    return [
        _resource_policy(
            "no-world-open-ssh", "Only HTTP and HTTPS may be open to the internet; SSH only from "
            "the admin CIDRs.", level, lambda a: open_to_world(a.resource_type, a.props)),
        _resource_policy(
            "database-private-encrypted-backed-up", "Databases are private, encrypted at rest "
            "and backed up.", level, lambda a: database_problems(a.resource_type, a.props)),
        _stack_policy(
            "database-firewall", "A DigitalOcean database admits only the stack's droplets.",
            level, unguarded_do_clusters),
        _resource_policy(
            "imdsv2-required", "EC2 hosts require IMDSv2 tokens.", level,
            lambda a: imds_problems(a.resource_type, a.props)),
        _resource_policy(
            "alb-drops-invalid-headers", "The load balancer drops invalid header fields.", level,
            lambda a: header_problems(a.resource_type, a.props)),
        _stack_policy(
            "https-when-domain", "A stack with a domain serves HTTPS and only redirects plain HTTP.",
            level, https_problems),
        _resource_policy(
            "deletion-protection-on-prod", "On prod, the database and the load balancer are "
            "protected from deletion.", level,
            lambda a: deletion_problems(a.resource_type, a.props, a.opts.protect)
            if stack_of(a.urn) in PROD_STACKS else []),
        _stack_policy(
            "alerts-on-prod", "On prod, alarms on the database and each host reach someone (an "
            "SNS topic with a subscription; DigitalOcean alerts with a recipient, and an uptime "
            "check).", level, alert_problems),
        _resource_policy(
            "access-logs-on-prod", "On prod, the load balancer keeps access logs in S3.", level,
            lambda a: access_log_problems(a.resource_type, a.props)
            if stack_of(a.urn) in PROD_STACKS else []),
        _resource_policy(
            "storage-autoscaling-on-prod", "On prod, the database's storage autoscales.", level,
            lambda a: storage_problems(a.resource_type, a.props)
            if stack_of(a.urn) in PROD_STACKS else []),
        _resource_policy(
            "heroku-no-plain-secrets", "A Heroku app keeps credentials in sensitive config vars "
            "only.", level, lambda a: heroku_config_problems(a.resource_type, a.props)),
        _stack_policy(
            "heroku-acm-with-domain", "A Heroku app with a custom domain has Automated "
            "Certificate Management on.", level, heroku_acm_problems),
        _stack_policy(
            "heroku-prod", "A prod Heroku app runs 2 or more web dynos with preboot on a "
            "production Postgres plan, app and database protected.", level, heroku_prod_problems),
    ]


def enforcement(stack: str, ephemeral: str | None) -> EnforcementLevel:
    """Mandatory everywhere except on ephemeral review stacks, where it advises. `ephemeral` is
    the stack's flask-stack:ephemeral config value, if set (else the pr-<number> name decides)."""
    review = str(ephemeral).lower() == "true" if ephemeral is not None else is_ephemeral(stack)
    if stack in PROD_STACKS:
        review = False  # the settings refuse ephemeral on prod; the policy does not trust them
    return EnforcementLevel.ADVISORY if review else EnforcementLevel.MANDATORY


def running_stack() -> tuple[str, str | None]:
    """The stack the CLI runs the pack for, and its flask-stack:ephemeral config value."""
    import pulumi

    return os.environ.get("PULUMI_STACK", ""), pulumi.runtime.get_config("flask-stack:ephemeral")
