"""Every file a host receives, rendered from the settings: pure functions, no I/O but reading
the templates, deterministic output (no timestamps, sorted keys).

`render_host(settings, host)` returns {remote path: content} for one host. Secrets are never in
it: the secret environment file is built by the host step from Pulumi secrets.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import jinja2

from stack import assets, hostfiles, sshd
from stack.inventory import Host
from stack.paths import LETSENCRYPT_LIVE, WSGI_MODULE, Paths
from stack.settings import Process, Schedule, Settings, processes

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
HEADER = "# Rendered by flask-stack for {app}. Do not edit here: the next deploy replaces it."


@dataclass(frozen=True)
class TlsProfile:
    """What both fronts offer over TLS, in OpenSSL's spelling (Nginx and HAProxy pass each list
    to OpenSSL as it is). The one place the TLS parameters come from."""

    ciphers: str  # TLS 1.2 suites
    ciphersuites: str  # TLS 1.3 suites (HAProxy's line; Nginx keeps OpenSSL's default, the same three)
    curves: str  # key exchange groups; unset, OpenSSL 3 would also offer X448 and secp521r1


# Mozilla's "intermediate" server-side TLS profile (v5.7): TLS 1.2 and 1.3, forward-secret AEAD
# suites only, and its three curves.
INTERMEDIATE = TlsProfile(
    ciphers=":".join([
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
    ]),
    ciphersuites="TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
    curves="X25519:prime256v1:secp384r1",
)
FRONT_USERS = {"nginx": "www-data", "haproxy": "haproxy"}
# What every HTTPS answer says: browsers use only HTTPS for this site for two years.
HSTS = "max-age=63072000"
ACME_PORT = 8402


def environment() -> jinja2.Environment:
    """The Jinja2 environment of the templates directory, made once: it keeps every compiled
    template (and recompiles one whose file changed), so rendering 100 hosts compiles each once."""
    return _environment(str(TEMPLATES))


@functools.lru_cache(maxsize=4)
def _environment(templates: str) -> jinja2.Environment:
    """Python files take their values through `py` (py_str), the renew hook (shell) through
    `sh` or, inside double quotes, `dq`; Nginx, HAProxy and systemd files take only values that
    passed `token` (check_tokens)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - config files, not HTML
    )
    env.filters.update(py=py_str, sh=shlex.quote, dq=in_double_quotes)
    return env


def env_file_line(key: str, value: str) -> str:
    """One systemd EnvironmentFile line; the value double-quoted so spaces, quotes, # and $
    reach the app unchanged. Backslash, double quote, $ and backtick are escaped: systemd
    unescapes exactly these inside double quotes, and so does a shell that sources the file
    (which would otherwise run a `command` in a value). No other character needs escaping: a
    newline inside the quotes stays in the value for both, and unit-file specifiers (%) are not
    expanded in an EnvironmentFile. A NUL cannot be in an environment at all."""
    token("the environment name", key, "env name")
    if "\0" in value or not utf8(value):
        raise ValueError(f"flask-stack: the value of {key} holds a NUL byte or a lone surrogate, "
                         "which no environment file can hold")
    return f'{key}="{in_double_quotes(value)}"'


