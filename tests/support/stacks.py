"""Every stack configuration the render and host-tool tests check.

- the project's stack files (Pulumi.*.yaml) and every example (examples/*.yaml), found by glob,
  so a new file is checked without editing a test;
- VARIANTS, built here, for what the files may not cover: HAProxy as the front, TLS on the hosts,
  rate limiting, www redirects, Gunicorn on a loopback TCP port, fixed workers (Gunicorn's and the
  front's), each worker class, an app factory entry, and an environment value full of shell
  metacharacters.

All load offline (`settings.load(..., offline=True)`): the SSH private key and other deploy-only
values are not needed to render.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from stack import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
FACTORY_APP = Path(__file__).resolve().parent / "factory_app"

# An environment value with everything an environment file must keep: spaces, both quotes, $, #,
# a backslash and a backtick.
TRICKY_ENV_VALUE = """it's "quoted" $HOME ${PATH} # not a comment \\ `id`"""
TRICKY_ENV_LINE = r'''TRICKY="it's \"quoted\" \$HOME \${PATH} # not a comment \\ \`id\`"'''

# A CA certificate (never trusted anywhere: its key was thrown away) for tls.acmeCaBundle.
TEST_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUa4pn3Qv2WSE/Xdtin3HAEOavi00wCgYIKoZIzj0EAwIw
IzEhMB8GA1UEAwwYZmxhc2stc3RhY2sgdGVzdCBBQ01FIENBMB4XDTI2MTEyNDA4
MTUxOFoXDTM2MTEyMTA4MTUxOFowIzEhMB8GA1UEAwwYZmxhc2stc3RhY2sgdGVz
dCBBQ01FIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbE0t7n644M2HqnRJ
2pG0uwyGfbzcPsiDOUE3X0P2iWvrju6EopKQwdoQ5uNd1qIfbDOUtJyPRAXFBrEC
6ZnyRaNTMFEwHQYDVR0OBBYEFPebZ12H6rFUcFXLH+s5/hvqmf/ZMB8GA1UdIwQY
MBaAFPebZ12H6rFUcFXLH+s5/hvqmf/ZMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI
zj0EAwIDRwAwRAIgA/EN2hYIvNqfpdIapx25OVOhtGJ4LC72l/9acUjlpqsCIAni
SR1NQEmnF/ivwKVIk7eHAH6+aOSG+Svq4HJk0cN1
-----END CERTIFICATE-----
"""

_EXISTING = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]}, "ssh": {"user": "deploy"}}


def _with(base: Mapping[str, Any], **sections: Any) -> dict[str, Any]:
    raw = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for key, value in sections.items():
        if isinstance(value, Mapping) and isinstance(raw.get(key), Mapping):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


VARIANTS: dict[str, dict[str, Any]] = {
    # Public HAProxy terminating TLS, www redirect, rate limit, sync workers, fixed counts.
    "haproxy-tls": _with(
        _EXISTING, front="haproxy", frontWorkers=2, domain={"name": "example.com"},
        tls={"enabled": True, "email": "ops@example.com"},
        rateLimit={"enabled": True, "requestsPerSecond": 5, "burst": 10},
        app={"workers": 3, "workerClass": "sync"}),
    # HAProxy behind a cloud load balancer, Gunicorn on loopback TCP.
    "haproxy-behind-lb": {
        "platform": "digitalocean", "region": "fra1", "front": "haproxy",
        "domain": {"name": "example.org"}, "rateLimit": {"enabled": True},
        "app": {"listen": "127.0.0.1:8000"}},
    # HAProxy terminating TLS behind the user's own proxies (direct TLS clients must not be told
    # their scheme is http).
    "haproxy-tls-behind-proxy": _with(
        _EXISTING, hosts={"addresses": ["203.0.113.10"], "trustedProxies": ["192.0.2.0/24"]},
        front="haproxy", domain={"name": "example.com"},
        tls={"enabled": True, "email": "ops@example.com"}),
    # Plain public HAProxy, no domain, gevent workers on IPv6 loopback.
    "haproxy-plain": _with(_EXISTING, front="haproxy",
                           app={"listen": "[::1]:8000", "workerClass": "gevent"}),
    # Nginx terminating TLS on an existing server, rate limit, sync workers, small bodies, a
    # fixed Nginx worker count.
    "nginx-tls-existing": _with(
        _EXISTING, frontWorkers=3, domain={"name": "example.com"},
        tls={"enabled": True, "email": "ops@example.com"}, rateLimit={"enabled": True},
        app={"workers": 2, "workerClass": "sync", "maxBodySize": "1m"}),
    # HAProxy terminating TLS with certificates from a private ACME server (its CA trusted).
    "haproxy-tls-private-acme": _with(
        _EXISTING, front="haproxy", domain={"name": "example.com", "wwwRedirect": False},
        tls={"enabled": True, "email": "ops@example.com", "acmeDirectory": "https://acme.internal:9000/dir",
             "acmeCaBundle": TEST_CA_PEM}, rateLimit={"enabled": True}),
    # A single cloud host (no load balancer) terminating TLS, no www redirect, gevent workers.
    "nginx-tls-single-host": {
        "platform": "digitalocean", "region": "fra1", "loadBalancer": False, "hosts": {"count": 1},
        "domain": {"name": "example.net", "wwwRedirect": False},
        "tls": {"enabled": True, "email": "ops@example.net"}, "app": {"workerClass": "gevent"}},
    # AWS behind the ALB: domain, rate limit, loopback TCP, big bodies, worker recycling.
    "nginx-aws-lb": {
        "platform": "aws", "region": "eu-west-1",
        "domain": {"name": "example.com", "route53Zone": "example.com"},
        "rateLimit": {"enabled": True, "requestsPerSecond": 50, "burst": 100},
        "app": {"listen": "127.0.0.1:8000", "maxBodySize": "50m", "maxRequests": 1000}},
    # Existing servers behind the user's own proxies; an env value full of metacharacters.
    "nginx-trusted-proxies": _with(
        _EXISTING, hosts={"addresses": ["203.0.113.10"], "trustedProxies": ["192.0.2.0/24"]},
        domain={"name": "example.com"}, app={"env": {"TRICKY": TRICKY_ENV_VALUE, "PLAIN": "x"}}),
    # An app built by a factory with arguments (tests/support/factory_app).
    "nginx-factory": _with(
        _EXISTING, app={"path": str(FACTORY_APP.relative_to(REPO_ROOT)),
                        "entry": "factory:create_app('shop', debug=False)",
                        "workerClass": "gthread", "threads": 8}),
    # Every section set, pinned byte for byte in tests/golden/variant-complete (an own name, a
    # dash in it, TLS, www, rate limit, trusted proxies, env, fixed workers).
    "complete": _with(
        _EXISTING,
        hosts={"addresses": ["203.0.113.10", "203.0.113.11"], "trustedProxies": ["198.51.100.0/28"]},
        domain={"name": "example.com", "wwwRedirect": True},
        tls={"enabled": True, "email": "ops@example.com"},
        rateLimit={"enabled": True, "requestsPerSecond": 20, "burst": 40},
        deploy={"healthPath": "/healthz", "batchSize": 1},
        app={"name": "rocket-shop", "env": {"APP_ENV": "production", "TRICKY": TRICKY_ENV_VALUE,
                                            "REDIS_URL": "redis://10.0.0.5:6379/0"},
             "workers": 4, "workerClass": "gthread", "threads": 2, "timeout": 60,
             "gracefulTimeout": 20, "keepalive": 10, "maxRequests": 5000, "maxBodySize": "25m"},
        # Words that quoting must carry: a reference inside a word, spaces, quotes, %, non-ASCII.
        processes={"worker": {"command": """rq worker --url=$REDIS_URL "high prio" 'it"s' 100% """
                                         """naïve 'a\\b'""",
                              "count": 3, "stopTimeout": 120, "env": {"RQ_LOG": "50% $HOME"}},
                   "clock": {"command": "python -m shop.clock", "on": "first"}},
        schedules={"digest": {"command": "flask --app shop send-digest --since ${APP_ENV}",
                              "onCalendar": "Mon..Fri *-*-* 02:30:00 UTC", "timeout": 900,
                              "randomDelay": 60}}),
}


@dataclass(frozen=True)
class Case:
    """One configuration: a stack file (`path`) or a variant's raw config (`raw`)."""

    id: str
    path: Path | None = None
    raw: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def stack(self) -> str:
        if self.path is None:
            return self.id.split(":", 1)[1]
        return self.path.stem.removeprefix("Pulumi.")

    def load(self) -> settings.Settings:
        return _load(self)


