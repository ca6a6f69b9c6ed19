"""Settings: a known-good config per platform, changed in one place per case.

Every invalid case names the key path its error must start with (and a fragment of the message),
so a message that blames the wrong key, or a bad value that slips through, fails here.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import ipaddress
import re
import types
import typing
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from conftest import EXAMPLES, REPO_ROOT, load_example

from stack import settings
from stack.settings import Reader, Secret, SettingsError
from stack.settings.platforms import HOST_SECTIONS

PREFIX = "flask-stack:"
PLATFORMS = ("digitalocean", "aws", "existing", "heroku")
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDiDpa+Q74+gxFHdYkOMZHcBd7Av8W6x+bGgQA6CO2Df "
              "deploy@example.com")
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"
DATABASE_URL = "postgresql://app:pw@db.example.com:5432/app"
DELETE = object()  # a change that removes the key


# -- the known-good configs -------------------------------------------------------------------
def good(platform: str) -> dict[str, Any]:
    """A complete, valid config for `platform`; every call returns a fresh copy."""
    app = {
        "name": "rocket", "path": "app", "entry": "rocket:app",
        "env": {"APP_ENV": "production", "GREETING": "hello"},
        "secretEnv": {"SECRET_KEY": Secret("0123456789abcdef")},
        "workers": 3, "workerClass": "gthread", "threads": 4, "timeout": 30, "gracefulTimeout": 30,
        "keepalive": 20, "maxRequests": 1000, "listen": "unix", "staticUrl": "/static",
        "staticDir": "static", "maxBodySize": "10m", "releaseCommand": "flask db upgrade",
    }
    common = {
        "platform": platform,
        "app": app,
        "domain": {"name": "example.com", "wwwRedirect": True},
        "front": "nginx",
        "rateLimit": {"enabled": True, "requestsPerSecond": 10, "burst": 20},
        "deploy": {"batchSize": 1, "healthPath": "/healthz", "healthTimeout": 60, "releasesKept": 5},
        "ephemeral": False,
    }
    ssh = {"port": 22, "privateKey": Secret(PRIVATE_KEY)}
    if platform == "heroku":  # no front, no hosts to log in to, no rollout batches
        app = {k: v for k, v in app.items() if k not in ("listen", "maxBodySize")}
        return copy.deepcopy({
            **{k: v for k, v in common.items() if k not in ("front", "rateLimit")},
            "app": app, "region": "eu", "deploy": {"healthPath": "/healthz"},
            "hosts": {"count": 3, "size": "standard-2x", "python": "3.12"},
            "database": {"size": "premium-0", "engineVersion": "16", "highAvailability": True},
            "heroku": {"appName": "rocket-prod", "team": "acme", "stack": "heroku-24"},
        })
    if platform == "existing":
        return copy.deepcopy({
            **common,
            "hosts": {"addresses": ["203.0.113.10", "203.0.113.11"], "image": "debian-12"},
            "database": {"url": Secret(DATABASE_URL)},
            "tls": {"enabled": True, "email": "ops@example.com"},
            "ssh": {**ssh, "user": "deploy", "hostKey": PUBLIC_KEY,
                    "bastion": {"host": "bastion.example.com", "user": "deploy", "port": 2222}},
        })
    cloud = {
        **common,
        "loadBalancer": True,
        "tls": {"enabled": False, "email": "ops@example.com"},
        "ssh": {**ssh, "publicKey": PUBLIC_KEY, "adminCidrs": ["203.0.113.7/32"]},
        "network": {"vpcCidr": "10.20.0.0/16"},
    }
    database = {"engineVersion": "16", "highAvailability": True, "name": "app", "user": "app"}
    if platform == "aws":
        return copy.deepcopy({
            **cloud, "region": "eu-west-1",
            "domain": {**common["domain"], "route53Zone": "example.com", "dnsRecords": True},
            "hosts": {"count": 3, "size": "t3.small", "image": "debian-12", "diskGb": 30},
            "database": {**database, "size": "db.t4g.small", "storageGb": 50,
                         "backupRetentionDays": 14},
            "network": {**cloud["network"], "zones": 3},
            "alerts": {"email": ["ops@example.com"]},  # prod needs someone to hear an alarm
        })
    return copy.deepcopy({
        **cloud, "region": "fra1", "doProject": True,
        "domain": {**common["domain"], "dnsRecords": True},
        "hosts": {"count": 3, "size": "s-2vcpu-2gb", "image": "debian-12"},
        "database": {**database, "size": "db-s-2vcpu-4gb"},
    })


def minimal(platform: str) -> dict[str, Any]:
    """The fewest keys a deployable config of `platform` needs."""
    if platform == "heroku":
        return {"platform": "heroku"}
    if platform == "existing":
        return {"platform": "existing",
                "hosts": {"addresses": ["203.0.113.10"], "hostKeys": {"203.0.113.10": PUBLIC_KEY}},
                "ssh": {"user": "deploy", "privateKey": Secret(PRIVATE_KEY)}}
    return {"platform": platform, "region": "fra1" if platform == "digitalocean" else "eu-west-1",
            "ssh": {"publicKey": PUBLIC_KEY, "privateKey": Secret(PRIVATE_KEY),
                    "adminCidrs": ["203.0.113.7/32"]}}


def changed(config: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`config` with dotted paths set (or removed with DELETE); missing objects are created."""
    config = copy.deepcopy(config)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = config
        for name in parents:
            if not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return config


def load(raw: dict[str, Any], *, stack: str = "prod", offline: bool = False,
         secret_keys: frozenset[str] = frozenset()) -> settings.Settings:
    return settings.load(raw, stack=stack, project_dir=REPO_ROOT, secret_keys=secret_keys,
                         offline=offline)


