"""Hostile and mistaken stack configs, run the way a user runs them: a `Pulumi.<stack>.yaml`
beside a copy of the app, then `python -m stack check` (in-process).

Every refused case asserts exit 2, no traceback, and an error line that starts with the exact
key path (`flask-stack:app.env.LD_PRELOAD:`) and says what the case is about. Every accepted
case asserts exit 0, what the value became, and that what it renders passes the files' own
checks (the Python files compile, every step script passes `bash -n`). A case changes the
known-good config of one platform (tests/test_settings.py `good`) in one place, so the key an
error must name is known.

The cases are grouped by the part of the issue they close; each group is one table.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT
from test_settings import DELETE, PREFIX, changed, good

from stack import cli, settings
from stack.settings import Secret
from tests.test_render_property import check_outputs

DO, AWS, EXISTING = "digitalocean", "aws", "existing"
STACK = "t"


@dataclass(frozen=True)
class Refused:
    """`changes` to the good config of `platform` must be refused at `key` with `says` in the
    message."""

    id: str
    platform: str
    changes: dict[str, Any]
    key: str
    says: str = ""
    stack: str = STACK
    setup: Callable[[Path], Any] | None = None  # changes the copied app folder first


@dataclass(frozen=True)
class Accepted:
    """`changes` to the good config of `platform` load, and `then(settings)` holds."""

    id: str
    platform: str
    changes: dict[str, Any]
    then: Callable[[settings.Settings], Any] = field(default=lambda s: True)
    stack: str = STACK
    setup: Callable[[Path], Any] | None = None


def as_stack_file(raw: dict[str, Any]) -> str:
    """The YAML a user would commit: every top-level key under config: with the project's
    prefix, secrets as `secure:` ciphertext (which an offline check cannot decrypt)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Secret):
            return {"secure": "v1:AAAABBBBCCCCDDDD"}
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    config = {f"{PREFIX}{key}": plain(value) for key, value in raw.items()}
    return yaml.safe_dump({"config": config}, sort_keys=False, allow_unicode=True)


def project(tmp_path: Path, raw: dict[str, Any], stack: str = STACK,
            setup: Callable[[Path], Any] | None = None) -> Path:
    """A project directory holding the stack file and a copy of the repository's own app."""
    shutil.copytree(REPO_ROOT / "app", tmp_path / "app")
    if setup is not None:
        setup(tmp_path / "app")
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(as_stack_file(raw))
    return tmp_path


def check(directory: Path, stack: str = STACK) -> tuple[int, str]:
    """`python -m stack check <stack> --dir <directory>`: its exit code and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        code = cli.main(["check", stack, "--dir", str(directory)])
    return code, out.getvalue()


def assert_refused(case: Refused, tmp_path: Path) -> None:
    raw = changed(good(case.platform), case.changes)
    code, output = check(project(tmp_path, raw, case.stack, case.setup), case.stack)
    assert "Traceback" not in output, output
    assert code == 2, f"exit {code}, expected 2:\n{output}"
    # A settings error starts with the key; one the file reader finds, with the file first.
    heads = (f"  - {PREFIX}{case.key}:", f"  - Pulumi.{case.stack}.yaml: config: {PREFIX}{case.key}:")
    named = [line for line in output.splitlines() if line.startswith(heads)]
    assert named, f"no error names {PREFIX}{case.key}:\n{output}"
    assert any(case.says in line for line in named), (
        f"no error at {case.key} says {case.says!r}:\n" + "\n".join(named))


def assert_accepted(case: Accepted, tmp_path: Path) -> None:
    raw = changed(good(case.platform), case.changes)
    directory = project(tmp_path, raw, case.stack, case.setup)
    code, output = check(directory, case.stack)
    assert code == 0, f"exit {code}:\n{output}"
    loaded = settings.from_stack_file(case.stack, directory)
    assert case.then(loaded), f"{case.id}: loaded, but not as expected: {loaded}"
    check_outputs(loaded, None)  # and what it renders passes the files' and scripts' own checks


def source_in(folder: str) -> Callable[[Path], None]:
    """A folder in the app that holds the app's dependency list (its source, not assets)."""
    def make(app: Path) -> None:
        (app / folder).mkdir()
        (app / folder / "requirements.txt").write_text("flask\n")
    return make


def link_out(folder: str, target: str) -> Callable[[Path], None]:
    def make(app: Path) -> None:
        (app / folder).symlink_to(target)
    return make


def folder(name: str) -> Callable[[Path], None]:
    def make(app: Path) -> None:
        (app / name).mkdir(parents=True)
        (app / name / "site.css").write_text("body {}\n")
    return make


def env_of(s: settings.Settings) -> dict[str, str]:
    return dict(s.app.env)


PEM_KEY = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAA -----END OPENSSH PRIVATE KEY-----"

