"""The sections about serving the web: `domain`, `tls`, `rateLimit` and `deploy`."""

from __future__ import annotations

from stack.settings.checks import check_health_path, check_hostname, check_pem_certificates
from stack.settings.platforms import Platform
from stack.settings.reader import Reader
from stack.settings.schema import LETS_ENCRYPT, App, Deploy, Domain, RateLimit, Tls

MAX_CA_BUNDLE = 64 * 1024  # bytes: dozens of certificates; the certificate step carries it


def check_ca_bundle(text: str) -> str | None:
    if len(text.encode("utf-8", "replace")) > MAX_CA_BUNDLE:
        return (f"is {len(text.encode('utf-8', 'replace')):,} bytes; at most {MAX_CA_BUNDLE:,}: give "
                "only the CA certificates behind the ACME server, not a whole system bundle")
    return check_pem_certificates(text)


ARN = r"arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}"


def read_domain(r: Reader, p: Platform, region: str | None, load_balancer: bool) -> Domain:
    name = read_name(r, "name", 'a domain name like "example.com"')
    www = r.boolean("wwwRedirect", True)
    if name and name.startswith("www.") and www:
        r.error("name", f'give the bare domain ("{name[4:]}"); www.{name[4:]} is redirected to it '
                        "(or set wwwRedirect: false)")
    arn = zone = None
    if p.takes(r, "certificateArn"):
        arn = r.string("certificateArn", None, pattern=ARN,
                       expect='an ACM certificate ARN like "arn:aws:acm:eu-west-1:123456789012:'
                              'certificate/0a1b2c3d-..."')
    if p.takes(r, "route53Zone"):
        zone = read_name(r, "route53Zone", 'the Route 53 public hosted zone name like "example.com"')
    if p.name == "aws":
        ensure_one_certificate(r, name, arn, zone, region, load_balancer)
    records = False
    if p.takes(r, "dnsRecords"):
        records = r.boolean("dnsRecords", p.default("domain.dnsRecords"))
        if r.has("dnsRecords") and records:  # the default is true; only a true said here is refused
            ensure_records_can_be_made(r, p, name, zone)
    r.finish()
    return Domain(name=name, www_redirect=www, certificate_arn=arn, route53_zone=zone,
                  dns_records=bool(records) and bool(name) and (p.name != "aws" or bool(zone)))


def read_name(r: Reader, key: str, expect: str) -> str | None:
    """A DNS name, lower-cased (DNS ignores case; Nginx and certificates want it one way)."""
    name = r.string(key, None, expect=expect, check=lambda text: check_hostname(text, expect))
    return name.strip().lower() if name else None


def ensure_records_can_be_made(r: Reader, p: Platform, name: str | None, zone: str | None) -> None:
    """dnsRecords: true that would make no record is refused, not silently ignored."""
    if not name and not r.reported("name"):
        r.error("dnsRecords", "needs domain.name (the name the records point at the load balancer)")
    elif p.name == "aws" and not zone and not r.reported("route53Zone"):
        r.error("dnsRecords", "needs domain.route53Zone (the public hosted zone the records go in); "
                              "set it, or set dnsRecords: false and point the domain yourself")


def ensure_one_certificate(r: Reader, name: str | None, arn: str | None, zone: str | None,
                           region: str | None, load_balancer: bool) -> None:
    """On AWS the load balancer's HTTPS needs exactly one certificate source that fits."""
    if arn and region and arn.split(":")[3] != region:
        r.error("certificateArn", f"is in region {arn.split(':')[3]}, but the load balancer is in "
                                  f"{region}; an ALB can only use a certificate from its own region")
    if arn and zone:
        r.error("certificateArn", "and domain.route53Zone both give the load balancer a "
                                  "certificate; keep one (route53Zone issues one for you)")
    if zone and name and not (name == zone or name.endswith("." + zone)):
        r.error("route53Zone", f"{zone} does not hold domain.name {name}")
    if (arn or zone) and not name:
        r.error("certificateArn" if arn else "route53Zone", "needs domain.name")
    if arn and not load_balancer:
        r.error("certificateArn", "is for the load balancer; in single-host mode (loadBalancer: "
                                  "false) the host gets its certificate itself (tls.enabled)")
    if name and load_balancer and not r.has("certificateArn") and not r.has("route53Zone"):
        r.error("name", "needs a certificate for the load balancer's HTTPS listener: set "
                        "domain.route53Zone (the public hosted zone; a certificate is issued "
                        "and validated through it) or domain.certificateArn (an ACM certificate "
                        "you already have)")