def errors_of(raw: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(raw, **kwargs)
    return caught.value.errors


def assert_error(platform: str, key: str, changes: dict[str, Any], fragment: str = "",
                 also: tuple[str, ...] = (), **kwargs: Any) -> list[str]:
    """Change the good config of `platform` in one place; the load must fail with an error that
    starts with the full key path `flask-stack:<key>:` and contains `fragment`, and with no
    error about any other key (except those in `also`)."""
    errors = errors_of(changed(good(platform), changes), **kwargs)
    head = f"{PREFIX}{key}:"
    named = [e for e in errors if e.startswith(head)]
    assert named, f"no error starts with {head!r}; got:\n" + "\n".join(errors)
    assert any(fragment in e for e in named), (
        f"no error for {key} says {fragment!r}; got:\n" + "\n".join(named))
    heads = (head, *(f"{PREFIX}{k}" for k in also))
    stray = [e for e in errors if not e.startswith(heads)]
    assert not stray, "errors about keys that were not changed:\n" + "\n".join(stray)
    return errors


# -- invalid configs: one change, one named key ----------------------------------------------
def case(id: str, platform: str, key: str, changes: dict[str, Any], fragment: str = "",
         **kwargs: Any) -> Any:
    return pytest.param(platform, key, changes, fragment, kwargs, id=id)


DO, AWS, EXISTING, HEROKU = PLATFORMS
INVALID = [
    # platform and region
    case("platform-missing", DO, "platform", {"platform": DELETE}, "is required"),
    case("platform-unknown", DO, "platform", {"platform": "gcp"}, 'got "gcp"'),
    case("platform-not-a-string", AWS, "platform", {"platform": ["aws"]}, "got a list"),
    case("do-region-missing", DO, "region", {"region": DELETE}, "is required"),
    case("do-region-is-aws", DO, "region", {"region": "eu-west-1"}, "DigitalOcean region"),
    case("aws-region-is-do", AWS, "region", {"region": "fra1"}, "AWS region"),
    case("existing-region-set", EXISTING, "region", {"region": "fra1"}, "no meaning on platform existing"),
    # hosts
    case("count-word", DO, "hosts.count", {"hosts.count": "two"}, 'from 1 to 100, got "two"'),
    case("count-zero", AWS, "hosts.count", {"hosts.count": 0}, "from 1 to 100, got 0"),
    case("count-too-many", DO, "hosts.count", {"hosts.count": 101}, "got 101"),
    case("count-fraction", DO, "hosts.count", {"hosts.count": 2.5}, "got 2.5"),
    case("count-bool", DO, "hosts.count", {"hosts.count": True}, "got true"),
    case("python-minor-only", EXISTING, "hosts.python", {"hosts.python": "3.11"},
         'exact python3 version like "3.11.4"'),
    case("python-a-float", EXISTING, "hosts.python", {"hosts.python": 3.11}, "got 3.11"),
    case("python-two", AWS, "hosts.python", {"hosts.python": "2.7.18"}, 'got "2.7.18"'),
    case("python-words", DO, "hosts.python", {"hosts.python": "3.11.2+deb12u1"}, "image's, 3.11.2"),
    case("count-negative-text", AWS, "hosts.count", {"hosts.count": "-1"}, 'got "-1"'),
    case("do-size-is-ec2", DO, "hosts.size", {"hosts.size": "t3.small"}, "droplet size slug"),
    case("aws-size-is-droplet", AWS, "hosts.size", {"hosts.size": "s-1vcpu-1gb"}, "EC2 instance type"),
    case("existing-size-set", EXISTING, "hosts.size", {"hosts.size": "s-1vcpu-1gb"}, "no meaning"),
    case("image-unknown", DO, "hosts.image", {"hosts.image": "centos-7"}, "one of debian-12"),
    case("addresses-missing", EXISTING, "hosts.addresses", {"hosts.addresses": DELETE},
         "is required on platform existing"),
    case("addresses-empty", EXISTING, "hosts.addresses", {"hosts.addresses": []}, "is required"),
    case("addresses-not-a-list", EXISTING, "hosts.addresses", {"hosts.addresses": {"a": 1}},
         "must be a list"),
    case("address-bad", EXISTING, "hosts.addresses[1]",
         {"hosts.addresses": ["203.0.113.10", "not an address!"]}, "expected an IP address or host name"),
    case("address-number", EXISTING, "hosts.addresses[0]", {"hosts.addresses": [42]}, "got 42"),
    case("addresses-duplicate", EXISTING, "hosts.addresses",
         {"hosts.addresses": ["203.0.113.10", " 203.0.113.10"]}, "the same server twice"),
    case("existing-count-disagrees", EXISTING, "hosts.count", {"hosts.count": 5},
         "taken from hosts.addresses"),
    case("trusted-proxies-on-cloud", AWS, "hosts.trustedProxies",
         {"hosts.trustedProxies": ["10.0.0.0/8"]}, "only for platform existing"),
    case("trusted-proxies-world", EXISTING, "hosts.trustedProxies[0]",
         {"hosts.trustedProxies": ["0.0.0.0/0"]}, "forge X-Forwarded-For"),
    case("trusted-proxies-bad-cidr", EXISTING, "hosts.trustedProxies[0]",
         {"hosts.trustedProxies": ["198.51.100.0/33"]}, "expected a CIDR"),
    # database
    case("db-engine-too-old", DO, "database.engineVersion", {"database.engineVersion": "12"},
         '"13" to "17"'),
    case("db-engine-float", AWS, "database.engineVersion", {"database.engineVersion": 16.1}, "got 16.1"),
    case("aws-db-size-is-do", AWS, "database.size", {"database.size": "db-s-1vcpu-1gb"},
         "RDS instance class"),
    case("do-db-size-is-rds", DO, "database.size", {"database.size": "db.t4g.micro"},
         "database size slug"),
    case("aws-storage-too-small", AWS, "database.storageGb", {"database.storageGb": 10},
         "from 20 to 65536 GB"),
    case("do-storage-set", DO, "database.storageGb", {"database.storageGb": 50}, "set by database.size"),
    case("backups-zero", AWS, "database.backupRetentionDays", {"database.backupRetentionDays": 0},
         "from 1 to 35 days"),
    case("backups-on-do", DO, "database.backupRetentionDays", {"database.backupRetentionDays": 14},
         "keeps 7 days"),
    case("disk-on-do", DO, "hosts.diskGb", {"hosts.diskGb": 50}, "only for platform aws"),
    case("disk-too-small", AWS, "hosts.diskGb", {"hosts.diskGb": 4}, "from 8 to 16384 GB"),
    case("zones-one", AWS, "network.zones", {"network.zones": 1}, "from 2 to 6"),
    case("zones-on-do", DO, "network.zones", {"network.zones": 2}, "only for platform aws"),
    case("do-project-on-aws", AWS, "doProject", {"doProject": True}, "only for platform digitalocean"),
    case("aws-domain-without-certificate", AWS, "domain.name", {"domain.route53Zone": DELETE,
         "domain.dnsRecords": DELETE}, "needs a certificate"),
    case("aws-arn-and-zone", AWS, "domain.certificateArn", {"domain.certificateArn":
         "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f"},
         "keep one"),
    case("aws-arn-other-region", AWS, "domain.certificateArn", {"domain.route53Zone": DELETE,
         "domain.dnsRecords": DELETE, "domain.certificateArn":
         "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f"},
         "its own region"),
    case("aws-arn-garbage", AWS, "domain.certificateArn", {"domain.route53Zone": DELETE,
         "domain.dnsRecords": DELETE, "domain.certificateArn": "my-cert"}, "ACM certificate ARN"),
    case("aws-zone-not-holding-domain", AWS, "domain.route53Zone", {"domain.route53Zone": "example.org"},
         "does not hold"),
    case("aws-zone-without-domain", AWS, "domain.route53Zone", {"domain.name": DELETE,
         "domain.dnsRecords": DELETE}, "needs domain.name"),
    case("do-arn", DO, "domain.certificateArn", {"domain.certificateArn": "arn:x"}, "only for platform aws"),
    case("existing-dns-records", EXISTING, "domain.dnsRecords", {"domain.dnsRecords": True},
         "no meaning on platform existing"),
    case("backups-too-long", AWS, "database.backupRetentionDays", {"database.backupRetentionDays": 36},
         "got 36"),
    case("db-ha-word", AWS, "database.highAvailability", {"database.highAvailability": "yes"},
         "true or false"),
    case("db-user-reserved", AWS, "database.user", {"database.user": "rdsadmin"}, "is reserved"),
    case("db-user-pattern", DO, "database.user", {"database.user": "App User"}, "database user name"),
    case("db-name-pattern", DO, "database.name", {"database.name": "my-db"}, "database name"),
    case("db-url-on-cloud", DO, "database.url", {"database.url": Secret(DATABASE_URL)},
         "made by the program"),
    case("db-url-plain-text", EXISTING, "database.url", {"database.url": DATABASE_URL},
         "stored in plain text"),
    case("db-url-bad-scheme", EXISTING, "database.url", {"database.url": Secret("mysql://a:b@h/db")},
         "must start with postgresql://"),
    case("db-size-on-existing", EXISTING, "database.size", {"database.size": "db-s-1vcpu-1gb"},
         "is only for platforms digitalocean, aws and heroku"),
    # app
    case("app-name-pattern", DO, "app.name", {"app.name": "My App"}, "short lower-case name"),
    case("app-name-reserved", DO, "app.name", {"app.name": "nginx"},
         "already the name of something on the hosts"),
    case("app-path-missing-dir", DO, "app.path", {"app.path": "no-such-dir"}, "is not a directory"),
    case("app-path-without-requirements", DO, "app.path", {"app.path": "app/static"},
         "no requirements.txt", also=("app.entry", "app.staticDir")),
    case("app-path-empty-is-root", DO, "app.entry", {"app.path": ""}, "module 'rocket' not found",
         also=("app.path", "app.staticDir")),
    case("entry-no-colon", DO, "app.entry", {"app.entry": "rocket"}, '"module:attribute"'),
    case("entry-bad-python", DO, "app.entry", {"app.entry": "rocket:app("}, "got"),
    case("entry-module-not-found", DO, "app.entry", {"app.entry": "missing:app"},
         "module 'missing' not found"),
    case("entry-non-literal-args", DO, "app.entry", {"app.entry": "rocket:create(os.environ)"},
         "must be literals"),
    case("entry-unhashable-literal", DO, "app.entry", {"app.entry": "rocket:create({[]: 1})"},
         "must be literals"),
    case("entry-star-kwargs", DO, "app.entry", {"app.entry": "rocket:create(**{'a': 1})"},
         "must be literals"),
    case("env-key-digit", DO, "app.env.1BAD", {"app.env.1BAD": "x"}, "not a valid environment variable"),
    case("env-key-dash", DO, "app.env.MY-VAR", {"app.env.MY-VAR": "x"}, "letters, digits and _"),
    case("env-reserved", DO, "app.env.DATABASE_URL", {"app.env.DATABASE_URL": "postgresql://x"},
         "the program sets it"),
    case("env-reserved-path", AWS, "app.env.PATH", {"app.env.PATH": "/usr/bin"}, "systemd sets it"),
    case("env-multi-line", DO, "app.env.GREETING", {"app.env.GREETING": "hello\nworld"}, "one line"),
    case("env-value-object", DO, "app.env.GREETING", {"app.env.GREETING": {"a": 1}}, "got an object"),
    case("env-value-secret", DO, "app.env.GREETING", {"app.env.GREETING": Secret("x")},
         "secrets go in app.secretEnv"),
    case("env-not-an-object", DO, "app.env", {"app.env": "FOO=bar"}, "NAME: value pairs"),
    case("secret-env-plain-text", DO, "app.secretEnv.SECRET_KEY", {"app.secretEnv.SECRET_KEY": "abc"},
         "stored in plain text"),
    case("secret-env-reserved", AWS, "app.secretEnv.DATABASE_URL",
         {"app.secretEnv.DATABASE_URL": Secret(DATABASE_URL)}, "the program sets it"),
    case("secret-env-multi-line", DO, "app.secretEnv.SECRET_KEY",
         {"app.secretEnv.SECRET_KEY": Secret("a\nb")}, "must be one line"),
    case("secret-env-clash", DO, "app.secretEnv", {"app.secretEnv.GREETING": Secret("hi")},
         "GREETING also set in app.env"),
    case("front-workers-zero", DO, "frontWorkers", {"frontWorkers": 0}, "from 1 to 64"),
    case("front-workers-word", AWS, "frontWorkers", {"frontWorkers": "half"}, 'got "half"'),
    case("workers-zero", DO, "app.workers", {"app.workers": 0}, "from 1 to 64"),
    case("workers-word", AWS, "app.workers", {"app.workers": "many"}, 'got "many"'),
    case("worker-class-unknown", DO, "app.workerClass", {"app.workerClass": "eventlet"},
         "gthread, sync, gevent"),
    case("threads-with-sync", DO, "app.threads", {"app.workerClass": "sync", "app.threads": 8},
         "only applies to workerClass gthread"),
    case("threads-too-many", DO, "app.threads", {"app.threads": 65}, "from 1 to 64"),
    case("timeout-zero", DO, "app.timeout", {"app.timeout": 0}, "from 1 to 3600 seconds"),
    case("graceful-timeout-word", DO, "app.gracefulTimeout", {"app.gracefulTimeout": "long"}, "got"),
    case("keepalive-negative", DO, "app.keepalive", {"app.keepalive": -1}, "from 0 to 3600"),
    case("max-requests-float", DO, "app.maxRequests", {"app.maxRequests": 0.5}, "whole number"),
    case("listen-all-interfaces", DO, "app.listen", {"app.listen": "0.0.0.0:8000"}, "loopback only"),
    case("listen-private-address", EXISTING, "app.listen", {"app.listen": "10.0.0.5:8000"},
         "loopback only"),
    case("listen-privileged-port", DO, "app.listen", {"app.listen": "127.0.0.1:80"}, "expected"),
    case("listen-host-name", DO, "app.listen", {"app.listen": "localhost:8000"}, "expected"),
    case("listen-unicode-digits", DO, "app.listen", {"app.listen": "127.0.0.1:8²"}, "expected"),
    case("listen-ipv6-unbracketed", DO, "app.listen", {"app.listen": "::1:8000"}, '"[::1]:8000"'),
    case("static-url-no-slash", DO, "app.staticUrl", {"app.staticUrl": "static/"}, "URL path"),
    case("static-url-trailing-slash", DO, "app.staticUrl", {"app.staticUrl": "/static/"}, "no trailing"),
    case("static-dir-dotdot", DO, "app.staticDir", {"app.staticDir": "../etc"}, "a folder inside the app"),
    case("static-dir-absolute", DO, "app.staticDir", {"app.staticDir": "/etc"}, "directory inside"),
    case("static-dir-missing", DO, "app.staticDir", {"app.staticDir": "assets"}, "not a directory"),
    case("body-size-words", DO, "app.maxBodySize", {"app.maxBodySize": "10 MB"}, 'like "10m"'),
    case("body-size-too-big", DO, "app.maxBodySize", {"app.maxBodySize": "5g"}, "at most 4g"),
    case("release-command-multi-line", DO, "app.releaseCommand",
         {"app.releaseCommand": "flask db upgrade\nrm -rf /"}, "one line"),
    # domain and tls
    case("domain-not-a-name", DO, "domain.name", {"domain.name": "not a domain"}, "domain name"),
    case("domain-www", DO, "domain.name", {"domain.name": "www.example.com"}, 'bare domain ("example.com")'),
    case("tls-without-domain", EXISTING, "tls.enabled", {"domain.name": DELETE},
         "needs domain.name"),
    case("tls-behind-load-balancer", AWS, "tls.enabled", {"tls.enabled": True}, "single-host mode"),
    case("tls-without-email", EXISTING, "tls.email", {"tls.email": DELETE}, "is required when tls.enabled"),
    case("tls-email-bad", EXISTING, "tls.email", {"tls.email": "ops"}, "email address"),
    case("tls-acme-http", EXISTING, "tls.acmeDirectory",
         {"tls.acmeDirectory": "http://acme.example.com/directory"}, "https://"),
    case("tls-ca-bundle-not-pem", EXISTING, "tls.acmeCaBundle",
         {"tls.acmeDirectory": "https://acme.internal/dir", "tls.acmeCaBundle": "MIIB..."},
         "PEM certificates"),
    case("tls-ca-bundle-with-a-key", EXISTING, "tls.acmeCaBundle",
         {"tls.acmeDirectory": "https://acme.internal/dir",
          "tls.acmeCaBundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                              "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"},
         "never a private key"),
    case("tls-ca-bundle-for-lets-encrypt", EXISTING, "tls.acmeCaBundle",
         {"tls.acmeCaBundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
         "private ACME server"),
    # rate limit
    case("rate-zero", DO, "rateLimit.requestsPerSecond", {"rateLimit.requestsPerSecond": 0},
         "from 1 to 100000"),
    case("rate-burst-negative", DO, "rateLimit.burst", {"rateLimit.burst": -5}, "from 0 to 1000000"),
    case("rate-enabled-word", DO, "rateLimit.enabled", {"rateLimit.enabled": "sometimes"},
         "true or false"),
    # deploy
    case("batch-zero", DO, "deploy.batchSize", {"deploy.batchSize": 0}, "from 1 to 100"),
    case("health-path-relative", DO, "deploy.healthPath", {"deploy.healthPath": "healthz"}, "URL path"),
    case("health-path-query", DO, "deploy.healthPath", {"deploy.healthPath": "/healthz?full=1"},
         "URL path"),
    case("health-path-static", DO, "deploy.healthPath", {"deploy.healthPath": "/static/ok.txt"},
         "under app.staticUrl"),
    case("health-path-is-static", DO, "deploy.healthPath", {"deploy.healthPath": "/static"},
         "under app.staticUrl"),
    case("health-timeout-short", DO, "deploy.healthTimeout", {"deploy.healthTimeout": 1},
         "from 5 to 900 seconds"),
    case("releases-kept-one", DO, "deploy.releasesKept", {"deploy.releasesKept": 1}, "from 2 to 50"),
    # ssh
    case("ssh-user-pattern", DO, "ssh.user", {"ssh.user": "Root!"}, "login name"),
    case("ssh-port-too-big", DO, "ssh.port", {"ssh.port": 70000}, "from 1 to 65535"),
    case("public-key-garbage", DO, "ssh.publicKey", {"ssh.publicKey": "not a key"}, "OpenSSH public key"),
    case("public-key-bad-base64", DO, "ssh.publicKey", {"ssh.publicKey": "ssh-ed25519 AAAA!!!! me"},
         "base64 part is damaged"),
    case("public-key-wrong-type", AWS, "ssh.publicKey",
         {"ssh.publicKey": PUBLIC_KEY.replace("ssh-ed25519", "ssh-rsa")}, "does not match"),
    case("public-key-two-lines", DO, "ssh.publicKey", {"ssh.publicKey": PUBLIC_KEY + "\n" + PUBLIC_KEY},
         "must be one line"),
    case("public-key-is-private", DO, "ssh.publicKey", {"ssh.publicKey": PRIVATE_KEY}, "is a private key"),
    case("private-key-plain-text", DO, "ssh.privateKey", {"ssh.privateKey": PRIVATE_KEY},
         "stored in plain text"),
    case("private-key-not-pem", AWS, "ssh.privateKey", {"ssh.privateKey": Secret("hunter2")},
         "not a PEM/OpenSSH private key"),
    case("private-key-missing", EXISTING, "ssh.privateKey", {"ssh.privateKey": DELETE}, "is required"),
    case("admin-cidrs-world", DO, "ssh.adminCidrs[0]", {"ssh.adminCidrs": ["0.0.0.0/0"]},
         "whole internet"),
    case("admin-cidrs-world-ipv6", AWS, "ssh.adminCidrs[1]", {"ssh.adminCidrs": ["203.0.113.7/32", "::/0"]},
         "whole internet"),
    case("admin-cidrs-bad-prefix", DO, "ssh.adminCidrs[0]", {"ssh.adminCidrs": ["203.0.113.7/33"]},
         "expected a CIDR"),
    case("admin-cidrs-host-bits", DO, "ssh.adminCidrs[0]", {"ssh.adminCidrs": ["203.0.113.7/24"]},
         "host bits set"),
    case("admin-cidrs-empty-on-cloud", AWS, "ssh.adminCidrs", {"ssh.adminCidrs": []}, "is empty"),
    case("admin-cidrs-not-a-list", DO, "ssh.adminCidrs", {"ssh.adminCidrs": "203.0.113.7/32"},
         "must be a list"),
    case("host-key-garbage", EXISTING, "ssh.hostKey", {"ssh.hostKey": "AAAA"}, "OpenSSH public key"),
    case("host-keys-missing", EXISTING, "hosts.hostKeys", {"ssh.hostKey": DELETE},
         "has no SSH host key for 203.0.113.10, 203.0.113.11, so the deploy could not tell the server "
         "from an impostor"),
    case("host-keys-one-missing", EXISTING, "hosts.hostKeys",
         {"ssh.hostKey": DELETE, "hosts.hostKeys": {"203.0.113.10": PUBLIC_KEY}},
         "has no SSH host key for 203.0.113.11,"),
    case("host-keys-unlisted", EXISTING, 'hosts.hostKeys["203.0.113.12"]',
         {"hosts.hostKeys": {"203.0.113.12": PUBLIC_KEY}}, "is not in hosts.addresses"),
    case("host-keys-garbage", EXISTING, 'hosts.hostKeys["203.0.113.10"]',
         {"hosts.hostKeys": {"203.0.113.10": "AAAA"}}, "OpenSSH public key"),
    case("host-keys-not-a-string", EXISTING, 'hosts.hostKeys["203.0.113.10"]',
         {"hosts.hostKeys": {"203.0.113.10": 7}}, "public host key"),
    case("host-keys-private", EXISTING, 'hosts.hostKeys["203.0.113.10"]',
         {"hosts.hostKeys": {"203.0.113.10": PRIVATE_KEY}}, "is a private key"),
    case("host-keys-not-an-object", EXISTING, "hosts.hostKeys", {"hosts.hostKeys": ["x"]},
         "must be an object"),
    case("bastion-host-word", EXISTING, "ssh.bastion.host", {"ssh.bastion.host": "bad"}, "IP address"),
    case("bastion-host-missing", EXISTING, "ssh.bastion.host", {"ssh.bastion.host": DELETE}, "is required"),
    case("bastion-port-zero", EXISTING, "ssh.bastion.port", {"ssh.bastion.port": 0}, "from 1 to 65535"),
    case("bastion-not-an-object", DO, "ssh.bastion", {"ssh.bastion": "203.0.113.5"},
         "must be an object", also=("ssh.bastion.host",)),
    case("existing-ssh-user-missing", EXISTING, "ssh.user", {"ssh.user": DELETE},
         "is required on platform existing"),
    # network
    case("vpc-public-range", DO, "network.vpcCidr", {"network.vpcCidr": "8.8.0.0/16"}, "private IPv4"),
    case("vpc-too-big", AWS, "network.vpcCidr", {"network.vpcCidr": "10.0.0.0/8"}, "/16 to /24"),
    case("vpc-bad-prefix", DO, "network.vpcCidr", {"network.vpcCidr": "10.20.0.0/33"}, "private CIDR"),
    case("vpc-host-bits", DO, "network.vpcCidr", {"network.vpcCidr": "10.20.0.1/16"}, "host bits"),
    # platform-wide switches
    case("ephemeral-on-prod", DO, "ephemeral", {"ephemeral": True}, "never be true on the prod stack"),
    case("ephemeral-on-prod-as-text", AWS, "ephemeral", {"ephemeral": "true"}, "prod stack"),
    case("ephemeral-word", DO, "ephemeral", {"ephemeral": "maybe"}, "true or false"),
    case("load-balancer-on-existing", EXISTING, "loadBalancer", {"loadBalancer": True},
         "must be false on platform existing"),
    case("single-host-with-two", DO, "hosts.count", {"loadBalancer": False, "hosts.count": 2},
         "must be 1 when loadBalancer is false"),
    case("front-unknown", DO, "front", {"front": "apache"}, "nginx, haproxy"),
    # unknown keys and shapes
    case("unknown-top-level-key", DO, "regoin", {"regoin": "fra1"}, 'did you mean "region"?'),
    case("unknown-nested-key", AWS, "hosts.cuont", {"hosts.cuont": 2}, 'did you mean "count"?'),
    case("unknown-app-key", DO, "app.entrypoint", {"app.entrypoint": "rocket:app"}, 'did you mean "entry"?'),
    case("unknown-key-no-hint", DO, "deploy.zzz", {"deploy.zzz": 1}, "known keys: batchSize"),
    case("section-not-an-object", DO, "hosts", {"hosts": "3"}, "must be an object with keys below it"),
    case("section-a-list", AWS, "database", {"database": ["db.t4g.micro"]}, "got a list"),
]


@pytest.mark.parametrize(("platform", "key", "changes", "fragment", "kwargs"), INVALID)
def test_invalid_config_names_its_key(platform, key, changes, fragment, kwargs):
    assert_error(platform, key, changes, fragment, **kwargs)


def test_there_are_many_distinct_invalid_cases():
    ids = [p.id for p in INVALID]
    assert len(ids) == len(set(ids))
    changes = {repr(sorted((p.values[0], *c) for c in p.values[2].items())) for p in INVALID}
    assert len(changes) >= 45


def test_every_error_of_one_config_is_reported_together():
    raw = changed(good("digitalocean"), {
        "hosts.count": "two",
        "app.workers": 0,
        "app.listen": "0.0.0.0:8000",
        "ssh.port": 0,
        "domain.name": "www.example.com",
        "network.vpcCidr": "8.8.0.0/16",
        "rateLimit.burst": -1,
        "regoin": "fra1",
    })
    errors = errors_of(raw)
    for key in ("hosts.count", "app.workers", "app.listen", "ssh.port", "domain.name",
                "network.vpcCidr", "rateLimit.burst", "regoin"):
        assert any(e.startswith(f"{PREFIX}{key}:") for e in errors), (key, errors)
    assert len(errors) == 8, errors


def test_report_counts_and_lists_every_error():
    with pytest.raises(SettingsError) as caught:
        load(changed(good("aws"), {"hosts.count": 0, "ssh.port": 0}))
    report = caught.value.report("prod")
    assert report.splitlines()[0] == "stack 'prod': 2 config errors:"
    assert report.count("\n  - flask-stack:") == 2
    assert str(caught.value) == "\n".join(caught.value.errors)


def test_every_error_names_a_key_of_the_project():
    errors = errors_of(changed(good("existing"), {
        "region": "x", "hosts.addresses": ["bad address", "bad address"], "database.url": "x",
        "app.env.1X": "y", "ssh.bastion": [], "tls.email": DELETE, "unknown": 1,
    }))
    assert errors
    for error in errors:
        assert re.match(r"flask-stack:[A-Za-z0-9_.\[\]-]+: \S", error), error


# -- secrets ------------------------------------------------------------------------------------
SECRET = "s3cr3t-Zebra-4711-do-not-print"  # noqa: S105 - the value that must never be shown

LEAKY = [
    pytest.param(EXISTING, {"database.url": Secret(f"mysql://app:{SECRET}@db.example.com/app")}, (),
                 id="database-url-bad-scheme"),
    pytest.param(EXISTING, {"database.url": f"postgresql://app:{SECRET}@db/app"}, (),
                 id="database-url-plain"),
    pytest.param(EXISTING, {"database": f"postgresql://app:{SECRET}@db/app"}, ("database",),
                 id="database-section-is-the-secret"),
    pytest.param(EXISTING, {"database.url": f"mysql://{SECRET}"}, ("database",), id="database-secret-key"),
    pytest.param(DO, {"ssh.privateKey": Secret(SECRET)}, (), id="private-key-not-pem"),
    pytest.param(DO, {"ssh.privateKey": SECRET}, (), id="private-key-plain"),
    pytest.param(DO, {"ssh.privateKey": SECRET}, ("ssh",), id="private-key-in-secret-section"),
    pytest.param(DO, {"ssh": SECRET}, ("ssh",), id="ssh-section-is-the-secret"),
    pytest.param(DO, {"ssh": "{" + SECRET}, ("ssh",), id="ssh-section-broken-json"),
    pytest.param(AWS, {"ssh.publicKey": PRIVATE_KEY.replace("not-a-real-key", SECRET)}, (),
                 id="private-key-pasted-as-public-key"),
    pytest.param(AWS, {"ssh.hostKey": PRIVATE_KEY.replace("not-a-real-key", SECRET)}, (),
                 id="private-key-pasted-as-host-key"),
    pytest.param(DO, {"app.secretEnv.SECRET_KEY": Secret(SECRET + "\nmore")}, (), id="secret-env-multi-line"),
    pytest.param(DO, {"app.secretEnv.SECRET_KEY": SECRET}, (), id="secret-env-plain"),
    pytest.param(DO, {"app.secretEnv.DATABASE_URL": Secret(SECRET)}, (), id="secret-env-reserved"),
    pytest.param(DO, {"app.secretEnv.1BAD": Secret(SECRET)}, (), id="secret-env-bad-name"),
    pytest.param(DO, {"app.secretEnv.GREETING": Secret(SECRET)}, (), id="secret-env-clash"),
    pytest.param(DO, {"app.secretEnv.SECRET_KEY": {"nested": SECRET}}, (), id="secret-env-object"),
    pytest.param(DO, {"app.secretEnv": SECRET}, ("app",), id="secret-env-whole-string"),
    pytest.param(DO, {"app.secretEnv": f'["{SECRET}"]'}, ("app",), id="secret-env-json-list"),
    pytest.param(DO, {"app.secretEnv.K": [SECRET]}, ("app",), id="secret-env-list-value"),
    pytest.param(DO, {"app": SECRET}, ("app",), id="app-section-is-the-secret"),
]


@pytest.mark.parametrize(("platform", "changes", "secret_sections"), LEAKY)
def test_no_error_shows_a_secret(platform, changes, secret_sections):
    with pytest.raises(SettingsError) as caught:
        load(changed(good(platform), changes), secret_keys=frozenset(secret_sections))
    shown = "\n".join([str(caught.value), caught.value.report("prod"), *caught.value.errors])
    assert caught.value.errors
    assert SECRET not in shown
    assert SECRET[:12] not in shown


def test_loaded_settings_do_not_show_secrets():
    raw = changed(good("existing"), {"database.url": Secret(f"postgresql://app:{SECRET}@db/app"),
                                     "app.secretEnv.TOKEN": Secret(SECRET),
                                     "ssh.privateKey": Secret(PRIVATE_KEY.replace("not-a-real-key", SECRET))})
    loaded = load(raw)
    assert SECRET not in repr(loaded) and SECRET not in str(loaded)
    assert loaded.database.url == Secret(f"postgresql://app:{SECRET}@db/app")
    assert dict(loaded.app.secret_env)["TOKEN"].value == SECRET


def test_secret_sections_turn_plain_strings_into_secrets():
    raw = changed(good("existing"), {"database.url": DATABASE_URL, "ssh.privateKey": PRIVATE_KEY,
                                     "app.secretEnv.SECRET_KEY": "abc"})
    loaded = load(raw, secret_keys=frozenset({"database", "ssh", "app"}))
    assert loaded.database.url == Secret(DATABASE_URL)
    assert loaded.ssh.private_key == Secret(PRIVATE_KEY)
    assert loaded.app.secret_env == (("SECRET_KEY", Secret("abc")),)


# -- valid configs and defaults ----------------------------------------------------------------
@pytest.mark.parametrize("platform", PLATFORMS)
def test_complete_config_loads(platform):
    loaded = load(good(platform))
    assert loaded.platform == platform
    assert loaded.deferred == ()
    assert loaded.app.path == REPO_ROOT / "app"
    assert loaded.app.module == "rocket" and loaded.app.attribute == "app"
    assert loaded.app.env == (("APP_ENV", "production"), ("GREETING", "hello"))
    assert loaded.domain.server_names == ("example.com",)
    assert_declared_types(loaded)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_minimal_config_loads(platform):
    loaded = load(minimal(platform))
    assert loaded.deferred == ()
    assert_declared_types(loaded)


DEFAULTS = {
    "load_balancer": True, "front": "nginx", "front_workers": None, "ephemeral": False,
    "hosts.count": 2, "hosts.image": "debian-12",
    "database.engine_version": "16", "database.backup_retention_days": 7,
    "database.high_availability": False, "database.name": "app", "database.user": "app",
    "app.name": "app", "app.entry": "rocket:app", "app.workers": None, "app.worker_class": "gthread",
    "app.threads": 32, "app.timeout": 30, "app.graceful_timeout": 30, "app.keepalive": 20,
    "app.max_requests": 0, "app.listen": "unix", "app.static_url": "/static", "app.static_dir": "static",
    "app.max_body_size": "10m", "app.release_command": None, "app.env": (), "app.secret_env": (),
    "domain.name": None, "domain.www_redirect": True,
    "tls.enabled": False, "tls.email": None, "tls.acme_directory": settings.LETS_ENCRYPT,
    "tls.acme_ca_bundle": None,
    "rate_limit.enabled": False, "rate_limit.requests_per_second": 10, "rate_limit.burst": 20,
    "deploy.batch_size": 1, "deploy.health_path": "/healthz", "deploy.health_timeout": 60,
    "deploy.releases_kept": 5,
    "ssh.port": 22, "ssh.host_key": None, "ssh.bastion": None,
    "network.vpc_cidr": "10.20.0.0/16",
}
PLATFORM_DEFAULTS = {
    "digitalocean": {"hosts.size": "s-1vcpu-1gb", "database.size": "db-s-1vcpu-1gb",
                     "database.storage_gb": 0, "ssh.user": "root", "trusted_proxies": ("10.20.0.0/16",)},
    "aws": {"hosts.size": "t3.small", "database.size": "db.t4g.micro", "database.storage_gb": 20,
            "ssh.user": "admin", "trusted_proxies": ("10.20.0.0/16",)},
    "existing": {"load_balancer": False, "hosts.count": 1, "hosts.size": "", "database.size": "",
                 "database.url": None, "region": None, "trusted_proxies": (), "hosts.trusted_proxies": ()},
    # load() judges the prod stack: its Postgres plan defaults to standard-0 (essential elsewhere)
    "heroku": {"load_balancer": False, "region": "us", "hosts.size": "standard-1x",
               "hosts.python": "3.13", "database.size": "standard-0", "database.storage_gb": 0,
               "database.url": None, "ssh.user": "", "trusted_proxies": (),
               "heroku.app_name": "flask-stack-prod", "heroku.team": None,
               "heroku.stack": "heroku-24"},
}


def attribute(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return obj


@pytest.mark.parametrize(("image", "python"), [("debian-12", "3.11.2"), ("ubuntu-24.04", "3.12.3"),
                                               ("ubuntu-22.04", "3.10.12")])
def test_the_hosts_python_follows_the_image_unless_set(image, python):
    raw = changed(good("existing"), {"hosts.image": image, "hosts.python": DELETE})
    assert load(raw).hosts.python == python
    assert load(changed(raw, {"hosts.python": "3.11.4"})).hosts.python == "3.11.4"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_defaults(platform):
    loaded = load(minimal(platform))
    for dotted, expected in {**DEFAULTS, **PLATFORM_DEFAULTS[platform]}.items():
        assert attribute(loaded, dotted) == expected, dotted


@pytest.mark.parametrize(("stack", "ephemeral"), [
    ("pr-12", True), ("pr-1", True), ("dev", False), ("prod", False), ("pr-", False),
    ("pr-12-b", False), ("staging", False),
])
def test_ephemeral_default_follows_the_stack_name(stack, ephemeral):
    assert load(minimal("digitalocean"), stack=stack, offline=True).ephemeral is ephemeral


EXPIRY = "2099-12-01T18:00:00Z"  # in the future: an expiry in the past is refused


def test_an_ephemeral_stack_needs_an_expiry_to_deploy():
    errors = errors_of(minimal("aws"), stack="pr-12")
    assert [e.split(":")[1] for e in errors] == ["expiresAt"]
    assert "pulumi config set expiresAt" in errors[0]
    offline = load(minimal("aws"), stack="pr-12", offline=True)
    assert any(note.startswith("flask-stack:expiresAt: is required") for note in offline.deferred)
    assert load(changed(minimal("aws"), {"expiresAt": EXPIRY}), stack="pr-12").expires_at == EXPIRY


@pytest.mark.parametrize("value, fragment", [
    ("2026-12-01", "UTC time"), ("2026-12-01T18:00:00+01:00", "UTC time"),
    ("2026-02-30T18:00:00Z", "not a real time"), (20261201, "UTC time"),
])
def test_a_bad_expiry_is_refused(value, fragment):
    errors = errors_of(changed(minimal("aws"), {"expiresAt": value}), stack="pr-12")
    assert any(e.startswith("flask-stack:expiresAt:") and fragment in e for e in errors), errors


def test_an_expiry_on_a_lasting_stack_is_refused():
    errors = errors_of(changed(minimal("aws"), {"expiresAt": EXPIRY}), stack="staging")
    assert errors == ["flask-stack:expiresAt: is only for ephemeral stacks (pr-<number>, or "
                      "ephemeral: true); remove it"]


@pytest.mark.parametrize("platform, host, database", [
    ("aws", "t3.small", "db.t4g.micro"), ("digitalocean", "s-1vcpu-1gb", "db-s-1vcpu-1gb")])
def test_an_ephemeral_stack_runs_on_the_smallest_sizes(platform, host, database):
    raw = changed(good(platform), {"expiresAt": EXPIRY, "ephemeral": DELETE})
    if platform == "aws":
        raw = changed(raw, {"hosts.size": "m7g.large", "hosts.arch": DELETE})
    review = load(raw, stack="pr-3")
    assert (review.hosts.size, review.database.size) == (host, database)
    assert review.database.high_availability is False and review.hosts.arch == "x86_64"
    assert review.hosts.count == good(platform)["hosts"]["count"]  # sizes only, not how many
    lasting = load(changed(raw, {"expiresAt": DELETE}), stack="staging")
    assert lasting.database.high_availability is True and lasting.hosts.size != host


def test_ephemeral_can_be_turned_off_on_a_review_stack():
    assert load(changed(minimal("aws"), {"ephemeral": False}), stack="pr-12").ephemeral is False


def test_region_is_required_on_both_clouds():
    for platform in ("digitalocean", "aws"):
        errors = errors_of(changed(minimal(platform), {"region": DELETE}))
        assert errors == [e for e in errors if e.startswith(f"{PREFIX}region: is required")], errors


@pytest.mark.parametrize(("image", "user"), [("debian-12", "admin"), ("ubuntu-24.04", "ubuntu"),
                                             ("ubuntu-22.04", "ubuntu")])
def test_aws_login_user_follows_the_image(image, user):
    assert load(changed(minimal("aws"), {"hosts.image": image})).ssh.user == user


def test_digitalocean_logs_in_as_root_whatever_the_image():
    assert load(changed(minimal("digitalocean"), {"hosts.image": "ubuntu-24.04"})).ssh.user == "root"


@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_threads_default_to_one_outside_gthread(worker_class):
    loaded = load(changed(minimal("aws"), {"app.workerClass": worker_class}))
    assert loaded.app.threads == 1
    assert load(changed(minimal("aws"), {"app.workerClass": worker_class, "app.threads": 1})).app.threads == 1


def test_single_host_mode_trusts_no_proxy_and_may_terminate_tls():
    loaded = load(changed(good("digitalocean"), {"loadBalancer": False, "hosts.count": 1,
                                                 "tls.enabled": True}))
    assert loaded.trusted_proxies == ()
    assert loaded.tls.enabled and loaded.tls.email == "ops@example.com"


def test_existing_servers_trust_the_proxies_named():
    loaded = load(changed(good("existing"), {"hosts.trustedProxies": ["198.51.100.0/28", "2001:db8::/64"]}))
    assert loaded.trusted_proxies == ("198.51.100.0/28", "2001:db8::/64")


def test_values_are_normalised():
    loaded = load(changed(good("existing"), {
        "hosts.addresses": [" 203.0.113.10 ", "App2.Example.COM", "2001:DB8::1"],
        "ssh.bastion.host": " Bastion.Example.com ",
        "ssh.hostKey": PUBLIC_KEY + "\n",
        "app.listen": "[::1]:8000",
        "app.workers": "auto",
    }))
    assert loaded.hosts.addresses == ("203.0.113.10", "app2.example.com", "2001:db8::1")
    assert loaded.hosts.count == 3
    assert loaded.ssh.bastion.host == "bastion.example.com"
    assert loaded.ssh.host_key == PUBLIC_KEY
    assert loaded.app.listen == "[::1]:8000"
    assert loaded.app.workers is None


@pytest.mark.parametrize(("value", "expected"), [("auto", None), (4, 4), ("4", 4)])
def test_front_workers_is_auto_or_a_count(value, expected):
    assert load(changed(good("digitalocean"), {"frontWorkers": value})).front_workers == expected


@pytest.mark.parametrize("entry", ["rocket:app", "rocket:create_app()", "rocket:app.wsgi_app",
                                   "rocket:create_app('prod', debug=False)"])
def test_entry_forms_accepted(entry):
    assert load(changed(minimal("digitalocean"), {"app.entry": entry})).app.entry == entry


def test_static_dir_that_is_not_there_by_default_means_none(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "rocket.py").write_text("app = None\n")
    (app / "requirements.txt").write_text("flask\n")
    loaded = settings.load(minimal("digitalocean"), stack="dev", project_dir=tmp_path)
    assert loaded.app.static_dir is None


@pytest.mark.parametrize(("files", "entry", "found"), [
    (["static/a.css", "blog/__init__.py", "blog/static/b.css"], "blog:create_app()", "static"),
    (["blog/__init__.py", "blog/static/b.css"], "blog:create_app()", "blog/static"),
    (["shop/__init__.py", "shop/web.py", "shop/static/b.css"], "shop.web:app", "shop/static"),
    (["shop/__init__.py", "shop/web/__init__.py", "shop/web/static/b.css"], "shop.web:app",
     "shop/web/static"),
    (["rocket.py", "assets/b.css"], "rocket:app", None),
])
def test_the_static_folder_is_found_where_flask_keeps_it(tmp_path, files, entry, found):
    app = tmp_path / "app"
    for name in [*files, "requirements.txt"]:
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text("")
    loaded = settings.load(changed(minimal("digitalocean"), {"app.entry": entry}), stack="dev",
                           project_dir=tmp_path)
    assert loaded.app.static_dir == found


def test_settings_are_frozen():
    loaded = load(minimal("digitalocean"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.hosts.count = 5  # type: ignore[misc]


# -- offline: what only a deploy needs is deferred ----------------------------------------------
DEPLOY_ONLY = {
    "digitalocean": {"ssh.privateKey": DELETE, "ssh.adminCidrs": DELETE, "ssh.publicKey": DELETE},
    "aws": {"ssh.privateKey": DELETE, "ssh.adminCidrs": DELETE, "ssh.publicKey": None},
    "existing": {"ssh.privateKey": DELETE, "ssh.user": DELETE},
}


@pytest.mark.parametrize("platform", DEPLOY_ONLY)  # a Heroku stack needs nothing more to deploy
def test_offline_defers_what_only_a_deploy_needs(platform):
    raw = changed(good(platform), DEPLOY_ONLY[platform])
    expected = {f"{PREFIX}{key}" for key in DEPLOY_ONLY[platform]}
    loaded = load(raw, offline=True)
    assert {d.split(": ", 1)[0] for d in loaded.deferred} == expected
    errors = errors_of(raw)
    assert {e.split(": ", 1)[0] for e in errors} == expected


def test_a_bastion_stands_in_for_admin_cidrs():
    raw = changed(good("aws"), {"ssh.adminCidrs": DELETE, "ssh.bastion.host": "203.0.113.5"})
    assert load(raw).ssh.admin_cidrs == ()


def test_offline_still_reports_bad_values():
    errors = errors_of(changed(good("aws"), {"ssh.privateKey": DELETE, "ssh.port": 0}), offline=True)
    assert [e.split(":")[1] for e in errors] == ["ssh.port"]


# -- values as the Pulumi CLI hands them over --------------------------------------------------
def test_values_as_pulumi_config_set_writes_them():
    """`pulumi config set` without --path stores strings: numbers, booleans and JSON lists/objects
    arrive as text."""
    raw = {
        "platform": "aws", "region": "eu-west-1", "loadBalancer": "true", "ephemeral": "False",
        "hosts": {"count": "3", "image": "ubuntu-24.04"},
        "database": {"storageGb": "100", "highAvailability": "TRUE", "engineVersion": 15,
                     "backupRetentionDays": "10"},
        "app": {"workers": "4", "threads": "2", "timeout": "60", "env": '{"LOG_LEVEL": "info", "N": 3}',
                "maxRequests": "0", "secretEnv": {"SECRET_KEY": "x"}},
        "rateLimit": {"enabled": "true", "requestsPerSecond": "5", "burst": "0"},
        "deploy": {"batchSize": "2", "healthTimeout": "30", "releasesKept": "3"},
        "ssh": {"port": "2222", "adminCidrs": '["203.0.113.7/32", "198.51.100.0/24"]',
                "publicKey": PUBLIC_KEY, "privateKey": PRIVATE_KEY},
    }
    loaded = load(raw, secret_keys=frozenset({"ssh", "app"}))
    assert (loaded.load_balancer, loaded.ephemeral, loaded.hosts.count) == (True, False, 3)
    assert (loaded.database.storage_gb, loaded.database.high_availability) == (100, True)
    assert loaded.database.engine_version == "15"
    assert (loaded.app.workers, loaded.app.threads, loaded.app.timeout) == (4, 2, 60)
    assert loaded.app.env == (("LOG_LEVEL", "info"), ("N", "3"))
    assert loaded.rate_limit == settings.RateLimit(enabled=True, requests_per_second=5, burst=0)
    assert loaded.deploy.batch_size == 2 and loaded.ssh.port == 2222
    assert loaded.ssh.admin_cidrs == ("203.0.113.7/32", "198.51.100.0/24")
    assert loaded.ssh.user == "ubuntu"


def test_a_json_string_that_is_not_a_list_is_reported():
    errors = errors_of(changed(good("digitalocean"), {"ssh.adminCidrs": '{"a": 1}'}))
    assert errors == ['flask-stack:ssh.adminCidrs: must be a list, got "{\\"a\\": 1}"']


# -- odd types everywhere: only SettingsError, never a traceback --------------------------------
def keys_read(raw: dict[str, Any], **kwargs: Any) -> set[str]:
    """Every key path the loader asks for while loading `raw` (without the project prefix)."""
    seen: set[str] = set()
    original = Reader.raw

    def recording(self: Reader, name: str) -> Any:
        seen.add(self.key(name)[len(PREFIX):])
        return original(self, name)

    with mock.patch.object(Reader, "raw", recording), contextlib.suppress(SettingsError):
        load(raw, **kwargs)
    return seen


ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, 2**70, 10**5000, float("nan"), float("inf"), -0.0,
    "", " ", "\n", "x\0y", "é", "²", "١٢٣", "x" * 5000, "a" * 300 + ":app", "[", "{", "[1, 2]",
    '{"a": 1}', "[" * 100_000, "null", "true", "../..", "/", "rocket:" + "-" * 100_000 + "1",
    "rocket:f({[]: 1})", "127.0.0.1:²", "ssh-ed25519 é",
    [], [None], [1, "a", {}], [[[]]], ["0.0.0.0/0"], ["x\0"], {}, {"a": {"b": [1]}}, {None: 1},
    {1: 2}, {"": ""}, {"secure": "v1:x"}, ("t",), Secret(None), Secret("x"), Secret("a\nb"),
    datetime.date(2024, 1, 1), b"bytes", object(),
]


def _odd_cases() -> list[Any]:
    cases = []
    for platform in PLATFORMS:
        keys = keys_read(good(platform)) | {"app.env.GREETING", "app.secretEnv.SECRET_KEY", "app.env.1",
                                            "ssh.bastion.extra", "hosts.extra"}
        cases += [pytest.param(platform, key, id=f"{platform}-{key}") for key in sorted(keys)]
    return cases


def assert_declared_types(loaded: Any) -> None:
    """Every field of a loaded Settings (recursively) holds a value of its declared type."""
    hints = typing.get_type_hints(type(loaded))
    for field in dataclasses.fields(loaded):
        value = getattr(loaded, field.name)
        if dataclasses.is_dataclass(value):
            assert_declared_types(value)
            continue
        allowed = _runtime_types(hints[field.name])
        assert isinstance(value, allowed), f"{type(loaded).__name__}.{field.name} = {value!r}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert value == value and abs(value) != float("inf"), field.name


def _runtime_types(hint: Any) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _runtime_types(arg))
    if hint is type(None) or hint is None:
        return (type(None),)
    if origin is not None:
        return (origin,)
    if hint is int:
        return (int,)  # bool is an int too, but never where a number is declared:
    return (hint,)


@pytest.mark.parametrize(("platform", "key"), _odd_cases())
def test_odd_values_never_crash_the_loader(platform, key):
    for value in ODD_VALUES:
        for secret_keys, offline in ((frozenset(), False), (frozenset({key.split(".")[0]}), True)):
            raw = changed(good(platform), {key: value})
            try:
                loaded = load(raw, secret_keys=secret_keys, offline=offline)
            except SettingsError as exc:
                assert exc.errors, (key, value)
                for error in exc.errors:
                    assert isinstance(error, str) and error.startswith(PREFIX), (key, value, error)
                continue
            except Exception as exc:  # noqa: BLE001 - any other exception is the defect under test
                pytest.fail(f"{platform} {key}={value!r:.80}: {type(exc).__name__}: {exc!s:.300}")
            assert_declared_types(loaded)
            for name, number in (("hosts.count", loaded.hosts.count), ("ssh.port", loaded.ssh.port)):
                assert not isinstance(number, bool), (key, value, name)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_odd_whole_configs_never_crash_the_loader(platform):
    config = good(platform)
    for section in [k for k, v in config.items() if isinstance(v, dict)]:
        for value in ODD_VALUES:
            with contextlib.suppress(SettingsError):
                load({**config, section: value})
    for raw in ({}, {1: 2}, {None: None}, {"": {}}, {platform: platform}, {**config, 7: "x", None: []}):
        with pytest.raises(SettingsError):
            load(raw)


def test_odd_list_items_never_crash_the_loader():
    for value in ODD_VALUES:
        for platform, key in ((EXISTING, "hosts.addresses"), (EXISTING, "hosts.trustedProxies"),
                              (DO, "ssh.adminCidrs")):
            with contextlib.suppress(SettingsError):
                load(changed(good(platform), {key: ["203.0.113.20/32", value]}))


# -- stack files and examples ---------------------------------------------------------------------
def stack_file(tmp_path: Path, text: str, stack: str = "test") -> Path:
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(text)
    return tmp_path


def test_stack_file_secure_values_become_unknown_secrets(tmp_path):
    (tmp_path / "app").symlink_to(REPO_ROOT / "app")
    directory = stack_file(tmp_path, """
config:
  aws:region: eu-west-1
  flask-stack:platform: existing
  flask-stack:hosts:
    addresses: ["203.0.113.10"]
    hostKeys:
      "203.0.113.10": ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyR6E6TISzLkMABixy6N+k0E449lzgYW4KdaRZsjbn9
  flask-stack:database:
    url:
      secure: v1:abc:def
  flask-stack:app:
    secretEnv:
      SECRET_KEY:
        secure: v1:abc:def
  flask-stack:ssh:
    user: deploy
    privateKey:
      secure: v1:abc:def
""")
    loaded = settings.from_stack_file("test", directory)
    assert loaded.database.url == Secret(None) and not loaded.database.url.known
    assert loaded.app.secret_env == (("SECRET_KEY", Secret(None)),)
    assert loaded.ssh.private_key == Secret(None)
    assert loaded.deferred == ()


@pytest.mark.parametrize(("text", "fragment"), [
    ("config: [1, 2]\n", "config: must be a mapping"),
    ("- just\n- a list\n", "must be a mapping with a config: key"),
    ("plain text\n", "must be a mapping with a config: key"),
    ("config: {flask-stack:platform: [\n", "not valid YAML"),
    ("config:\n  flask-stack:hosts:\n    count: " + "9" * 5000 + "\n", "not valid YAML"),
], ids=["config-a-list", "document-a-list", "document-a-string", "broken-yaml", "huge-number"])
def test_odd_stack_files_are_reported(tmp_path, text, fragment):
    with pytest.raises(SettingsError) as caught:
        settings.from_stack_file("test", stack_file(tmp_path, text))
    assert fragment in caught.value.errors[0]


def test_stack_file_not_utf8_is_reported(tmp_path):
    (tmp_path / "Pulumi.test.yaml").write_bytes(b"config:\n  flask-stack:platform: \xff\xfe\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        settings.from_stack_file("test", tmp_path)


def test_missing_stack_file_lists_the_stacks(tmp_path):
    stack_file(tmp_path, "config: {}\n", stack="dev")
    with pytest.raises(SettingsError, match="stacks here: dev"):
        settings.from_stack_file("prod", tmp_path)


ALL_EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
# The per-environment stacks the workflows deploy (staging, prod, and the template of the review
# stacks pr-<n>); they leave the SSH values to the user or to CI (tests/test_environments.py).
ENVIRONMENT_FILES = ["prod.yaml", "review.yaml", "staging.yaml"]
EXAMPLE_FILES = [name for name in ALL_EXAMPLE_FILES if name not in ENVIRONMENT_FILES]


def test_every_platform_has_a_minimal_and_a_complete_example():
    expected = sorted(f"{p}-{kind}.yaml" for p in PLATFORMS for kind in ("minimal", "complete"))
    assert expected == EXAMPLE_FILES
    assert sorted(set(ALL_EXAMPLE_FILES) - set(EXAMPLE_FILES)) == ENVIRONMENT_FILES


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_loads_offline_ready_to_deploy(name):
    loaded = load_example(name)
    assert loaded.platform == name.split("-")[0]
    assert loaded.deferred == ()  # nothing left to set but the secrets' real values
    assert_declared_types(loaded)


@pytest.mark.parametrize("stack", ["dev", "pr-7"])
def test_examples_also_load_as_other_stacks(stack):
    for name in ALL_EXAMPLE_FILES:
        loaded = load_example(name, stack=stack)
        assert loaded.ephemeral is (stack == "pr-7" and "complete" not in name)


def test_a_server_without_a_host_key_gets_the_lines_to_run_and_is_deferred_offline():
    raw = changed(good(EXISTING), {"ssh.hostKey": DELETE, "ssh.port": 2222, "ssh.bastion": DELETE,
                                    "hosts.hostKeys": {"203.0.113.10": PUBLIC_KEY}})
    with pytest.raises(SettingsError) as caught:
        load(raw)
    (message,) = caught.value.errors
    assert message.startswith(f"{PREFIX}hosts.hostKeys: has no SSH host key for 203.0.113.11, ")
    assert "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub" in message
    assert ("pulumi config set --path 'hosts.hostKeys[\"203.0.113.11\"]' "
            "\"$(ssh-keyscan -t ed25519 -p 2222 203.0.113.11 | cut -d' ' -f2-)\"") in message
    assert message.endswith("or set ssh.hostKey, one key for every server")
    offline = load(raw, offline=True)
    assert offline.deferred == (message,)
    assert offline.hosts.host_keys == (("203.0.113.10", " ".join(PUBLIC_KEY.split()[:2])),)
    assert load(changed(raw, {"ssh.hostKey": PUBLIC_KEY})).ssh.host_key == PUBLIC_KEY


def test_dev_stack_loads_offline():
    loaded = settings.from_stack_file("dev", REPO_ROOT)
    assert loaded.platform == "digitalocean" and loaded.hosts.count == 1
    assert all(d.startswith(f"{PREFIX}ssh.") for d in loaded.deferred)


# Keys the loader reads that a complete example may leave out, and why.
NOT_IN_COMPLETE = {
    "digitalocean": {"ssh.hostKey", "hosts.hostKeys",  # a droplet's key is recorded at first contact
                     "expiresAt",
                     "hosts.trustedProxies", "hosts.addresses", "database.url",  # rejected here
                     "database.storageGb",
                     "database.backupRetentionDays", "domain.certificateArn", "domain.route53Zone",
                     "hosts.diskGb", "network.zones", "hosts.python"},  # the image's Python
    "aws": {"ssh.hostKey", "hosts.hostKeys", "expiresAt", "hosts.trustedProxies", "hosts.addresses",
            "database.url",
            "doProject",
            "domain.certificateArn",  # the example issues its certificate through route53Zone
            "hosts.python"},  # a cloud image's Python is known
    "existing": {"region", "loadBalancer", "hosts.count", "hosts.size",  # no meaning or must stay unset
                 "doProject", "expiresAt", "domain.certificateArn", "domain.dnsRecords", "domain.route53Zone",
                 "hosts.diskGb", "network.zones", "database.size", "database.storageGb",
                 "database.engineVersion", "database.backupRetentionDays", "database.highAvailability",
                 "database.name", "database.user",  # database.url names the database
                 "ssh.publicKey", "ssh.adminCidrs", "network", "network.vpcCidr",  # nothing is created
                 "ssh.hostKey"},  # one key for every server: see the comment in the example
}
NOT_IN_COMPLETE["heroku"] = {"expiresAt", "doProject",
                             # refused on heroku: a dyno has none of these (read to say so)
                             "front", "frontWorkers", "loadBalancer", "hosts.image", "hosts.arch",
                             "hosts.diskGb", "hosts.addresses", "hosts.trustedProxies", "hosts.hostKeys",
                             "database.url", "database.storageGb", "database.backupRetentionDays",
                             "database.name", "database.user", "domain.certificateArn",
                             "domain.route53Zone", "domain.dnsRecords", "app.listen",
                             "app.maxBodySize", "deploy.batchSize", "deploy.healthTimeout",
                             "deploy.releasesKept", "deploy.drainSeconds", "deploy.undrainSeconds",
                             "tls", "ssh", "rateLimit", "network",
                             "schedules"}  # refused on heroku: a clock process instead
for _platform in ("digitalocean", "aws", "existing"):
    NOT_IN_COMPLETE[_platform] |= {"heroku", "heroku.appName", "heroku.team", "heroku.stack"}
for _platform in ("digitalocean", "existing", "heroku"):  # refused there (AWS only so far)
    NOT_IN_COMPLETE[_platform] |= {"logs", "database.maxStorageGb"}
for _platform in ("existing", "heroku"):  # refused there (the clouds only)
    NOT_IN_COMPLETE[_platform] |= {"alerts"}
for _platform in ("aws", "existing", "heroku"):  # refused there (DigitalOcean only)
    NOT_IN_COMPLETE[_platform] |= {"database.storageAutoscale", "database.pool"}
# Read on the other cloud only to refuse them by name.
NOT_IN_COMPLETE["digitalocean"] |= {"alerts.freeStorageGb", "alerts.freeMemoryMb",
                                    "alerts.databaseConnections"}
NOT_IN_COMPLETE["aws"] |= {"alerts.memoryPercent", "alerts.diskPercent", "alerts.slackChannel"}
for _unset in NOT_IN_COMPLETE.values():
    _unset.add("tls.acmeCaBundle")  # only for a private ACME server; the examples use Let's Encrypt


def flat_keys(raw: dict[str, Any]) -> set[str]:
    """Key paths set in a config: sections and their keys; env names are the user's own."""
    out = set()
    for key, value in raw.items():
        out.add(key)
        if isinstance(value, dict):
            for sub, inner in value.items():
                out.add(f"{key}.{sub}")
                if isinstance(inner, dict) and sub not in ("env", "secretEnv", "hostKeys"):
                    out |= {f"{key}.{sub}.{k}" for k in inner}
    return out


@pytest.mark.parametrize("platform", PLATFORMS)
def test_complete_example_sets_every_key(platform):
    raw = settings.read_stack_file(EXAMPLES / f"{platform}-complete.yaml")
    accepted = keys_read(raw, offline=True)
    missing = accepted - flat_keys(raw) - NOT_IN_COMPLETE[platform]
    assert not missing, f"{platform}-complete.yaml does not set {sorted(missing)}"
    assert flat_keys(raw) <= accepted  # and nothing it sets is unknown


@pytest.mark.parametrize("name", ALL_EXAMPLE_FILES)
def test_examples_use_documentation_addresses_and_domains(name):
    text = (EXAMPLES / name).read_text()
    documentation = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
    for literal in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b", text):
        net = ipaddress.ip_network(literal, strict=False)
        assert net.is_private or any(net.subnet_of(d) for d in documentation), literal
    for domain in re.findall(r"\b(?:[a-z0-9-]+\.)+(?:com|net|org|io)\b", text):
        assert domain == "example.com" or domain.endswith(".example.com") or domain.endswith(
            "letsencrypt.org"), domain
    assert "PRIVATE KEY" not in text
    for line in text.splitlines():
        if re.search(r"(privateKey|url|SECRET_KEY):\s*\S", line.split("#")[0]):
            pytest.fail(f"{name}: a secret is set in plain text: {line.strip()}")


# -- keys that depend on the platform: one table, one message each -----------------------------
# A value each restricted key could take where it is taken; a new row of the table needs one here.
RESTRICTED_VALUES: dict[str, Any] = {
    "region": "fra1", "loadBalancer": True, "doProject": True,
    "hosts.size": "s-1vcpu-1gb", "hosts.diskGb": 30, "hosts.addresses": ["203.0.113.10"],
    "hosts.trustedProxies": ["198.51.100.0/28"], "hosts.hostKeys": {"203.0.113.10": PUBLIC_KEY},
    "database.url": Secret(DATABASE_URL), "database.size": "db-s-1vcpu-1gb",
    "database.storageGb": 50, "database.backupRetentionDays": 14,
    "domain.certificateArn":
        "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f",
    "domain.route53Zone": "example.com", "domain.dnsRecords": True, "network.zones": 2,
    "network.vpcCidr": "10.20.0.0/16", "database.engineVersion": "16",
    "database.highAvailability": True, "database.name": "app", "database.user": "app",
    "ssh.publicKey": PUBLIC_KEY, "ssh.adminCidrs": ["203.0.113.7/32"],
    "ssh.user": "deploy", "hosts.image": "debian-12", "hosts.arch": "x86_64", "front": "nginx",
    "frontWorkers": 2, "app.listen": "unix", "app.maxBodySize": "10m", "deploy.batchSize": 1,
    "deploy.healthTimeout": 60, "deploy.releasesKept": 5, "deploy.drainSeconds": 40,
    "deploy.undrainSeconds": 25,
    "heroku.appName": "rocket-web", "heroku.team": "acme", "heroku.stack": "heroku-24",
    "database.maxStorageGb": 200, "alerts": {"email": "ops@example.com"}, "logs": {"flowLogs": True},
    "database.storageAutoscale": True, "database.pool": True,
}


def _elsewhere() -> list[Any]:
    return [pytest.param(key, platform, id=f"{key}-on-{platform}")
            for key, rule in settings.RULES.items() for platform in PLATFORMS
            if platform not in rule.platforms]


def test_every_restricted_key_has_a_sample_value():
    restricted = {key for key, rule in settings.RULES.items() if set(rule.platforms) != set(PLATFORMS)}
    assert restricted == set(RESTRICTED_VALUES)


@pytest.mark.parametrize(("key", "platform"), _elsewhere())
def test_a_key_of_another_platform_gets_its_own_message(key, platform):
    errors = assert_error(platform, key, {key: RESTRICTED_VALUES[key]})
    message = next(e for e in errors if e.startswith(f"{PREFIX}{key}:"))
    rule = settings.RULES[key]
    section = key.split(".")[0]
    if platform == HEROKU and section in HOST_SECTIONS:  # the whole section is refused there
        assert message == f"{PREFIX}{key}: {HOST_SECTIONS[section]}"
    elif platform in rule.refusals:
        assert message == f"{PREFIX}{key}: {rule.refusals[platform]}"
    else:
        assert f"this stack's platform is {platform}" in message, message
        assert "unknown key" not in message, message


@pytest.mark.parametrize(("platform", "key", "expected"), [
    (DO, "hosts.addresses", "is only for platform existing (a cloud platform creates the hosts; set "
                            "hosts.count); this stack's platform is digitalocean, remove it"),
    (AWS, "hosts.addresses", "is only for platform existing"),
    (EXISTING, "database.size", "is only for platforms digitalocean, aws and heroku (the program "
                                "creates no "
                                "database there; give yours in database.url); this stack's "
                                "platform is existing, remove it"),
    (EXISTING, "database.storageGb", "is only for platform aws (the program creates no database "
                                     "there); this stack's platform is existing, remove it"),
    (DO, "domain.route53Zone", "is only for platform aws; this stack's platform is digitalocean"),
    (AWS, "doProject", "is only for platform digitalocean; this stack's platform is aws"),
    (DO, "hosts.diskGb", "a droplet size fixes its disk"),
    (EXISTING, "network.zones", "is only for platform aws; this stack's platform is existing"),
])
def test_messages_for_keys_of_another_platform(platform, key, expected):
    assert_error(platform, key, {key: RESTRICTED_VALUES[key]}, expected)


@pytest.mark.parametrize(("platform", "key"), [(EXISTING, "loadBalancer"), (AWS, "doProject"),
                                               (EXISTING, "domain.dnsRecords"), (EXISTING, "doProject")])
def test_a_switch_may_be_set_false_on_any_platform(platform, key):
    loaded = load(changed(good(platform), {key: False}))
    assert loaded.platform == platform


def test_a_switch_of_another_platform_is_still_checked_as_a_boolean():
    assert_error(EXISTING, "loadBalancer", {"loadBalancer": "maybe"}, "true or false")


def test_the_table_names_only_known_platforms_and_their_defaults():
    for key, rule in settings.RULES.items():
        assert set(rule.platforms) <= set(PLATFORMS), key
        assert set(rule.defaults) <= set(PLATFORMS), key
        assert set(rule.refusals) <= set(PLATFORMS) - set(rule.platforms), key
        assert set(rule.formats) <= set(rule.platforms), key


def test_every_key_of_the_platform_table_is_documented_in_pulumi_yaml():
    text = (REPO_ROOT / "Pulumi.yaml").read_text()
    documented = set(re.findall(r"^#   ([A-Za-z0-9.]+) \(", text, re.M))
    assert set(settings.RULES) - documented == set()


# -- one error channel ---------------------------------------------------------------------------
def test_errors_are_asked_by_key_path():
    errors = settings.reader.Errors()
    errors.add("flask-stack:ssh.adminCidrs[1]", "expected a CIDR")
    errors.add("flask-stack:app.env.X", "bad")
    assert errors.about("flask-stack:ssh.adminCidrs")
    assert errors.about("flask-stack:app.env")
    assert not errors.about("flask-stack:ssh.admin")  # a prefix of a name is not the key
    assert errors.about("flask-stack:ssh")  # a section counts what was reported below it
    assert errors.lines() == ["flask-stack:ssh.adminCidrs[1]: expected a CIDR", "flask-stack:app.env.X: bad"]


def test_a_bad_admin_cidr_is_not_also_called_empty():
    errors = errors_of(changed(good("aws"), {"ssh.adminCidrs": ["0.0.0.0/0"]}))
    assert [e.split(": ", 1)[0] for e in errors] == [f"{PREFIX}ssh.adminCidrs[0]"]


def test_a_bad_address_is_not_also_called_missing():
    errors = errors_of(changed(good("existing"), {"hosts.addresses": ["not an address!"]}))
    assert [e.split(": ", 1)[0] for e in errors] == [f"{PREFIX}hosts.addresses[0]"]


def test_a_bad_tls_email_is_not_also_called_missing():
    errors = errors_of(changed(good("existing"), {"tls.email": "ops-at-example"}))
    assert errors == ['flask-stack:tls.email: expected an email address like "ops@example.com", '
                      'got "ops-at-example"']


def test_a_refused_range_is_not_also_counted_in_the_coverage():
    errors = errors_of(changed(good("aws"), {"ssh.adminCidrs": ["0.0.0.0/0", "128.0.0.0/1"]}))
    assert [e.split(": ", 1)[0] for e in errors] == [f"{PREFIX}ssh.adminCidrs[0]", f"{PREFIX}ssh.adminCidrs"]


@pytest.mark.parametrize(("cidrs", "public"), [
    (["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8"], 0),
    (["203.0.113.0/24", "203.0.113.0/25"], 256),  # overlaps count once; documentation is public
    # All of IPv4 less 0/8, 10/8, 127/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16,
    # 192.0.0/24, 198.18/15, 224/4 and 240/4.
    (["0.0.0.0/0"], 2**32 - (3 * 2**24 + 2**20 + 2 * 2**16 + 2**22 + 2**8 + 2**17 + 2 * 2**28)),
    (["fc00::/7", "fe80::/10", "::1/128"], 0),
    (["2001:db8::/32", "2001:db8:1::/48"], 2**96),
])
def test_public_coverage_counts_each_public_address_once(cidrs, public):
    from stack.settings.checks import public_addresses

    assert public_addresses([ipaddress.ip_network(c) for c in cidrs]) == public


@pytest.mark.parametrize("platform", ["aws", "digitalocean"])
def test_every_region_the_sdk_lists_is_accepted(platform):
    from stack.settings.loading import regions

    pattern, _ = settings.RULES["region"].formats[platform]
    assert regions(platform) and all(re.fullmatch(pattern, r) for r in regions(platform))
    for region in ("us-east-1", "ap-southeast-2") if platform == "aws" else ("nyc3", "sgp1"):
        assert load(changed(minimal(platform), {"region": region})).region == region


# -- platform heroku: what Heroku itself would refuse, said before anything is created --------------
@pytest.mark.parametrize(("stack", "changes", "key", "fragment"), [
    ("dev", {"hosts.size": "basic", "hosts.count": 2}, "hosts.count", "one per process type"),
    ("prod", {"hosts.size": "basic", "hosts.count": 2}, "hosts.size", "no preboot"),
    ("prod", {"hosts.count": 1}, "hosts.count", "at least 2 on prod"),
    ("dev", {"hosts.size": "private-m"}, "hosts.size", "Private Space dyno"),
    ("dev", {"hosts.size": "standard-3x"}, "hosts.size", "not a Heroku dyno size"),
    ("dev", {"hosts.python": "3.9"}, "hosts.python", "3.10 to 3.14"),
    ("dev", {"hosts.python": "3.11.2.1"}, "hosts.python", "major.minor"),
    ("dev", {"database.size": "hobby-dev"}, "database.size", "Heroku Postgres plan"),
    ("dev", {"database.size": "mega-0"}, "database.size", "not a Heroku Postgres plan"),
    ("prod", {"database.size": "essential-2", "database.highAvailability": False}, "database.size",
     "prod needs standard-0"),
    ("dev", {"database.size": "standard-0"}, "database.highAvailability", "needs a premium plan"),
    ("dev", {"database.engineVersion": "13"}, "database.engineVersion", "not offered by Heroku"),
    ("dev", {"region": "fra1"}, "region", '"us" or "eu"'),
    ("dev", {"heroku.appName": "Rocket_Prod"}, "heroku.appName", "Heroku app name"),
    ("dev", {"heroku.appName": "a" * 31}, "heroku.appName", "Heroku app name"),
    ("dev", {"heroku.stack": "cedar-14"}, "heroku.stack", "heroku-24"),
    ("dev", {"app.env.PORT": "8000"}, "app.env.PORT", "Heroku sets it"),
    ("dev", {"app.secretEnv.HEROKU_API_KEY": Secret("x")}, "app.secretEnv.HEROKU_API_KEY",
     "Heroku sets the HEROKU_* names"),
    ("dev", {"app.env.DYNO": "web.1"}, "app.env.DYNO", "Heroku sets it"),
])
def test_heroku_refuses_what_heroku_would(stack, changes, key, fragment):
    errors = errors_of(changed(good(HEROKU), changes), stack=stack)
    named = [e for e in errors if e.startswith(f"{PREFIX}{key}:")]
    assert named and any(fragment in e for e in named), errors


@pytest.mark.parametrize(("stack", "changes", "size", "plan", "count"), [
    ("dev", {"hosts.size": DELETE, "hosts.count": DELETE, "database": {}}, "standard-1x", "essential-0", 2),
    ("prod", {"hosts.size": DELETE, "hosts.count": DELETE, "database": {}}, "standard-1x", "standard-0", 2),
    ("dev", {"database": {"highAvailability": True}}, "standard-2x", "premium-0", 3),
    ("dev", {"hosts.size": "basic", "hosts.count": 1}, "basic", "premium-0", 1),
    ("pr-9", {"expiresAt": "2099-01-01T00:00:00Z", "ephemeral": DELETE}, "basic", "essential-0", 1),
])
def test_heroku_sizes_and_plans_by_stack(stack, changes, size, plan, count):
    loaded = load(changed(good(HEROKU), changes), stack=stack)
    assert (loaded.hosts.size, loaded.database.size, loaded.hosts.count) == (size, plan, count)
    assert loaded.database.high_availability is (plan.startswith("premium") and stack != "pr-9")


def test_a_stack_name_that_makes_no_heroku_app_name_needs_heroku_app_name():
    raw = changed(good(HEROKU), {"heroku.appName": DELETE})
    assert load(raw, stack="staging").heroku.app_name == "flask-stack-staging"
    errors = errors_of(raw, stack="a-very-long-stack-name-for-heroku")
    assert errors == [f'{PREFIX}heroku.appName: is needed: the default, "flask-stack-a-very-long-'
                      'stack-name-for-heroku", is not a Heroku app name (lower-case letters, '
                      'digits and dashes, at most 30 characters); set one, e.g. pulumi config set '
                      '--path heroku.appName "flask-stack-a-very-long-stack"']


def test_every_host_section_is_refused_on_heroku_key_by_key():
    raw = changed(good(HEROKU), {"ssh.user": "deploy", "ssh.port": 22, "tls.enabled": False,
                                 "rateLimit.enabled": True, "network.vpcCidr": "10.20.0.0/16"})
    errors = errors_of(raw)
    assert sorted(e.split(": ", 1)[0] for e in errors) == [
        f"{PREFIX}network.vpcCidr", f"{PREFIX}rateLimit.enabled", f"{PREFIX}ssh.port",
        f"{PREFIX}ssh.user", f"{PREFIX}tls.enabled"]
    assert all("platform heroku" in e for e in errors)