@cache
def _load(case: Case) -> settings.Settings:
    raw = settings.read_stack_file(case.path) if case.path is not None else case.raw
    return settings.load(raw, stack=case.stack, project_dir=REPO_ROOT, offline=True)


def stack_file_cases() -> list[Case]:
    files = sorted(REPO_ROOT.glob("Pulumi.*.yaml"))
    return [Case(id=f"stack:{p.stem.removeprefix('Pulumi.')}", path=p) for p in files]


def example_cases() -> list[Case]:
    """The examples of platforms with hosts: a Heroku stack receives no host files (its files
    are the release archive's, tests/test_dyno.py)."""
    return [Case(id=f"example:{p.stem}", path=p) for p in sorted(EXAMPLES.glob("*.yaml"))
            if not p.stem.startswith("heroku-")]


def variant_cases() -> list[Case]:
    return [Case(id=f"variant:{name}", raw=raw) for name, raw in VARIANTS.items()]


def all_cases() -> list[Case]:
    return stack_file_cases() + example_cases() + variant_cases()


def with_front(front: str) -> list[Case]:
    """The cases whose front is `front`; a config that does not load is in every list, so it
    fails loudly in each test instead of breaking collection."""
    def front_of(case: Case) -> str | None:
        try:
            return case.load().front
        except Exception:
            return None

    return [c for c in all_cases() if front_of(c) in (front, None)]


def case(case_id: str) -> Case:
    return next(c for c in all_cases() if c.id == case_id)