# -- the tables -------------------------------------------------------------------------------
# Values that would replace something of the host's, or reach outside the release.
NAMES_AND_PATHS: list[Refused | Accepted] = [
    Refused("name-systemd-resolved", DO, {"app.name": "systemd-resolved"}, "app.name",
            'starts with "systemd"'),
    Refused("name-certbot", AWS, {"app.name": "certbot"}, "app.name", "already the name"),
    Refused("name-ssh", EXISTING, {"app.name": "ssh"}, "app.name", "already the name"),
    Refused("name-ssl-is-etc-ssl", DO, {"app.name": "ssl"}, "app.name", "directory"),
    Refused("name-dpkg-is-var-lib-dpkg", AWS, {"app.name": "dpkg"}, "app.name", "already the name"),
    Refused("name-cron", EXISTING, {"app.name": "cron"}, "app.name", "already the name"),
    Refused("name-www-data", DO, {"app.name": "www-data"}, "app.name", "system user"),
    Refused("name-cloud-init", AWS, {"app.name": "cloud-init"}, "app.name", "already the name"),
    Refused("name-getty-family", EXISTING, {"app.name": "getty-web"}, "app.name",
            'starts with "getty"'),
    Refused("name-nginx-family", DO, {"app.name": "nginx-proxy"}, "app.name", 'starts with "nginx"'),
    Refused("name-capitals", DO, {"app.name": "MyApp"}, "app.name", "short lower-case name"),
    Refused("name-trailing-dash", AWS, {"app.name": "app-"}, "app.name", "short lower-case name"),
    Refused("name-too-long", EXISTING, {"app.name": "a" * 40}, "app.name", "short lower-case name"),
    Refused("name-dot", DO, {"app.name": "my.app"}, "app.name", "short lower-case name"),
    Refused("name-path", AWS, {"app.name": "../etc"}, "app.name", "short lower-case name"),
    Refused("name-percent-specifier", EXISTING, {"app.name": "app%n"}, "app.name",
            "short lower-case name"),
    Refused("path-absolute", EXISTING, {"app.path": "/etc"}, "app.path", "must be relative"),
    Refused("path-climbs-out", DO, {"app.path": "../.."}, "app.path", "leads out of the project"),
    Refused("path-climbs-out-midway", AWS, {"app.path": "app/../../elsewhere"}, "app.path",
            "leads out of the project"),
    Refused("path-out-of-the-repository", AWS, {"app.path": "../elsewhere"}, "app.path",
            "leads out of its git repository", setup=lambda app: (app.parent / ".git").mkdir()),
    Refused("path-home", EXISTING, {"app.path": "~/src/shop"}, "app.path", "must be relative"),
    Refused("path-windows", DO, {"app.path": "C:\\src\\shop"}, "app.path", "must be relative"),
    Refused("static-dir-the-app-itself", DO, {"app.staticDir": "."}, "app.staticDir",
            'without "." or ".."'),
    Refused("static-dir-dot-segment", AWS, {"app.staticDir": "./static"}, "app.staticDir",
            'without "." or ".."'),
    Refused("static-dir-climbs", EXISTING, {"app.staticDir": "static/../.."}, "app.staticDir",
            'without "." or ".."'),
    Refused("static-dir-git", DO, {"app.staticDir": ".git"}, "app.staticDir", "hidden folder"),
    Refused("static-dir-in-venv", AWS, {"app.staticDir": ".venv/lib"}, "app.staticDir",
            "hidden folder"),
    Refused("static-dir-is-source", EXISTING, {"app.staticDir": "src"}, "app.staticDir",
            "holds requirements.txt", setup=source_in("src")),
    Refused("static-dir-links-to-root", DO, {"app.staticDir": "assets"}, "app.staticDir",
            "leads out of the app", setup=link_out("assets", "/")),
    Refused("static-dir-links-to-app", AWS, {"app.staticDir": "assets"}, "app.staticDir",
            "leads out of the app", setup=link_out("assets", ".")),
    Refused("static-url-climbs", DO, {"app.staticUrl": "/static/../etc"}, "app.staticUrl",
            '"." or ".."'),
    Refused("static-url-dot", EXISTING, {"app.staticUrl": "/./static"}, "app.staticUrl",
            '"." or ".."'),
    Refused("static-url-acme", AWS, {"app.staticUrl": "/.well-known/acme-challenge"},
            "app.staticUrl", "/.well-known/"),
    Refused("static-url-trailing-slash", DO, {"app.staticUrl": "/static/"}, "app.staticUrl",
            "no trailing slash"),
    Refused("entry-runs-code", EXISTING, {"app.entry": 'rocket:create_app(); import os; os.system("id")'},
            "app.entry", "expected"),
    Refused("entry-triple-quote", DO, {"app.entry": 'rocket:app"""'}, "app.entry", "expected"),
    Refused("entry-call-in-arguments", AWS, {"app.entry": 'rocket:create(__import__("os"))'},
            "app.entry", "must be literals"),
    Refused("entry-splat", EXISTING, {"app.entry": "rocket:create(**{'a': 1})"}, "app.entry",
            "must be literals"),
    Refused("entry-bad-escape", DO, {"app.entry": r'rocket:create("C:\Users")'},
            "app.entry", "expected"),
    Accepted("name-ordinary", DO, {"app.name": "shop-api"}, lambda s: s.app.name == "shop-api"),
    Accepted("name-web", EXISTING, {"app.name": "web"}, lambda s: s.app.name == "web"),
    Accepted("path-dot-slash", AWS, {"app.path": "./app"}, lambda s: s.app.path.name == "app"),
    Accepted("static-dir-nested", DO, {"app.staticDir": "public/assets"},
             lambda s: s.app.static_dir == "public/assets", setup=folder("public/assets")),
    Accepted("static-url-deep", EXISTING, {"app.staticUrl": "/assets/v1"},
             lambda s: s.app.static_url == "/assets/v1"),
    Accepted("workers-auto-in-capitals", AWS, {"app.workers": "AUTO"}, lambda s: s.app.workers is None),
]

