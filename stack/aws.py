"""AwsSite: the cloud side on AWS, returning the same Site shape as every platform.

    VPC over network.zones availability zones (looked up): a public and a private subnet each
    ├─ hosts: EC2 instances (IMDSv2, encrypted root) in the public subnets, spread over zones
    ├─ Application Load Balancer → target group (health path) → every instance on port 80
    │    HTTPS with an ACM certificate (given, or issued and DNS-validated in Route 53)
    └─ RDS PostgreSQL in the private subnets: encrypted, SSL forced, never public

Operations (issue 22): an SNS topic with the alerts.email / alerts.webhook subscriptions and the
CloudWatch alarms of stack/aws_plan.py `alarms` (target group, balancer, each host, the database);
the balancer's access logs in an S3 bucket of the stack's own (SSE-S3, no public access, written
by the ELB log delivery only, expired after logs.retentionDays); the VPC's default security group
emptied; VPC flow logs to CloudWatch Logs when logs.flowLogs is on; the database with storage
autoscaling, Performance Insights, log exports, enhanced monitoring and IAM authentication.

Security groups: the balancer takes 80/443 from the world; hosts take 80 only from the
balancer's group and SSH only from ssh.adminCidrs; the database takes 5432 only from the hosts'
group. Single-host mode (loadBalancer: false): no balancer, the host takes 80/443 itself and
keeps its address in an Elastic IP.

The database does not depend on the instances, so both are created at once; the hosts' steps
wait for the database only where DATABASE_URL is written (the env step).

`pulumi_aws` is imported here only, and this module only when the platform is aws.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from stack import aws_plan
from stack.aws_plan import HTTP_PORT, HTTPS_PORT, POSTGRES_PORT, WORLD_V4
from stack.balancer import ALB
from stack.inventory import Host
from stack.site import Site, SiteArgs


@dataclass(frozen=True)
class AwsSiteArgs(SiteArgs):
    """What `AwsSite` takes (stack.site.SiteArgs).

    - `settings` (required): the sections read are region, network (zones, vpcCidr), hosts
      (image, arch, size, diskGb), ssh (public key, port, adminCidrs, bastion), load_balancer,
      domain (name, wwwRedirect, route53Zone, certificateArn, dnsRecords), tls,
      deploy.healthPath, database (with maxStorageGb), alerts, logs, expiresAt, ephemeral and
      prod.
    - `host_names`: one EC2 instance each; default (None) the inventory's names.
    """


@dataclass
class Network:
    vpc: aws.ec2.Vpc
    public: list[aws.ec2.Subnet]
    private: list[aws.ec2.Subnet]
    internet: list[pulumi.Resource]  # what gives the public subnets their route out


@dataclass
class Groups:
    hosts: aws.ec2.SecurityGroup
    database: aws.ec2.SecurityGroup
    balancer: aws.ec2.SecurityGroup | None


@dataclass
class Database:
    url: pulumi.Output[str]  # secret
    endpoint: pulumi.Output[str]
    instance: aws.rds.Instance


class AwsSite(pulumi.ComponentResource):
    """Everything a stack needs on AWS; `site` is what the rollout takes.

    Children are named `<name>-<part>`, all under this component (`parent=self`, lookups
    included), all created through its own provider (the stack's region and default tags), so
    the user's `aws:region` config plays no part; each part is made by one method below."""

    site: Site

    def __init__(self, name: str, args: AwsSiteArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("flask-stack:aws:Site", name, None, opts)
        settings = args.settings
        self._name = name
        self._s = settings
        self._hosts = list(args.host_names or ())
        self._label = aws_plan.label(settings)
        self._zone: str | None = None  # the Route 53 zone's id, looked up once when needed
        self._account: str | None = None  # the AWS account's id, looked up once when needed
        self._balancer: tuple[aws.lb.LoadBalancer, aws.lb.TargetGroup] | None = None
        self.provider = aws.Provider(
            f"{name}-aws", region=settings.region,
            default_tags=aws.ProviderDefaultTagsArgs(tags=aws_plan.tags(settings)),
            opts=pulumi.ResourceOptions(parent=self))

        zones = self._zones()
        net = self._network(zones)
        groups = self._security_groups(net)
        instances = self._instances(net, groups)
        database = self._database(net, groups)
        if settings.load_balancer:
            addresses = [inst.public_ip for inst in instances]
            url = self._load_balancer(net, groups, instances)
        else:
            addresses, url = self._single_host(instances[0])

        self._alarms(instances, database.instance)

        hosts = [Host(host, address, machine=inst.id)
                 for host, address, inst in zip(self._hosts, addresses, instances, strict=True)]
        self.site = Site(hosts=hosts, database_url=database.url,
                         url=url, database_endpoint=database.endpoint)
        self.register_outputs({"url": url, "hosts": addresses,
                               "databaseEndpoint": database.endpoint, "databaseUrl": database.url})

    # -- helpers ---------------------------------------------------------------------------
    def _opts(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self.provider, **kwargs)

    def _invoke(self) -> pulumi.InvokeOptions:
        return pulumi.InvokeOptions(parent=self, provider=self.provider)

    def _tags(self, part: str) -> dict[str, str]:
        return {"Name": f"{self._label}-{part}"}

    # -- network ---------------------------------------------------------------------------
    def _zones(self) -> list[str]:
        """The first network.zones availability zones of the region open to every account."""
        found = aws.get_availability_zones(
            state="available",
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status",
                                                        values=["opt-in-not-required"])],
            opts=self._invoke())
        names = sorted(found.names or [])
        want = self._s.network.zones
        if len(names) < want:
            fix = (f"set network.zones to {len(names)}" if len(names) >= 2
                   else "choose a region with at least 2 (a load balancer and a DB subnet group need 2)")
            raise pulumi.RunError(
                f"stack {self._s.stack!r}: flask-stack:network.zones is {want}, but region "
                f"{self._s.region} has {len(names)} availability zone(s) available "
                f"({', '.join(names) or 'none'}); {fix}. Nothing was created.")
        return names[:want]

    def _network(self, zones: list[str]) -> Network:
        n, s = self._name, self._s
        vpc = aws.ec2.Vpc(f"{n}-vpc", cidr_block=s.network.vpc_cidr, enable_dns_support=True,
                          enable_dns_hostnames=True, tags=self._tags("vpc"), opts=self._opts())
        gateway = aws.ec2.InternetGateway(f"{n}-igw", vpc_id=vpc.id, tags=self._tags("igw"),
                                          opts=self._opts())
        public_routes = aws.ec2.RouteTable(f"{n}-public-routes", vpc_id=vpc.id,
                                           tags=self._tags("public"), opts=self._opts())
        to_internet = aws.ec2.Route(f"{n}-public-internet", route_table_id=public_routes.id,
                                    destination_cidr_block=WORLD_V4, gateway_id=gateway.id,
                                    opts=self._opts())
        # The private subnets get a table of their own with no route out: the database is
        # reachable from inside the VPC only, whatever is done to the VPC's main table.
        private_routes = aws.ec2.RouteTable(f"{n}-private-routes", vpc_id=vpc.id,
                                            tags=self._tags("private"), opts=self._opts())
        public_cidrs, private_cidrs = aws_plan.subnet_cidrs(s.network.vpc_cidr, len(zones))
        public, private, internet = [], [], [to_internet]
        for i, zone in enumerate(zones):
            pub = aws.ec2.Subnet(f"{n}-public-{i}", vpc_id=vpc.id, cidr_block=public_cidrs[i],
                                 availability_zone=zone, map_public_ip_on_launch=True,
                                 tags=self._tags(f"public-{zone}"), opts=self._opts())
            internet.append(aws.ec2.RouteTableAssociation(
                f"{n}-public-{i}-routes", subnet_id=pub.id, route_table_id=public_routes.id,
                opts=self._opts()))
            priv = aws.ec2.Subnet(f"{n}-private-{i}", vpc_id=vpc.id, cidr_block=private_cidrs[i],
                                  availability_zone=zone, map_public_ip_on_launch=False,
                                  tags=self._tags(f"private-{zone}"), opts=self._opts())
            aws.ec2.RouteTableAssociation(f"{n}-private-{i}-routes", subnet_id=priv.id,
                                          route_table_id=private_routes.id, opts=self._opts())
            public.append(pub)
            private.append(priv)
        # The VPC's default security group: AWS lets its members reach each other and anything
        # out; nothing here uses it, so it allows nothing (CIS / Security Hub EC2.2).
        aws.ec2.DefaultSecurityGroup(f"{n}-default-sg", vpc_id=vpc.id, ingress=[], egress=[],
                                     tags=self._tags("default-do-not-use"), opts=self._opts())
        if s.logs is not None and s.logs.flow_logs:
            self._flow_logs(vpc)
        return Network(vpc=vpc, public=public, private=private, internet=internet)

    def _flow_logs(self, vpc: aws.ec2.Vpc) -> None:
        """Every accepted and rejected flow of the VPC to a log group kept logs.retentionDays."""
        n, s = self._name, self._s
        assert s.logs is not None
        group = aws.cloudwatch.LogGroup(f"{n}-flow-logs", retention_in_days=s.logs.retention_days,
                                        tags=self._tags("flow-logs"), opts=self._opts())
        role = aws.iam.Role(
            f"{n}-flow-logs", description="flask-stack: VPC flow logs to their log group",
            assume_role_policy=json.dumps(aws_plan.assume_role_policy(aws_plan.FLOW_LOGS,
                                                                      self._account_id())),
            tags=self._tags("flow-logs"), opts=self._opts())
        aws.iam.RolePolicy(f"{n}-flow-logs", role=role.id,
                           policy=group.arn.apply(lambda arn: json.dumps(aws_plan.flow_log_policy(arn))),
                           opts=self._opts())
        aws.ec2.FlowLog(f"{n}-flow-logs", vpc_id=vpc.id, traffic_type="ALL",
                        log_destination_type="cloud-watch-logs", log_destination=group.arn,
                        iam_role_arn=role.arn, max_aggregation_interval=600,
                        tags=self._tags("flow-logs"), opts=self._opts())

    def _account_id(self) -> str:
        """The AWS account the stack runs in (the access logs' path, the roles' conditions)."""
        if self._account is None:
            self._account = aws.get_caller_identity(opts=self._invoke()).account_id
        return self._account

    # -- security groups ---------------------------------------------------------------------
    def _security_groups(self, net: Network) -> Groups:
        n, s = self._name, self._s

        def group(part: str, description: str) -> aws.ec2.SecurityGroup:
            # AWS gives a new group an allow-all egress rule; the provider removes it, so each
            # group allows exactly the rules declared below.
            return aws.ec2.SecurityGroup(f"{n}-{part}", vpc_id=net.vpc.id, description=description,
                                         tags=self._tags(part), opts=self._opts())

        def ingress(rule: str, sg: aws.ec2.SecurityGroup, port: int, why: str, *,
                    cidr: str | None = None, ipv6: bool = False,
                    source: aws.ec2.SecurityGroup | None = None) -> None:
            aws.vpc.SecurityGroupIngressRule(
                f"{n}-{rule}", security_group_id=sg.id, ip_protocol="tcp", from_port=port,
                to_port=port, description=why,
                cidr_ipv4=cidr if cidr and not ipv6 else None, cidr_ipv6=cidr if ipv6 else None,
                referenced_security_group_id=source.id if source else None, opts=self._opts())

        hosts = group("hosts", "flask-stack hosts: HTTP from the load balancer, SSH from admins")
        database = group("db", "flask-stack database: PostgreSQL from the hosts only")
        balancer = None
        if s.load_balancer:
            balancer = group("alb", "flask-stack load balancer: HTTP and HTTPS from anywhere")
            ingress("alb-http", balancer, HTTP_PORT, "HTTP from anywhere", cidr=WORLD_V4)
            if aws_plan.has_certificate(s):
                ingress("alb-https", balancer, HTTPS_PORT, "HTTPS from anywhere", cidr=WORLD_V4)
            aws.vpc.SecurityGroupEgressRule(
                f"{n}-alb-to-hosts", security_group_id=balancer.id, ip_protocol="tcp",
                from_port=HTTP_PORT, to_port=HTTP_PORT, referenced_security_group_id=hosts.id,
                description="HTTP to the hosts only", opts=self._opts())
            ingress("hosts-http", hosts, HTTP_PORT, "HTTP from the load balancer", source=balancer)
        else:  # single-host mode: the host is the front
            ingress("hosts-http", hosts, HTTP_PORT, "HTTP from anywhere", cidr=WORLD_V4)
            ingress("hosts-https", hosts, HTTPS_PORT, "HTTPS from anywhere", cidr=WORLD_V4)
        for src in aws_plan.ssh_sources(s):
            ingress(f"hosts-ssh-{src.slug}", hosts, s.ssh.port, f"SSH from {src.why}",
                    cidr=src.cidr, ipv6=src.ipv6)
        # Hosts reach out for OS packages and security updates (no NAT: they sit in public subnets).
        aws.vpc.SecurityGroupEgressRule(
            f"{n}-hosts-egress", security_group_id=hosts.id, ip_protocol="-1", cidr_ipv4=WORLD_V4,
            description="packages, security updates, the database", opts=self._opts())
        ingress("db-postgres", database, POSTGRES_PORT, "PostgreSQL from the hosts", source=hosts)
        return Groups(hosts=hosts, database=database, balancer=balancer)

    # -- hosts -------------------------------------------------------------------------------
    def _instances(self, net: Network, groups: Groups) -> list[aws.ec2.Instance]:
        n, s = self._name, self._s
        query = aws_plan.ami_query(s.hosts.image, s.hosts.arch)
        image = aws.ec2.get_ami(
            owners=[query.owner], most_recent=True,
            filters=[aws.ec2.GetAmiFilterArgs(name="name", values=[query.name]),
                     aws.ec2.GetAmiFilterArgs(name="architecture", values=[query.architecture]),
                     aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
                     aws.ec2.GetAmiFilterArgs(name="root-device-type", values=["ebs"])],
            opts=self._invoke())
        key = aws.ec2.KeyPair(f"{n}-key", public_key=s.ssh.public_key, tags=self._tags("key"),
                              opts=self._opts())
        instances = []
        for i, host in enumerate(self._hosts):
            zone = i % len(net.public)
            instances.append(aws.ec2.Instance(
                f"{n}-{host}", ami=image.id, instance_type=s.hosts.size,
                subnet_id=net.public[zone].id, vpc_security_group_ids=[groups.hosts.id],
                key_name=key.key_name, associate_public_ip_address=True,
                metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                    http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
                root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                    volume_type="gp3", volume_size=s.hosts.disk_gb, encrypted=True,
                    delete_on_termination=True),
                tags={**aws_plan.tags(s), **self._tags(host)},
                # A newer image must not replace running hosts: new images reach new hosts only.
                # The route out comes first: bootstrap installs packages as soon as it can log in.
                opts=self._opts(ignore_changes=["ami"], depends_on=net.internet)))
        return instances

    def _single_host(self, instance: aws.ec2.Instance) -> tuple[list[pulumi.Output[str]], pulumi.Output[str]]:
        """No balancer: the host keeps one address across stop/start, DNS points at it."""
        n, s = self._name, self._s
        address = aws.ec2.Eip(f"{n}-{self._hosts[0]}-ip", domain="vpc",
                              instance=instance.id, tags=self._tags("ip"), opts=self._opts())
        self._dns(ttl=300, records=[address.public_ip])
        scheme = "https" if s.tls.enabled else "http"
        url = (pulumi.Output.from_input(f"{scheme}://{s.domain.name}/") if s.domain.name
               else pulumi.Output.concat(f"{scheme}://", address.public_ip, "/"))
        return [address.public_ip], url

    # -- load balancer -----------------------------------------------------------------------
    def _load_balancer(self, net: Network, groups: Groups,
                       instances: list[aws.ec2.Instance]) -> pulumi.Output[str]:
        n, s = self._name, self._s
        assert groups.balancer is not None
        logs, waits = None, list(net.internet)
        if s.logs is not None and s.logs.access_logs:
            bucket, policy = self._access_log_bucket()
            logs = aws.lb.LoadBalancerAccessLogsArgs(bucket=bucket.id, prefix=aws_plan.ALB_LOG_PREFIX,
                                                     enabled=True)
            waits.append(policy)  # the balancer checks it may write there when logs are enabled
        alb = aws.lb.LoadBalancer(
            f"{n}-alb", load_balancer_type="application", internal=False, ip_address_type="ipv4",
            subnets=[subnet.id for subnet in net.public], security_groups=[groups.balancer.id],
            drop_invalid_header_fields=True, desync_mitigation_mode="defensive",
            # 60 s idle: below the hosts' Nginx keep-alive behind a balancer (75 s, stack/render.py),
            # so the balancer, never Nginx, closes an idle connection (no 502 on a reused one).
            enable_deletion_protection=not s.ephemeral, enable_http2=True, idle_timeout=ALB.idle,
            access_logs=logs, tags=self._tags("alb"), opts=self._opts(depends_on=waits))
        target = aws.lb.TargetGroup(
            f"{n}-web", port=HTTP_PORT, protocol="HTTP", target_type="instance", vpc_id=net.vpc.id,
            deregistration_delay=30,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True, protocol="HTTP", port="traffic-port", path=s.deploy.health_path,
                matcher="200", interval=ALB.interval, timeout=ALB.timeout,
                healthy_threshold=ALB.healthy, unhealthy_threshold=ALB.unhealthy),
            tags=self._tags("web"), opts=self._opts())
        self._balancer = (alb, target)
        for host, instance in zip(self._hosts, instances, strict=True):
            aws.lb.TargetGroupAttachment(f"{n}-{host}-target", target_group_arn=target.arn,
                                         target_id=instance.id, port=HTTP_PORT, opts=self._opts())
        forward = aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target.arn)

        if not aws_plan.has_certificate(s):
            aws.lb.Listener(f"{n}-http", load_balancer_arn=alb.arn, port=HTTP_PORT, protocol="HTTP",
                            default_actions=[forward], opts=self._opts())
            return pulumi.Output.concat("http://", alb.dns_name, "/")

        aws.lb.Listener(
            f"{n}-https", load_balancer_arn=alb.arn, port=HTTPS_PORT, protocol="HTTPS",
            ssl_policy=aws_plan.TLS_POLICY, certificate_arn=self._certificate(),
            default_actions=[forward], opts=self._opts())
        aws.lb.Listener(
            f"{n}-http", load_balancer_arn=alb.arn, port=HTTP_PORT, protocol="HTTP",
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="redirect", redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                    protocol="HTTPS", port=str(HTTPS_PORT), status_code="HTTP_301"))],
            opts=self._opts())
        self._dns(aliases=[aws.route53.RecordAliasArgs(name=alb.dns_name, zone_id=alb.zone_id,
                                                      evaluate_target_health=True)])
        return pulumi.Output.from_input(f"https://{s.domain.name}/")

    def _access_log_bucket(self) -> tuple[aws.s3.Bucket, aws.s3.BucketPolicy]:
        """The balancer's access logs: a bucket of their own, encrypted with S3's keys (the only
        kind ELB log delivery writes with), no public access by any route, objects owned by the
        bucket (no ACLs), written only by the ELB log delivery, expired after logs.retentionDays.
        An ephemeral stack's bucket is emptied on destroy; a lasting stack's must be emptied by
        hand first (its logs are evidence)."""
        n, s = self._name, self._s
        assert s.logs is not None
        bucket = aws.s3.Bucket(f"{n}-logs", force_destroy=s.ephemeral, tags=self._tags("logs"),
                               opts=self._opts())
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{n}-logs", bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3
                .BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"))],
            opts=self._opts())
        blocked = aws.s3.BucketPublicAccessBlock(
            f"{n}-logs", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=self._opts())
        aws.s3.BucketOwnershipControls(
            f"{n}-logs", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=self._opts())
        aws.s3.BucketLifecycleConfiguration(
            f"{n}-logs", bucket=bucket.id,
            rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-logs", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                    days=s.logs.retention_days),
                abort_incomplete_multipart_upload=aws.s3
                .BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=1))],
            opts=self._opts())
        account = self._account_id()
        policy = aws.s3.BucketPolicy(
            f"{n}-logs", bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(aws_plan.log_bucket_policy(arn, account))),
            # The public access block first: a policy never lands on a bucket that could be public.
            opts=self._opts(depends_on=[blocked]))
        return bucket, policy

    # -- alerts ------------------------------------------------------------------------------
    def _alarms(self, instances: list[aws.ec2.Instance], database: aws.rds.Instance) -> None:
        """The SNS topic with its subscriptions, and every alarm of aws_plan.alarms sending both
        its ALARM and its OK to it."""
        n, s = self._name, self._s
        specs = aws_plan.alarms(s, self._hosts)
        if not specs or s.alerts is None:
            return
        topic = aws.sns.Topic(f"{n}-alerts", display_name=f"{self._label} alerts"[:100],
                              tags=self._tags("alerts"), opts=self._opts())
        for address in s.alerts.email:
            slug = re.sub(r"[^a-z0-9]+", "-", address.lower()).strip("-")
            aws.sns.TopicSubscription(f"{n}-alerts-{slug}", topic=topic.arn, protocol="email",
                                      endpoint=address, opts=self._opts())
        if s.alerts.webhook is not None and s.alerts.webhook.value:
            aws.sns.TopicSubscription(
                f"{n}-alerts-webhook", topic=topic.arn, protocol="https",
                endpoint=pulumi.Output.secret(s.alerts.webhook.value), endpoint_auto_confirms=False,
                opts=self._opts())
        hosts = dict(zip(self._hosts, instances, strict=True))
        for spec in specs:
            dimensions = self._dimensions(spec.on, hosts, database)
            common = dict(
                alarm_description=f"flask-stack {self._label}: {spec.description}",
                comparison_operator=spec.comparison, threshold=spec.threshold,
                evaluation_periods=spec.periods, datapoints_to_alarm=spec.datapoints,
                treat_missing_data=spec.missing, alarm_actions=[topic.arn], ok_actions=[topic.arn],
                tags=self._tags(f"alarm-{spec.part}"), opts=self._opts())
            if spec.math:
                queries = [aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id=ident, return_data=False, metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                        namespace=spec.namespace, metric_name=metric, stat=stat, period=spec.period,
                        dimensions=dimensions)) for ident, metric, stat in spec.metrics]
                queries.append(aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="rate", expression=spec.math, label=spec.metric, return_data=True))
                aws.cloudwatch.MetricAlarm(f"{n}-alarm-{spec.part}", metric_queries=queries, **common)
                continue
            statistic = ({"extended_statistic": spec.statistic} if spec.percentile
                         else {"statistic": spec.statistic})
            aws.cloudwatch.MetricAlarm(
                f"{n}-alarm-{spec.part}", namespace=spec.namespace, metric_name=spec.metric,
                period=spec.period, dimensions=dimensions, **statistic, **common)

    def _dimensions(self, on: str, hosts: dict[str, aws.ec2.Instance],
                    database: aws.rds.Instance) -> dict[str, pulumi.Input[str]]:
        if on == "db":
            return {"DBInstanceIdentifier": database.identifier}
        if on.startswith("host:"):
            return {"InstanceId": hosts[on.split(":", 1)[1]].id}
        assert self._balancer is not None
        alb, target = self._balancer
        if on == "balancer":
            return {"LoadBalancer": alb.arn_suffix}
        return {"TargetGroup": target.arn_suffix, "LoadBalancer": alb.arn_suffix}

    # -- DNS and certificate -------------------------------------------------------------------
    def _dns(self, **front) -> None:
        """domain.dnsRecords: the domain (and www) in domain.route53Zone point at the front
        (`front`: the A record's target, an address with its ttl or the balancer's alias)."""
        if not self._s.domain.dns_records:
            return
        zone = self._zone_id()
        for part, fqdn in zip(("apex", "www"), aws_plan.site_names(self._s), strict=False):
            aws.route53.Record(f"{self._name}-dns-{part}", zone_id=zone, name=fqdn, type="A",
                               opts=self._opts(), **front)

    def _zone_id(self) -> str:
        """domain.route53Zone's id (a public zone: records there are what the world resolves)."""
        if self._zone is None:
            found = aws.route53.get_zone(name=self._s.domain.route53_zone, private_zone=False,
                                         opts=self._invoke())
            self._zone = found.zone_id
        return self._zone

    def _certificate(self) -> pulumi.Input[str]:
        """domain.certificateArn, or a certificate issued for the domain (and www) and validated
        through DNS records in domain.route53Zone; the listener waits for the validation."""
        n, s = self._name, self._s
        if s.domain.certificate_arn:
            return s.domain.certificate_arn
        names = aws_plan.site_names(s)
        zone = self._zone_id()
        cert = aws.acm.Certificate(f"{n}-cert", domain_name=names[0],
                                   subject_alternative_names=names[1:], validation_method="DNS",
                                   tags=self._tags("cert"), opts=self._opts())
        records = []
        for part, fqdn in zip(("apex", "www"), names, strict=False):
            option = cert.domain_validation_options.apply(lambda options, fqdn=fqdn: _option(options, fqdn))
            records.append(aws.route53.Record(
                f"{n}-cert-{part}", zone_id=zone, name=option.resource_record_name,
                type=option.resource_record_type, records=[option.resource_record_value], ttl=60,
                allow_overwrite=True, opts=self._opts()))
        validation = aws.acm.CertificateValidation(
            f"{n}-cert-validation", certificate_arn=cert.arn,
            validation_record_fqdns=[record.fqdn for record in records], opts=self._opts())
        return validation.certificate_arn

    # -- database ----------------------------------------------------------------------------
    def _database(self, net: Network, groups: Groups) -> Database:
        n, s = self._name, self._s
        db = s.database
        # Letters and digits only: nothing RDS refuses ("/", "@", '"', space) and nothing a URL
        # must escape; 32 of them are ~190 bits.
        password = random.RandomPassword(f"{n}-db-password", length=32, special=False,
                                         opts=pulumi.ResourceOptions(parent=self))
        subnets = aws.rds.SubnetGroup(f"{n}-db", subnet_ids=[p.id for p in net.private],
                                      description="flask-stack database: private subnets",
                                      tags=self._tags("db"), opts=self._opts())
        params = aws.rds.ParameterGroup(
            f"{n}-db", family=f"postgres{db.engine_version}",
            description="flask-stack database: TLS required",
            parameters=[aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1",
                                                            apply_method="immediate")],
            tags=self._tags("db"), opts=self._opts())
        final_snapshot = None
        if not s.ephemeral:
            suffix = random.RandomId(f"{n}-db-final-snapshot", byte_length=4,
                                     opts=pulumi.ResourceOptions(parent=self))
            final_snapshot = pulumi.Output.concat(self._label, "-final-", suffix.hex)
        # Enhanced monitoring and the log exports are billed as CloudWatch Logs ingestion: not on
        # an ephemeral stack. Performance Insights' 7 days are free: on everywhere.
        extras = not s.ephemeral
        monitoring = None
        if extras:
            monitoring = aws.iam.Role(
                f"{n}-db-monitoring", description="flask-stack: RDS enhanced monitoring",
                assume_role_policy=json.dumps(aws_plan.assume_role_policy(aws_plan.RDS_MONITORING)),
                tags=self._tags("db-monitoring"), opts=self._opts())
            aws.iam.RolePolicyAttachment(f"{n}-db-monitoring", role=monitoring.id,
                                         policy_arn=aws_plan.RDS_MONITORING_POLICY, opts=self._opts())
        instance = aws.rds.Instance(
            f"{n}-db", engine="postgres", engine_version=db.engine_version,
            instance_class=db.size, allocated_storage=db.storage_gb, storage_type="gp3",
            storage_encrypted=True, publicly_accessible=False, port=POSTGRES_PORT,
            db_subnet_group_name=subnets.name, vpc_security_group_ids=[groups.database.id],
            parameter_group_name=params.name, db_name=db.name, username=db.user,
            password=password.result, backup_retention_period=db.backup_retention_days,
            multi_az=db.high_availability, deletion_protection=not s.ephemeral,
            skip_final_snapshot=s.ephemeral, final_snapshot_identifier=final_snapshot,
            delete_automated_backups=s.ephemeral, copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            max_allocated_storage=db.max_storage_gb or None,
            performance_insights_enabled=True,
            performance_insights_retention_period=aws_plan.PERFORMANCE_INSIGHTS_DAYS,
            enabled_cloudwatch_logs_exports=list(aws_plan.RDS_LOG_EXPORTS) if extras else [],
            monitoring_interval=aws_plan.RDS_MONITORING_SECONDS if extras else 0,
            monitoring_role_arn=monitoring.arn if monitoring else None,
            engine_lifecycle_support=aws_plan.NO_EXTENDED_SUPPORT,
            iam_database_authentication_enabled=True, tags=self._tags("db"),
            # On prod, Pulumi itself refuses to delete the database and a destroy leaves it be.
            opts=self._opts(protect=s.is_prod, retain_on_delete=s.is_prod))
        url = pulumi.Output.all(instance.address, instance.port, password.result).apply(
            lambda a: aws_plan.database_url(db.user, a[2], a[0], a[1], db.name))
        endpoint = pulumi.Output.all(instance.address, instance.port).apply(
            lambda a: f"{a[0]}:{int(a[1])}")
        return Database(url=pulumi.Output.secret(url), endpoint=endpoint, instance=instance)


def _option(options, fqdn: str):
    """The certificate's DNS validation record for one of its names."""
    for option in options or []:
        if option.domain_name == fqdn:
            return option
    raise pulumi.RunError(f"ACM gave no DNS validation record for {fqdn}")