def read_tls(r: Reader, domain: Domain, p: Platform, load_balancer: bool) -> Tls:
    enabled = r.boolean("enabled", False)
    # What RFC 5321 lets a mailbox be, minus quoting: no spaces, quotes, $, ; or controls.
    email = r.string("email", None, pattern=r"[A-Za-z0-9.!#%&*+/=?^_{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+",
                     expect='an email address like "ops@example.com"')
    directory = r.string("acmeDirectory", LETS_ENCRYPT,
                         pattern=r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%!&'()*+,;=:@/-]*)?",
                         expect="an https:// ACME directory URL")
    bundle = r.string("acmeCaBundle", None, check=check_ca_bundle,
                      expect="PEM certificates (-----BEGIN CERTIFICATE----- ...)")
    if enabled:
        ensure_hosts_can_get_certificates(r, domain, p, load_balancer, email)
    if bundle and directory == LETS_ENCRYPT:
        r.error("acmeCaBundle", "is for a private ACME server (tls.acmeDirectory); Let's Encrypt's "
                                "certificate is publicly trusted, so remove it")
    r.finish()
    return Tls(enabled=enabled, email=email, acme_directory=directory,
               acme_ca_bundle=bundle.strip() + "\n" if bundle else None)


def ensure_hosts_can_get_certificates(r: Reader, domain: Domain, p: Platform, load_balancer: bool,
                                      email: str | None) -> None:
    if not domain.name:
        r.error("enabled", "needs domain.name: certificates are issued for a domain")
    if p.cloud and load_balancer:
        r.error("enabled", "hosts terminate TLS only in single-host mode (loadBalancer: false); "
                           "behind the load balancer, domain.name gives the balancer a certificate")
    if not email and not r.reported("email"):
        r.error("email", "is required when tls.enabled is true (the ACME account's contact)")


def read_rate_limit(r: Reader) -> RateLimit:
    enabled = r.boolean("enabled", False)
    rps = r.integer("requestsPerSecond", 10, 1, 100_000)
    burst = r.integer("burst", 20, 0, 1_000_000)
    r.finish()
    return RateLimit(enabled=enabled, requests_per_second=rps, burst=burst)


def read_deploy(r: Reader, app: App, p: Platform) -> Deploy:
    batch = r.integer("batchSize", 1, 1, 100) if p.takes(r, "batchSize") else 1
    health = r.string("healthPath", "/healthz", pattern=r"/[A-Za-z0-9._~/-]*",
                      expect='a URL path like "/healthz"', check=check_health_path)
    if health and app.static_url and (health + "/").startswith(app.static_url + "/"):
        r.error("healthPath", f"is under app.staticUrl ({app.static_url}), so the front would serve "
                              "it from disk and never ask the app")
    timeout = r.integer("healthTimeout", 60, 5, 900, unit="seconds") if p.takes(r, "healthTimeout") else 60
    kept = r.integer("releasesKept", 5, 2, 50) if p.takes(r, "releasesKept") else 5
    # None: derived from the stack's balancer (stack/balancer.py); 0: never drain.
    drain = r.integer("drainSeconds", None, 0, 600, unit="seconds") if p.takes(r, "drainSeconds") else None
    undrain = (r.integer("undrainSeconds", None, 0, 600, unit="seconds")
               if p.takes(r, "undrainSeconds") else None)
    r.finish()
    return Deploy(batch_size=batch, health_path=health, health_timeout=timeout, releases_kept=kept,
                  drain_seconds=drain, undrain_seconds=undrain)