# The environment: names Gunicorn, Python, the loader or systemd interpret, secrets in plain text.
ENVIRONMENT: list[Refused | Accepted] = [
    Refused("env-gunicorn-cmd-args", DO, {"app.env.GUNICORN_CMD_ARGS": "--forwarded-allow-ips=*"},
            "app.env.GUNICORN_CMD_ARGS", "override the checked gunicorn.conf.py"),
    Refused("env-gunicorn-timeout", AWS, {"app.env.GUNICORN_CMD_ARGS": "--timeout 0"},
            "app.env.GUNICORN_CMD_ARGS", "app.timeout"),
    Refused("env-forwarded-allow-ips", EXISTING, {"app.env.FORWARDED_ALLOW_IPS": "*"},
            "app.env.FORWARDED_ALLOW_IPS", "trustedProxies"),
    Refused("env-web-concurrency", DO, {"app.env.WEB_CONCURRENCY": "64"}, "app.env.WEB_CONCURRENCY",
            "set app.workers"),
    Refused("env-gunicorn-fd", AWS, {"app.env.GUNICORN_FD": "3"}, "app.env.GUNICORN_FD", "Gunicorn"),
    Refused("env-ld-preload", EXISTING, {"app.env.LD_PRELOAD": "/tmp/x.so"}, "app.env.LD_PRELOAD",
            "dynamic loader"),
    Refused("env-ld-library-path", DO, {"app.env.LD_LIBRARY_PATH": "/tmp"}, "app.env.LD_LIBRARY_PATH",
            "dynamic loader"),
    Refused("env-glibc-tunables", AWS, {"app.env.GLIBC_TUNABLES": "glibc.malloc.mxfast=0"},
            "app.env.GLIBC_TUNABLES", "MALLOC_ARENA_MAX"),
    Refused("env-pythonpath", EXISTING, {"app.env.PYTHONPATH": "/tmp"}, "app.env.PYTHONPATH",
            "Python reads it"),
    Refused("env-pythonstartup", DO, {"app.env.PYTHONSTARTUP": "/tmp/x.py"}, "app.env.PYTHONSTARTUP",
            "Python reads it"),
    Refused("env-pythonwarnings-imports", AWS, {"app.env.PYTHONWARNINGS": "ignore::evil.Warning"},
            "app.env.PYTHONWARNINGS", "Python reads it"),
    Refused("secret-env-pythonhome", EXISTING, {"app.secretEnv.PYTHONHOME": Secret("x")},
            "app.secretEnv.PYTHONHOME", "remove it from app.secretEnv"),
    Refused("env-home", DO, {"app.env.HOME": "/root"}, "app.env.HOME", "systemd sets it"),
    Refused("env-shell", AWS, {"app.env.SHELL": "/bin/sh"}, "app.env.SHELL", "systemd sets it"),
    Refused("env-listen-fds", EXISTING, {"app.env.LISTEN_FDS": "3"}, "app.env.LISTEN_FDS",
            "systemd sets it"),
    Refused("env-notify-socket", DO, {"app.env.NOTIFY_SOCKET": "/run/x"}, "app.env.NOTIFY_SOCKET",
            "systemd sets it"),
    Refused("env-state-directory", AWS, {"app.env.STATE_DIRECTORY": "/tmp"},
            "app.env.STATE_DIRECTORY", "systemd sets it"),
    Refused("env-flask-stack-release", EXISTING, {"app.env.FLASK_STACK_RELEASE": "x"},
            "app.env.FLASK_STACK_RELEASE", "the program sets it"),
    Refused("env-secret-key-in-plain", DO, {"app.env.FLASK_SECRET_KEY": "hunter2"},
            "app.env.FLASK_SECRET_KEY",
            "pulumi config set --secret --path app.secretEnv.FLASK_SECRET_KEY"),
    Refused("env-token-in-plain", AWS, {"app.env.GITHUB_TOKEN": "ghp_x"}, "app.env.GITHUB_TOKEN",
            "looks like a secret"),
    Refused("env-password-in-plain", EXISTING, {"app.env.DB_PASSWORD": "pw"}, "app.env.DB_PASSWORD",
            "looks like a secret"),
    Refused("env-api-key-in-plain", DO, {"app.env.STRIPE_API_KEY": "sk_live_x"},
            "app.env.STRIPE_API_KEY", "looks like a secret"),
    Refused("env-aws-secret-in-plain", AWS, {"app.env.AWS_SECRET_ACCESS_KEY": "x"},
            "app.env.AWS_SECRET_ACCESS_KEY", "looks like a secret"),
    Refused("env-url-with-password", EXISTING,
            {"app.env.REDIS_URL": "redis://:hunter2@redis.internal:6379/0"}, "app.env.REDIS_URL",
            "a URL with a password"),
    Refused("env-private-key-value", DO, {"app.env.SIGNER": PEM_KEY}, "app.env.SIGNER",
            "a private key"),
    Refused("env-escape-character", AWS, {"app.env.GREETING": "hi\x1b[31m"}, "app.env.GREETING",
            "control character"),
    Refused("env-nul", EXISTING, {"app.env.GREETING": "a\x00b"}, "app.env.GREETING",
            "control character"),
    Refused("env-name-not-ascii", DO, {"app.env.CAFÉ": "x"}, "app.env.CAFÉ",
            "not a valid environment variable name"),
    Accepted("env-harmless-python", DO, {"app.env.PYTHONUNBUFFERED": "1"},
             lambda s: env_of(s)["PYTHONUNBUFFERED"] == "1"),
    Accepted("env-names-near-secrets", AWS, {"app.env.TOKEN_TTL": "3600",
                                             "app.env.PASSWORD_MIN_LENGTH": "12",
                                             "app.env.SENTRY_DSN": "https://abc@o1.ingest.sentry.io/1"},
             lambda s: {"TOKEN_TTL", "PASSWORD_MIN_LENGTH", "SENTRY_DSN"} <= set(env_of(s))),
    Accepted("env-metacharacters-kept", EXISTING, {"app.env.GREETING": "it's \"$HOME\" `id` 100% #1 \\"},
             lambda s: env_of(s)["GREETING"] == "it's \"$HOME\" `id` 100% #1 \\"),
    Accepted("env-lower-case-path-is-the-apps", DO, {"app.env.path": "/x"},
             lambda s: env_of(s)["path"] == "/x"),
]

