"""Every file a host receives, rendered from the settings: pure functions, no I/O but reading
the templates, deterministic output (no timestamps, sorted keys).

`render_host(settings, host)` returns {remote path: content} for one host. Secrets are never in
it: the secret environment file is built by the host step from Pulumi secrets.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path, PurePosixPath

import jinja2

from stack import hostfiles
from stack.inventory import Host
from stack.paths import LETSENCRYPT_LIVE, WSGI_MODULE, Paths
from stack.settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
HEADER = "# Rendered by flask-stack for {app}. Do not edit here: the next deploy replaces it."

# Mozilla's "intermediate" TLS profile (TLS 1.2 ciphers; TLS 1.3 suites are fixed by OpenSSL).
INTERMEDIATE_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
])
FRONT_USERS = {"nginx": "www-data", "haproxy": "haproxy"}
ACME_PORT = 8402


def environment() -> jinja2.Environment:
    """The Jinja2 environment of the templates directory, made once: it keeps every compiled
    template (and recompiles one whose file changed), so rendering 100 hosts compiles each once."""
    return _environment(str(TEMPLATES))


@functools.lru_cache(maxsize=4)
def _environment(templates: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - config files, not HTML
    )


def env_file_line(key: str, value: str) -> str:
    """One systemd EnvironmentFile line; the value double-quoted so spaces, quotes, # and $
    reach the app unchanged. Backslash, double quote, $ and backtick are escaped: systemd
    unescapes exactly these inside double quotes, and so does a shell that sources the file
    (which would otherwise run a `command` in a value)."""
    return f'{key}="{in_double_quotes(value)}"'


def in_double_quotes(text: str) -> str:
    """`text` escaped for inside double quotes (a shell's or systemd's): backslash, double quote,
    $ and backtick, the characters both interpret there."""
    for char in ("\\", '"', "$", "`"):
        text = text.replace(char, "\\" + char)
    return text


def parse_entry(entry: str) -> dict:
    """Split a Gunicorn-style entry ("pkg.mod:app", "mod:create_app('x')") for the WSGI module."""
    module, expr = entry.split(":", 1)
    node = ast.parse(expr.strip(), mode="eval").body
    call = isinstance(node, ast.Call)
    args: list = []
    kwargs: dict = {}
    if call:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        node = node.func
    attributes = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    attributes.append(node.id)
    kwargs = dict(sorted(kwargs.items()))
    arguments = [py_literal(a) for a in args] + [f"{k}={py_literal(v)}" for k, v in kwargs.items()]
    return {"module_name": module, "attributes": attributes[::-1], "call": call, "args": args,
            "kwargs": kwargs, "arguments": ", ".join(arguments)}


def py_literal(value) -> str:
    """Python source for a literal from the entry (JSON would turn False/None into false/null);
    set members sorted, so the output does not depend on the hash seed."""
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(py_literal(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(py_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def context(settings: Settings, host: Host) -> dict:
    app = settings.app
    paths = Paths(app.name)
    tls = settings.tls
    behind_proxy = bool(settings.trusted_proxies)
    unix = app.listen == "unix"
    listen = paths.socket if unix else app.listen
    front_user = FRONT_USERS[settings.front]
    static = None
    if app.static_dir:
        static = {"url": app.static_url, "root": f"{paths.current}/{app.static_dir}",
                  "expires": "7d"}
    app_listens = ["listen 80" + ("" if settings.domain.name else " default_server"),
                   "listen [::]:80" + ("" if settings.domain.name else " default_server")]
    if tls.enabled:
        app_listens = ["listen 443 ssl http2", "listen [::]:443 ssl http2"]
    return {
        "header": HEADER.format(app=app.name),
        "host": host,
        "app": app,
        "domain": settings.domain,
        "deploy": settings.deploy,
        "rate_limit": settings.rate_limit,
        "paths": paths,
        "front_user": front_user,
        "trusted_proxies": list(settings.trusted_proxies),
        "proxy_note": (
            f"It sits behind a load balancer: forwarded headers are trusted only from "
            f"{', '.join(settings.trusted_proxies)}." if behind_proxy else
            "It faces the internet itself: every forwarded header a client sends is replaced."),
        "upstream_address": f"unix:{listen}" if unix else listen,
        "static": static,
        "env_lines": [env_file_line(k, v) for k, v in app.env],
        "tls": {
            "enabled": tls.enabled,
            "ciphers": INTERMEDIATE_CIPHERS,
            "certificate": paths.tls_fullchain,
            "certificate_key": paths.tls_key,
            "haproxy_pem": paths.tls_pem,
            "lineage": f"{LETSENCRYPT_LIVE}/{settings.domain.name}",
            "front": "nginx" if settings.front == "nginx" else "haproxy",
            "reload_timeout": 30,
        },
        "nginx": {
            "upstream": f"{app.name.replace('-', '_')}_gunicorn",
            "var": app.name.replace("-", "_"),
            "worker_connections": 4096,
            "rlimit_nofile": 16384,
            # Behind a cloud balancer (idle timeout 60 s) Nginx must keep connections longer.
            "keepalive_timeout": 75 if behind_proxy else 30,
            # Nginx drops idle upstream connections before Gunicorn would (app.keepalive).
            "upstream_keepalive_timeout": max(1, app.keepalive - 5) if app.keepalive else 1,
            "proxy_read_timeout": app.timeout + 5,
            "listens": (["listen 443 ssl http2", "listen [::]:443 ssl http2"] if tls.enabled
                        else ["listen 80", "listen [::]:80"]),
            "app_listens": app_listens,
        },
        "haproxy": {
            "maxconn": 8000,
            "server_timeout": app.timeout + 5,
            "server_address": listen if unix else app.listen,
            "rate_limit_per_10s": settings.rate_limit.requests_per_second * 10 + settings.rate_limit.burst,
            "acme_port": ACME_PORT,
            "threads": settings.front_workers,
        },
        "gunicorn": {
            "bind": f"unix:{listen}" if unix else listen,
            "max_requests_jitter": max(1, app.max_requests // 10),
        },
        "wsgi": {"module": WSGI_MODULE, "trusted_hops": 1, **parse_entry(app.entry)},
        "socket": {"listen": listen, "unix": unix},
        "units": {"service": paths.service_name, "socket": paths.socket_name},
        "systemd": {"stop_timeout": app.graceful_timeout + 10},
    }


def render_host(settings: Settings, host: Host) -> dict[str, str]:
    """{remote path: content} of every file this host receives that is rendered here (the rows of
    stack/hostfiles.py with a template), sorted by path."""
    env = environment()
    ctx = context(settings, host)
    return {path: env.get_template(template).render(ctx)
            for path, template in hostfiles.rendered(settings).items()}


def render_all(settings: Settings, hosts: list[Host]) -> dict[str, dict[str, str]]:
    """{host name: {remote path: content}} for each of the given hosts."""
    return {host.name: render_host(settings, host) for host in hosts}


def content_hash(files: dict[str, str]) -> str:
    """A stable hash of a set of files, for the triggers of the steps that install them."""
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode())
    return digest.hexdigest()


def local_path(root: Path, remote: str) -> Path:
    """Where a remote path lands under a local output directory."""
    return root.joinpath(*PurePosixPath(remote).parts[1:])