def utf8(text: str) -> bool:
    """Whether UTF-8 can write `text` (not with a lone surrogate, which a JSON escape can make)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def in_double_quotes(text: str) -> str:
    """`text` escaped for inside double quotes (a shell's or systemd's): backslash, double quote,
    $ and backtick, the characters both interpret there."""
    for char in ("\\", '"', "$", "`"):
        text = text.replace(char, "\\" + char)
    return text


def parse_entry(entry: str) -> dict:
    """Split a Gunicorn-style entry ("pkg.mod:app", "mod:create_app('x')") for the WSGI module:
    the module, the attribute chain, and each factory argument as its source text, which the
    module reads back with `ast.literal_eval` at import. Source text rather than the values:
    a value's repr is not always Python that means it again (`1e999` is `inf`, a name nothing
    defines), while the text app.entry wrote is a literal by construction (the settings checked
    that `ast.literal_eval` takes it), so floats, -0.0, bytes, sets and nested literals arrive
    exactly as written. Each part reaches the module only through `py_str`."""
    module, expr = entry.split(":", 1)
    expr = expr.strip()
    node = ast.parse(expr, mode="eval").body
    call = isinstance(node, ast.Call)
    args: list[str] = []
    kwargs: list[tuple[str, str]] = []
    if call:
        args = [argument_source(expr, a) for a in node.args]
        kwargs = [(k.arg, argument_source(expr, k.value)) for k in node.keywords]
        node = node.func
    attributes = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    attributes.append(node.id)
    return {"module_name": module, "attributes": attributes[::-1], "call": call, "args": args,
            "kwargs": kwargs}


def argument_source(expr: str, node: ast.expr) -> str:
    """One factory argument's source text, in parentheses so that text spanning lines or
    holding a comment is still one expression for `ast.literal_eval`."""
    text = f"({ast.get_source_segment(expr, node)})"
    ast.literal_eval(text)  # what the module will do at import: fail here instead
    return text


def py_str(text: str) -> str:
    """`text` as a Python string literal of printable ASCII in double quotes: the one way a
    value enters a generated Python file. Not JSON (Jinja's tojson): JSON writes a character
    beyond U+FFFF as a surrogate pair, which Python reads as two lone surrogates, not the
    character; not repr, which keeps non-ASCII characters and picks its own quotes."""
    if not isinstance(text, str):
        raise TypeError(f"a Python template tried to paste a {type(text).__name__}: {text!r}")
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


# What a value may look like where it enters an Nginx or HAProxy file (or a unit file, or the
# renew hook) unquoted: the settings' own grammar for it, or narrower. The settings check these
# already; the renderer checks again, so a looser rule there never becomes a config that reads
# a value as more than one token (a space, a `;`, a `#`, a `{`, a quote, a `%` specifier).
TOKENS = {
    "name": re.compile(r"[a-z][a-z0-9-]*"),
    "hostname": re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?"),
    "url path": re.compile(r"/[A-Za-z0-9._~/-]*"),
    "relative path": re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*"),
    "env name": re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
    "size": re.compile(r"[0-9]+[kKmMgG]?"),
    "listen address": re.compile(r"unix|[0-9.]+:[0-9]+|\[[0-9a-fA-F:.]+\]:[0-9]+"),
    "calendar": re.compile(r"[A-Za-z0-9*.,:/~+_-]+( [A-Za-z0-9*.,:/~+_-]+)*"),
    # No `*`, `?`, `@` or space: in AllowUsers each of those would widen who may log in.
    "login": re.compile(r"[a-z_][a-z0-9_-]{0,31}"),
}


def token(key: str, value: str | None, grammar: str) -> None:
    """Refuse (ValueError naming `key`) a value that is not one token of `grammar`: TOKENS, or
    "cidr" (a network as ipaddress writes it). None is no value and passes."""
    if value is None:
        return
    if grammar == "cidr":
        try:
            fits = str(ipaddress.ip_network(value, strict=True)) == value
        except ValueError:
            fits = False
    else:
        fits = isinstance(value, str) and TOKENS[grammar].fullmatch(value) is not None
    if not fits:
        raise ValueError(f"flask-stack: {key} {value!r} is not a {grammar} the host files can "
                         "hold unquoted; the settings should have refused it")


def check_tokens(settings: Settings) -> None:
    """Every value that reaches an Nginx, HAProxy or systemd file, or the renew hook, as is."""
    app = settings.app
    token("app.name", app.name, "name")
    token("app.listen", app.listen, "listen address")
    token("app.staticUrl", app.static_url, "url path")
    token("app.staticDir", app.static_dir, "relative path")
    token("app.maxBodySize", app.max_body_size, "size")
    token("app.workerClass", app.worker_class, "name")
    token("domain.name", settings.domain.name, "hostname")
    token("deploy.healthPath", settings.deploy.health_path, "url path")
    for cidr in settings.trusted_proxies:
        token("hosts.trustedProxies", cidr, "cidr")


def server_names_bucket(domain: str | None, www: bool) -> int | None:
    """Nginx's server_names_hash_bucket_size when the longest server name needs more than the
    default (the CPU's cache line: 64 bytes on x86-64 and arm64 servers): a bucket holds a pointer
    and the name (plus 2, 8-aligned) and ends in a pointer. Without it a long domain.name (the
    settings allow 253 characters) fails `nginx -t`: "could not build server_names_hash"."""
    longest = len(f"www.{domain}" if www else domain or "")
    need = 8 + (longest + 2 + 7) // 8 * 8 + 8
    return None if need <= 64 else 1 << (need - 1).bit_length()


def context(settings: Settings, host: Host) -> dict:
    check_tokens(settings)
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
                  "expires": f"{assets.MAX_AGE_DAYS}d"}
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
            "ciphers": INTERMEDIATE.ciphers,
            "ciphersuites": INTERMEDIATE.ciphersuites,
            "curves": INTERMEDIATE.curves,
            "certificate": paths.tls_fullchain,
            "certificate_key": paths.tls_key,
            "haproxy_pem": paths.tls_pem,
            "lineage": f"{LETSENCRYPT_LIVE}/{settings.domain.name}",
            "front": "nginx" if settings.front == "nginx" else "haproxy",
            "reload_timeout": 30,
            "hsts": HSTS,
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
            "server_names_bucket": server_names_bucket(settings.domain.name, settings.domain.www_redirect),
        },
        "haproxy": {
            "maxconn": 8000,
            "server_timeout": app.timeout + 5,
            # Idle client connections, as Nginx's keepalive_timeout: behind a cloud balancer
            # (which keeps its connections 60 s), longer than the balancer, so it is always the
            # balancer that closes one, never HAProxy as the balancer sends on it (a 502).
            "keepalive_timeout": 75 if behind_proxy else 10,
            # Old processes after a reload: their last requests (up to the server timeout) and
            # one more keep-alive round, then they go.
            "hard_stop_after": app.timeout + 5 + (75 if behind_proxy else 10) + 5,
            "server_address": listen if unix else app.listen,
            "rate_limit_per_10s": settings.rate_limit.requests_per_second * 10 + settings.rate_limit.burst,
            "acme_port": ACME_PORT,
            "threads": settings.front_workers,
        },
        "gunicorn": {
            "bind": f"unix:{listen}" if unix else listen,
            "max_requests_jitter": max_requests_jitter(app.max_requests),
        },
        "wsgi": wsgi_context(settings),
        "dyno": None,
        "socket": {"listen": listen, "unix": unix},
        "units": {"service": paths.service_name, "socket": paths.socket_name,
                  "on_failure": paths.on_failure},
        "failure": {"retry": FAILURE_RETRY, "lines": 20},
        "systemd": {"stop_timeout": app.graceful_timeout + 10},
        "sshd": sshd.context(settings),
    }


# A long-running unit that systemd gave up on (its start limit, below) is started again this long
# after its failure was reported, so it comes back once what broke it is fixed.
FAILURE_RETRY = "5min"


# How the process and schedule units find a command's program: the release's venv first.
def process_path(paths: Paths) -> str:
    return f"{paths.current}/venv/bin:/usr/local/bin:/usr/bin:/bin"


def systemd_word(word: str) -> str:
    """One word of a command as an ExecStart= argument: in double quotes, with backslash and
    double quote escaped and `%` (a unit specifier) doubled; each `$NAME`/`${NAME}` reference as
    `${NAME}`, which systemd replaces by the variable's value as part of this one word when the
    unit starts. The settings allow no other `$` and no control character; refused here again."""
    out, last = [], 0
    for match in processes.REFERENCE.finditer(word):
        out.append(_systemd_literal(word[last:match.start()]))
        out.append("${" + (match.group(1) or match.group(2)) + "}")
        last = match.end()
    out.append(_systemd_literal(word[last:]))
    return '"' + "".join(out) + '"'


def _systemd_literal(text: str) -> str:
    if "$" in text or any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ValueError(f"flask-stack: a command word holds {text!r}, which the settings should "
                         "have refused ($ other than $NAME, or a control character)")
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def entry_context(settings: Settings, entry: Process | Schedule | None) -> dict | None:
    """What the unit of one process or schedule is made from."""
    if entry is None:
        return None
    paths = Paths(settings.app.name)
    token("the process or schedule name", entry.name, "name")
    is_process = isinstance(entry, Process)
    if not is_process:
        token(f"schedules.{entry.name}.onCalendar", entry.on_calendar, "calendar")
    return {
        "name": entry.name,
        "process": is_process,
        "exec": "/usr/bin/env " + " ".join(systemd_word(w) for w in entry.command),
        "path": process_path(paths),
        "identifier": f"{settings.app.name}-{entry.name}",
        "env_file": paths.process_env(entry.name) if is_process and entry.env else None,
        "env_lines": [env_file_line(k, v) for k, v in entry.env] if is_process else [],
        "stop_timeout": entry.stop_timeout if is_process else None,
        "count": entry.count if is_process else None,
        "timeout": None if is_process else entry.timeout,
        "on_calendar": None if is_process else entry.on_calendar,
        "random_delay": None if is_process else entry.random_delay,
        "service": None if is_process else paths.schedule_name(entry.name),
    }


def max_requests_jitter(max_requests: int) -> int:
    """A tenth of app.maxRequests: workers started together are not all recycled together."""
    return max(1, max_requests // 10)


def wsgi_context(settings: Settings) -> dict:
    """What the generated WSGI entry (gunicorn/wsgi.py.j2) is made from, on hosts and dynos:
    its module name, the one proxy hop it trusts, the app's entry taken apart."""
    return {"module": WSGI_MODULE, "trusted_hops": 1, **parse_entry(settings.app.entry)}


def render_host(settings: Settings, host: Host) -> dict[str, str]:
    """{remote path: content} of every file this host receives that is rendered here (the rows of
    stack/hostfiles.py with a template), sorted by path."""
    env = environment()
    ctx = context(settings, host)
    files = {path: env.get_template(row.template).render(ctx, entry=entry_context(settings, row.entry))
             for path, row in hostfiles.rendered(settings, host.name).items() if row.template}
    for path, content in files.items():
        if not utf8(content):
            raise ValueError(f"flask-stack: {path} would hold a lone surrogate from the config, "
                             "which UTF-8 cannot write")
    return files


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