# Sizes: nothing a user sets may make a step's command exceed one exec argument.
LIMITS: list[Refused | Accepted] = [
    Refused("env-value-too-big", DO, {"app.env.BLOB": "x" * 5000}, "app.env.BLOB", "at most 4,096"),
    Refused("env-value-200k", AWS, {"app.env.BLOB": "x" * 200_000}, "app.env.BLOB", "more than the 65,536"),
    Refused("env-too-much-in-all", EXISTING,
            {f"app.env.BLOB{i}": "x" * 4000 for i in range(5)}, "app.env", "at most 16,384"),
    Refused("env-too-many-names", DO, {f"app.env.V{i}": "1" for i in range(201)}, "app.env",
            "at most 200"),
    Refused("release-command-too-big", AWS, {"app.releaseCommand": "flask db upgrade; " * 150},
            "app.releaseCommand", "at most 2,048"),
    Refused("release-command-200k", EXISTING, {"app.releaseCommand": "x" * 200_000},
            "app.releaseCommand", "more than the 65,536"),
    Refused("release-command-multi-line", DO, {"app.releaseCommand": "flask db upgrade\nrm -rf /"},
            "app.releaseCommand", "one line"),
    Refused("release-command-nul", AWS, {"app.releaseCommand": "flask db upgrade\x00; rm -rf /"},
            "app.releaseCommand", "NUL byte"),
    Accepted("env-value-at-the-limit", AWS, {"app.env.BLOB": "x" * 4096},
             lambda s: len(env_of(s)["BLOB"]) == 4096),
    Accepted("release-command-at-the-limit", EXISTING, {"app.releaseCommand": "true " + "x" * 2043},
             lambda s: len(s.app.release_command) == 2048),
]

# Ranges, addresses, regions, names of the cloud, the web keys' collisions, lifecycle.
_ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f"
_SERVERS = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(101)]  # private: the host tests' kind
_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDiDpa+Q74+gxFHdYkOMZHcBd7Av8W6x+bGgQA6CO2Df "
        "deploy@example.com")
NETWORK_AND_WEB: list[Refused | Accepted] = [
    # Ranges that are the internet in disguise: what a list covers together is counted.
    Refused("admin-two-halves-do", DO, {"ssh.adminCidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
            "ssh.adminCidrs", "together cover 3,702,259,456 public IPv4 addresses (the whole internet)"),
    Refused("admin-two-halves-aws", AWS, {"ssh.adminCidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
            "ssh.adminCidrs", "SSH should be open to your own addresses"),
    Refused("admin-one-half", AWS, {"ssh.adminCidrs": ["128.0.0.0/1"]}, "ssh.adminCidrs",
            "128.0.0.0/1 covers 1,609,301,760 public IPv4 addresses (43.5% of the public IPv4 internet)"),
    Refused("admin-a-slash-7", DO, {"ssh.adminCidrs": ["8.0.0.0/7"]}, "ssh.adminCidrs",
            "more than a /8"),
    Refused("admin-two-slash-8s", AWS, {"ssh.adminCidrs": ["11.0.0.0/8", "12.0.0.0/8"]},
            "ssh.adminCidrs", "together cover 33,554,432 public IPv4 addresses"),
    Refused("admin-v6-global-unicast", DO, {"ssh.adminCidrs": ["2000::/3"]}, "ssh.adminCidrs",
            "public IPv6 addresses"),
    Refused("admin-v6-two-slash-31s", AWS, {"ssh.adminCidrs": ["2a00::/31", "2a02::/31"]},
            "ssh.adminCidrs", "more than one /32"),
    Refused("admin-world-v4", AWS, {"ssh.adminCidrs": ["0.0.0.0/0"]}, "ssh.adminCidrs[0]",
            "opens SSH to the whole internet"),
    Refused("admin-world-v6", DO, {"ssh.adminCidrs": ["203.0.113.7/32", "::/0"]},
            "ssh.adminCidrs[1]", "opens SSH to the whole internet"),
    Refused("proxies-two-halves", EXISTING, {"hosts.trustedProxies": ["0.0.0.0/1", "128.0.0.0/1"]},
            "hosts.trustedProxies", "could forge X-Forwarded-For"),
    Refused("proxies-a-slash-6", EXISTING, {"hosts.trustedProxies": ["4.0.0.0/6"]},
            "hosts.trustedProxies", "a load balancer has few addresses"),
    Refused("proxies-v6-wide", EXISTING, {"hosts.trustedProxies": ["2000::/4", "3000::/4"]},
            "hosts.trustedProxies", "public IPv6 addresses"),
    Refused("proxies-world", EXISTING, {"hosts.trustedProxies": ["0.0.0.0/0"]},
            "hosts.trustedProxies[0]", "forge X-Forwarded-For"),
    Accepted("admin-three-24s", DO, {"ssh.adminCidrs": ["203.0.113.0/24", "198.51.100.0/24",
                                                        "192.0.2.0/24"]},
             lambda s: len(s.ssh.admin_cidrs) == 3),
    Accepted("admin-a-public-slash-8", AWS, {"ssh.adminCidrs": ["11.0.0.0/8"]},
             lambda s: s.ssh.admin_cidrs == ("11.0.0.0/8",)),
    Accepted("admin-private-space", DO, {"ssh.adminCidrs": ["10.0.0.0/8", "100.64.0.0/10",
                                                            "172.16.0.0/12"]},
             lambda s: len(s.ssh.admin_cidrs) == 3),
    Accepted("admin-v6-a-slash-32", AWS, {"ssh.adminCidrs": ["2001:db8::/32", "203.0.113.7/32"]},
             lambda s: s.ssh.admin_cidrs[0] == "2001:db8::/32"),
    Accepted("admin-v6-one-address", DO, {"ssh.adminCidrs": ["2001:db8::7/128"]},
             lambda s: s.ssh.admin_cidrs == ("2001:db8::7/128",)),
    Accepted("proxies-a-private-slash-8", EXISTING, {"hosts.trustedProxies": ["10.0.0.0/8"]},
             lambda s: s.trusted_proxies == ("10.0.0.0/8",)),
    Accepted("proxies-all-private-space", EXISTING, {"hosts.trustedProxies": [
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]},
        lambda s: len(s.hosts.trusted_proxies) == 4),
    Accepted("proxies-a-balancer", EXISTING, {"hosts.trustedProxies": ["198.51.100.0/28"]},
             lambda s: s.hosts.trusted_proxies == ("198.51.100.0/28",)),
    # The VPC range: RFC 1918 only, and only where the program creates a network.
    Refused("vpc-loopback", DO, {"network.vpcCidr": "127.0.0.0/16"}, "network.vpcCidr",
            "127.0.0.0/8 is loopback"),
    Refused("vpc-link-local", AWS, {"network.vpcCidr": "169.254.0.0/16"}, "network.vpcCidr",
            "link-local"),
    Refused("vpc-cgnat", DO, {"network.vpcCidr": "100.64.0.0/16"}, "network.vpcCidr",
            "carrier-grade NAT"),
    Refused("vpc-public", AWS, {"network.vpcCidr": "8.8.0.0/16"}, "network.vpcCidr", "RFC 1918"),
    Refused("vpc-on-existing", EXISTING, {"network.vpcCidr": "10.20.0.0/16"}, "network.vpcCidr",
            "the program creates no private network there"),
    Refused("zones-on-existing", EXISTING, {"network.zones": 2}, "network.zones",
            "is only for platform aws"),
    Accepted("vpc-172", DO, {"network.vpcCidr": "172.16.0.0/16"},
             lambda s: s.network.vpc_cidr == "172.16.0.0/16"),
    Accepted("vpc-192-168", AWS, {"network.vpcCidr": "192.168.0.0/16"},
             lambda s: s.network.vpc_cidr == "192.168.0.0/16"),
    # Server addresses: an IP must be one server's; names stay names.
    Refused("address-loopback", EXISTING, {"hosts.addresses": ["203.0.113.10", "127.0.0.1"]},
            "hosts.addresses[1]", "loopback"),
    Refused("address-unspecified", EXISTING, {"hosts.addresses": ["0.0.0.0"]},  # noqa: S104
            "hosts.addresses[0]", "unspecified"),
    Refused("address-v6-unspecified", EXISTING, {"hosts.addresses": ["203.0.113.10", "::"]},
            "hosts.addresses[1]", "unspecified"),
    Refused("address-v6-loopback", EXISTING, {"hosts.addresses": ["::1"]}, "hosts.addresses[0]",
            "loopback"),
    Refused("address-multicast", EXISTING, {"hosts.addresses": ["224.0.0.251"]},
            "hosts.addresses[0]", "multicast"),
    Refused("address-link-local", EXISTING, {"hosts.addresses": ["169.254.169.254"]},
            "hosts.addresses[0]", "link-local"),
    Refused("address-v6-link-local", EXISTING, {"hosts.addresses": ["fe80::1"]},
            "hosts.addresses[0]", "link-local"),
    Refused("address-broadcast", EXISTING, {"hosts.addresses": ["255.255.255.255"]},
            "hosts.addresses[0]", "broadcast"),
    Refused("address-this-network", EXISTING, {"hosts.addresses": ["0.1.2.3"]},
            "hosts.addresses[0]", "0.0.0.0/8"),
    Refused("address-non-ascii", EXISTING, {"hosts.addresses": ["bücher.example"]},
            "hosts.addresses[0]", '"xn--bcher-kva.example"'),
    Refused("addresses-over-100", EXISTING, {"hosts.addresses": _SERVERS}, "hosts.addresses",
            "lists 101 servers; at most 100"),
    Refused("bastion-loopback", EXISTING, {"ssh.bastion.host": "127.0.0.1"}, "ssh.bastion.host",
            "loopback"),
    Refused("bastion-multicast", AWS, {"ssh.bastion.host": "ff02::1"}, "ssh.bastion.host",
            "multicast"),
    Refused("bastion-non-ascii", EXISTING, {"ssh.bastion.host": "sprung.bücher.example"},
            "ssh.bastion.host", '"sprung.xn--bcher-kva.example"'),
    Accepted("addresses-private", EXISTING, {"hosts.addresses": ["10.0.0.5", "192.168.1.7"]},
             lambda s: s.hosts.addresses == ("10.0.0.5", "192.168.1.7")),
    Accepted("addresses-v6-normalised", EXISTING, {"hosts.addresses": ["2001:DB8:0::10"]},
             lambda s: s.hosts.addresses == ("2001:db8::10",)),
    Accepted("addresses-names-lower-cased", EXISTING,
             {"hosts.addresses": ["app1.example.com", "APP2.Example.com"]},
             lambda s: s.hosts.addresses == ("app1.example.com", "app2.example.com")),
    Accepted("addresses-punycode-tld", EXISTING, {"hosts.addresses": ["app.example.xn--p1ai"]},
             lambda s: s.hosts.addresses == ("app.example.xn--p1ai",)),
    Accepted("addresses-100", EXISTING, {"hosts.addresses": _SERVERS[:100]},
             lambda s: s.hosts.count == 100),
    Accepted("bastion-private-ip", EXISTING, {"ssh.bastion.host": "192.168.56.2"},
             lambda s: s.ssh.bastion is not None and s.ssh.bastion.host == "192.168.56.2"),
    # Keys that mean nothing where no database, network, login key or firewall is created.
    Refused("db-engine-on-existing", EXISTING, {"database.engineVersion": "16"},
            "database.engineVersion", "the program creates no database there"),
    Refused("db-ha-on-existing", EXISTING, {"database.highAvailability": True},
            "database.highAvailability", "the program creates no database there"),
    Refused("db-name-on-existing", EXISTING, {"database.name": "app"}, "database.name",
            "database.url is yours"),
    Refused("db-user-on-existing", EXISTING, {"database.user": "app"}, "database.user",
            "is only for platforms digitalocean and aws"),
    Refused("db-backups-on-existing", EXISTING, {"database.backupRetentionDays": 7},
            "database.backupRetentionDays", "backs up none of yours"),
    Refused("public-key-on-existing", EXISTING, {"ssh.publicKey": _KEY}, "ssh.publicKey",
            "already have their login keys"),
    Refused("admin-cidrs-on-existing", EXISTING, {"ssh.adminCidrs": ["203.0.113.7/32"]},
            "ssh.adminCidrs", "creates no firewall there"),
    Accepted("db-ha-false-on-existing", EXISTING, {"database.highAvailability": False},
             lambda s: s.database.high_availability is False),
    # Accepted now, failing at deploy: refused up front.
    Refused("db-user-pg-prefix-do", DO, {"database.user": "pg_app"}, "database.user",
            "PostgreSQL reserves for its own roles"),
    Refused("db-user-pg-prefix-aws", AWS, {"database.user": "pg_monitor"}, "database.user",
            "starts with pg_"),
    Refused("region-typo-aws", AWS, {"region": "eu-wset-1"}, "region", 'did you mean "eu-west-1"?'),
    Refused("region-made-up-aws", AWS, {"region": "xx-nowhere-1"}, "region",
            "aws ec2 describe-regions"),
    Refused("region-typo-do", DO, {"region": "fra2"}, "region", 'did you mean "fra1"?'),
    Refused("region-made-up-do", DO, {"region": "abc1"}, "region", "doctl compute region list"),
    Refused("expiry-past-do", DO, {"expiresAt": "2020-01-01T00:00:00Z", "ephemeral": DELETE}, "expiresAt",
            "is in the past", stack="pr-7"),
    Refused("expiry-past-aws", AWS, {"expiresAt": "2026-01-01T00:00:00Z", "ephemeral": DELETE}, "expiresAt",
            "pulumi config set expiresAt", stack="pr-7"),
    Accepted("region-eu-west-1", AWS, {"region": "eu-west-1"}, lambda s: s.region == "eu-west-1"),
    Accepted("region-far-aws", AWS, {"region": "ap-southeast-2", "domain.route53Zone": DELETE,
                                     "domain.dnsRecords": False,
                                     "domain.certificateArn": _ARN.replace("eu-west-1",
                                                                           "ap-southeast-2")},
             lambda s: s.region == "ap-southeast-2"),
    Accepted("region-nyc3", DO, {"region": "nyc3"}, lambda s: s.region == "nyc3"),
    Accepted("expiry-future", DO, {"expiresAt": "2099-01-01T00:00:00Z", "ephemeral": DELETE},
             lambda s: s.ephemeral and s.expires_at == "2099-01-01T00:00:00Z", stack="pr-7"),
    Accepted("db-user-with-pg-inside", AWS, {"database.user": "app_pg"},
             lambda s: s.database.user == "app_pg"),
    # Silently ignored: DNS records that would not be made.
    Refused("dns-records-without-zone", AWS, {"domain.route53Zone": DELETE, "domain.certificateArn": _ARN},
            "domain.dnsRecords", "needs domain.route53Zone (the public hosted zone the records go in)"),
    Refused("dns-records-without-name", DO, {"domain.name": DELETE}, "domain.dnsRecords",
            "needs domain.name"),
    Accepted("dns-records-off-without-zone", AWS, {"domain.route53Zone": DELETE,
                                                   "domain.certificateArn": _ARN,
                                                   "domain.dnsRecords": False},
             lambda s: s.domain.dns_records is False and s.domain.certificate_arn == _ARN),
    # Valid input that was refused; and the exact words where case matters.
    Refused("domain-non-ascii", DO, {"domain.name": "bücher.example"}, "domain.name",
            'give its punycode form, "xn--bcher-kva.example"'),
    Refused("zone-non-ascii", AWS, {"domain.name": "xn--bcher-kva.example",
                                    "domain.route53Zone": "bücher.example"},
            "domain.route53Zone", '"xn--bcher-kva.example"'),
    Refused("domain-digit-tld", DO, {"domain.name": "example.c0m"}, "domain.name",
            'expected a domain name like "example.com"'),
    Refused("front-upper-case", DO, {"front": "NGINX"}, "front", 'must be written "nginx"'),
    Refused("image-upper-case", AWS, {"hosts.image": "Debian-12"}, "hosts.image",
            'must be written "debian-12"'),
    Refused("front-workers-word", DO, {"frontWorkers": "many"}, "frontWorkers",
            'must be "auto" or a whole number from 1 to 64'),
    Refused("front-workers-zero", EXISTING, {"frontWorkers": 0}, "frontWorkers", '"auto"'),
    Refused("tls-email-bad", EXISTING, {"tls.email": "ops-at-example"}, "tls.email",
            "expected an email address"),
    Accepted("domain-upper-case", DO, {"domain.name": "Example.COM"},
             lambda s: s.domain.name == "example.com"),
    Accepted("domain-punycode-tld", DO, {"domain.name": "example.xn--p1ai"},
             lambda s: s.domain.name == "example.xn--p1ai"),
    Accepted("zone-upper-case", AWS, {"domain.name": "Shop.Example.com", "domain.route53Zone": "EXAMPLE.com"},
             lambda s: (s.domain.name, s.domain.route53_zone) == ("shop.example.com", "example.com")),
    Accepted("front-workers-auto-upper", DO, {"frontWorkers": "AUTO"},
             lambda s: s.front_workers is None),
    Accepted("front-workers-eight", AWS, {"frontWorkers": 8}, lambda s: s.front_workers == 8),
    # The stack's own paths and ports.
    Refused("health-acme", DO, {"deploy.healthPath": "/.well-known/acme-challenge/ping"},
            "deploy.healthPath", "/.well-known/acme-challenge/"),
    Refused("health-acme-bare", EXISTING, {"deploy.healthPath": "/.well-known/acme-challenge"},
            "deploy.healthPath", "never passes to the app"),
    Refused("health-dot-dot", AWS, {"deploy.healthPath": "/a/../b"}, "deploy.healthPath",
            '"/../"'),
    Refused("health-dot", EXISTING, {"deploy.healthPath": "/./x"}, "deploy.healthPath", '"/./"'),
    Refused("health-double-slash", DO, {"deploy.healthPath": "//x"}, "deploy.healthPath", '"//"'),
    Refused("health-dot-dot-end", AWS, {"deploy.healthPath": "/status/.."}, "deploy.healthPath",
            "write the path out"),
    Refused("listen-acme-port", DO, {"app.listen": "127.0.0.1:8402"}, "app.listen",
            "certbot answers certificate challenges"),
    Refused("listen-acme-port-v6", EXISTING, {"app.listen": "[::1]:8402"}, "app.listen", "8402"),
    Accepted("health-trailing-slash", DO, {"deploy.healthPath": "/status/ready/"},
             lambda s: s.deploy.health_path == "/status/ready/"),
    Accepted("health-well-known-other", AWS, {"deploy.healthPath": "/.well-known/health"},
             lambda s: s.deploy.health_path == "/.well-known/health"),
    Accepted("health-dots-in-a-name", EXISTING, {"deploy.healthPath": "/v1.2/..ok"},
             lambda s: s.deploy.health_path == "/v1.2/..ok"),
    Accepted("listen-8000", DO, {"app.listen": "127.0.0.1:8000"},
             lambda s: s.app.listen == "127.0.0.1:8000"),
    Accepted("listen-8403", EXISTING, {"app.listen": "127.0.0.1:8403"},
             lambda s: s.app.listen == "127.0.0.1:8403"),
]

CASES = [*NAMES_AND_PATHS, *ENVIRONMENT, *LIMITS, *NETWORK_AND_WEB]


@pytest.mark.parametrize("case", [c for c in CASES if isinstance(c, Refused)], ids=lambda c: c.id)
def test_refused(case: Refused, tmp_path: Path) -> None:
    assert_refused(case, tmp_path)


@pytest.mark.parametrize("case", [c for c in CASES if isinstance(c, Accepted)], ids=lambda c: c.id)
def test_accepted(case: Accepted, tmp_path: Path) -> None:
    assert_accepted(case, tmp_path)


def test_the_good_configs_pass_check(tmp_path: Path) -> None:
    """The base every case changes passes as it is, on each platform."""
    for platform in (DO, AWS, EXISTING):
        directory = tmp_path / platform
        directory.mkdir()
        code, output = check(project(directory, good(platform)))
        assert code == 0, f"{platform}: exit {code}\n{output}"


def test_the_catalogue_is_large_and_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len([c for c in CASES if isinstance(c, Refused)]) >= 80
    assert {c.platform for c in CASES} == {DO, AWS, EXISTING}


_ = DELETE  # cases remove keys with DELETE
