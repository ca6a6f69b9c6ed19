"""Rendering: pinned output, determinism, and what the rendered files must say.

Pinned output: the dev stack, every complete example and the in-test complete variant are
compared byte for byte with tests/golden/<name>/<host>/<remote path>. After an intended change to
a template, regenerate and review:

    UPDATE_GOLDEN=1 python -m pytest tests/test_render.py -k golden   # rewrites, then FAILS
    git diff tests/golden                                             # review every change
    python -m pytest tests/test_render.py -k golden                   # passes

The rewriting run always fails, so a CI job that sets UPDATE_GOLDEN can never pass.

The behavioural tests read the rendered text of every stack file, example and variant
(tests/support/stacks.py); the real tools check the same files in tests/test_host_tools.py.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from stack import hostfiles, inventory, render
from stack.paths import Paths
from tests.support import stacks

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")
CASES = stacks.all_cases()


def ids(cases: list[stacks.Case]) -> list[str]:
    return [c.id for c in cases]


def golden_cases() -> list[stacks.Case]:
    complete = [c for c in stacks.example_cases() if c.path.stem.endswith("-complete")]
    return [stacks.case("stack:dev"), *complete, stacks.case("variant:complete")]


def golden_name(case: stacks.Case) -> str:
    kind, name = case.id.split(":", 1)
    return name if kind in ("stack", "example") else f"{kind}-{name}"


def rendered(case: stacks.Case) -> dict[str, dict[str, str]]:
    return render.render_all(case.load(), inventory.planned(case.load()))


def first_host(case: stacks.Case) -> dict[str, str]:
    config = case.load()
    return render.render_host(config, inventory.planned(config)[0])


def read_tree(root: Path) -> dict[str, dict[str, str]]:
    """{host: {remote path: content}} of a directory laid out as render's --out writes it."""
    out: dict[str, dict[str, str]] = {}
    for host in sorted(p for p in root.iterdir() if p.is_dir()):
        out[host.name] = {"/" + f.relative_to(host).as_posix(): f.read_bytes().decode()
                          for f in sorted(host.rglob("*")) if f.is_file()}
    return out


# -- pinned output ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", golden_cases(), ids=ids(golden_cases()))
def test_golden(case):
    """The first host's files, pinned (every host gets the same files: see the next test)."""
    files = first_host(case)
    directory = GOLDEN / golden_name(case)
    if UPDATE:
        shutil.rmtree(directory, ignore_errors=True)
        for path, content in files.items():
            target = render.local_path(directory, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode())
        pytest.fail(f"UPDATE_GOLDEN is set: rewrote {directory.relative_to(GOLDEN.parent.parent)}; "
                    "review `git diff tests/golden`, then run again without UPDATE_GOLDEN")
    if not directory.is_dir():
        pytest.fail(f"no golden files for {case.id} in {directory}; create them with "
                    "UPDATE_GOLDEN=1 python -m pytest tests/test_render.py -k golden")
    pinned = {"/" + f.relative_to(directory).as_posix(): f.read_bytes().decode()
              for f in sorted(directory.rglob("*")) if f.is_file()}
    assert sorted(pinned) == sorted(files), "the set of files changed"
    for path, content in files.items():
        assert content == pinned[path], f"{path} differs from {directory}"


@pytest.mark.parametrize("case", golden_cases(), ids=ids(golden_cases()))
def test_every_host_gets_the_same_files(case):
    """... but the units of processes and schedules `on: first`, which only the first host runs."""
    config = case.load()
    hosts = rendered(case)
    first = next(iter(hosts.values()))
    assert len(hosts) == len(inventory.planned(config))
    only_first = {row.remote(config) for row in hostfiles.entry_rows(config) if row.entry.on == "first"}
    for host, files in list(hosts.items())[1:]:
        assert files == {path: text for path, text in first.items() if path not in only_first}, \
            f"{host} differs from the first host"


# -- determinism -----------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_rendering_twice_is_identical(case):
    first, second = rendered(case), rendered(case)
    assert first == second
    assert list(first) == list(second)
    for host in first:
        assert list(first[host]) == sorted(first[host]), "files are not in path order"
    assert render.content_hash(first[next(iter(first))]) == render.content_hash(second[next(iter(second))])


def stack_dir_for(case: stacks.Case, tmp_path: Path) -> tuple[str, Path]:
    """A directory holding Pulumi.<stack>.yaml for the case, with the default app beside it
    (`--dir` makes app.path relative to that directory)."""
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "app").symlink_to(stacks.REPO_ROOT / "app")
    own = ((case.raw or {}).get("app") or {}).get("path", "app")
    if own != "app":  # an app of the tests (tests/support/factory_app), at the same place
        (directory / own).parent.mkdir(parents=True, exist_ok=True)
        (directory / own).symlink_to(stacks.REPO_ROOT / own)
    target = directory / f"Pulumi.{case.stack}.yaml"
    if case.path is not None:
        shutil.copy(case.path, target)
    else:
        document = {"config": {f"flask-stack:{k}": v for k, v in case.raw.items()}}
        target.write_text(yaml.safe_dump(document, sort_keys=True))
    return case.stack, directory


# Every case under one hash seed, two of them under two more.
SEEDED = [(c, "1") for c in CASES] + [(stacks.case(i), s) for i in ("stack:dev", "variant:complete")
                                     for s in ("2", "3")]


@pytest.mark.parametrize(("case", "seed"), SEEDED, ids=[f"{c.id}-seed{s}" for c, s in SEEDED])
def test_another_process_renders_the_same_bytes(case, seed, tmp_path):
    stack, directory = stack_dir_for(case, tmp_path)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONHASHSEED": seed}
    result = subprocess.run([sys.executable, "-m", "stack", "render", stack, "--out", str(out),
                             "--dir", str(directory)], cwd=stacks.REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert read_tree(out) == rendered(case)


# -- a small Nginx parser, enough for the rendered files -------------------------------------
@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, f"{self.name} {' '.join(self.args)}: {len(found)} x {name}"
        return found[0]

    def values(self, name: str) -> list[list[str]]:
        return [d.args for d in self.all(name)]

    def walk(self):
        for d in self.block or []:
            yield d
            yield from d.walk()


TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{};]|[^\s{};"\'#]+|#[^\n]*')


def parse_nginx(text: str) -> Directive:
    stack = [Directive("main", [], [])]
    words: list[str] = []
    for piece in TOKEN.findall(text):
        if piece.startswith("#"):
            continue
        if piece == ";":
            stack[-1].block.append(Directive(words[0], words[1:]))
            words = []
        elif piece == "{":
            node = Directive(words[0], words[1:], [])
            stack[-1].block.append(node)
            stack.append(node)
            words = []
        elif piece == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(piece[1:-1] if piece[0] in "\"'" else piece)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return stack[0]


def nginx_of(case: stacks.Case) -> tuple[Directive, list[Directive]]:
    """(the http block of nginx.conf, the servers of the site)."""
    files = first_host(case)
    conf = parse_nginx(files["/etc/nginx/nginx.conf"])
    site = parse_nginx(files[Paths(case.load().app.name).nginx_site])
    return conf.one("http"), site.all("server")


def listens(server: Directive) -> list[str]:
    return [" ".join(a) for a in server.values("listen")]


def location(server: Directive, *args: str) -> Directive | None:
    return next((d for d in server.all("location") if d.args == list(args)), None)


def app_server(config, servers: list[Directive]) -> Directive:
    name = config.domain.name or "_"
    port = "443" if config.tls.enabled else "80"
    found = [s for s in servers if s.values("server_name") == [[name]]
             and any(ls.split()[0] in (port, f"[::]:{port}") for ls in listens(s))
             and location(s, "/") is not None and location(s, "/").all("proxy_pass")]
    assert len(found) == 1, f"{len(found)} app servers"
    return found[0]


NGINX_CASES = stacks.with_front("nginx")
HAPROXY_CASES = stacks.with_front("haproxy")
ACME = ("^~", "/.well-known/acme-challenge/")
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 (what must never appear)


def test_the_variants_cover_both_fronts_tls_and_rate_limits():
    configs = [c.load() for c in CASES]
    for front in ("nginx", "haproxy"):
        assert any(c.front == front and c.tls.enabled for c in configs), front
        assert any(c.front == front and c.rate_limit.enabled for c in configs), front
        assert any(c.front == front and c.trusted_proxies for c in configs), front
        assert any(c.front == front and not c.trusted_proxies for c in configs), front
    assert {c.app.worker_class for c in configs} == {"gthread", "sync", "gevent"}
    assert any(c.app.listen != "unix" for c in configs)


# -- Gunicorn --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_gunicorn_never_binds_a_public_address(case):
    config = case.load()
    conf = first_host(case)[Paths(config.app.name).gunicorn_conf]
    binds = ast.literal_eval(re.search(r"^bind = (.*)$", conf, flags=re.M).group(1))
    assert binds and ANY_ADDRESS not in conf
    for bind in binds:
        if bind.startswith("unix:"):
            assert bind == f"unix:{Paths(config.app.name).socket}"
        else:
            assert bind.rsplit(":", 1)[0] in ("127.0.0.1", "[::1]"), bind
    assert re.search(r"^control_socket_disable = True$", conf, flags=re.M)
    assert re.search(r"^preload_app = False$", conf, flags=re.M)


# -- Nginx -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", NGINX_CASES, ids=ids(NGINX_CASES))
def test_nginx_hides_its_version(case):
    http, _ = nginx_of(case)
    assert http.values("server_tokens") == [["off"]]


@pytest.mark.parametrize("case", NGINX_CASES, ids=ids(NGINX_CASES))
def test_nginx_sets_the_forwarded_headers_in_every_proxied_location(case):
    _, servers = nginx_of(case)
    proxied = [d for s in servers for d in s.walk() if d.name == "location" and d.all("proxy_pass")]
    assert proxied
    for loc in proxied:
        headers = {a[0].lower(): a[1] for a in loc.values("proxy_set_header")}
        where = f"location {' '.join(loc.args)}"
        assert headers.get("host") == "$host", where
        assert headers.get("x-real-ip") == "$remote_addr", where
        # Overwritten, never appended to: a client cannot slip addresses in front.
        assert headers.get("x-forwarded-for") == "$remote_addr", where
        assert re.fullmatch(r"\$\w+_proto", headers.get("x-forwarded-proto", "")), where


@pytest.mark.parametrize("case", NGINX_CASES, ids=ids(NGINX_CASES))
def test_nginx_drops_unknown_hosts_when_a_domain_is_set(case):
    config = case.load()
    _, servers = nginx_of(case)
    catch_all = [s for s in servers if "80 default_server" in listens(s)]
    assert len(catch_all) == 1
    server = catch_all[0]
    if config.domain.name:
        assert server.values("server_name") == [["_"]]
        assert location(server, "/").values("return") == [["444"]]
        # the load balancer's health check (Host: the host's address) still reaches the app
        assert location(server, "=", config.deploy.health_path).all("proxy_pass")
        if config.tls.enabled:
            assert "443 ssl default_server" in listens(server)
            assert server.values("ssl_reject_handshake") == [["on"]]
    else:
        assert server is app_server(config, servers)
        assert not any(d.name == "return" and d.args == ["444"] for s in servers for d in s.walk())


@pytest.mark.parametrize("case", NGINX_CASES, ids=ids(NGINX_CASES))
def test_nginx_redirects_www_to_the_apex(case):
    config = case.load()
    _, servers = nginx_of(case)
    www_name = f"www.{config.domain.name}"
    www = [s for s in servers if config.domain.name and s.values("server_name") == [[www_name]]]
    if not (config.domain.name and config.domain.www_redirect):
        assert www == [] and not any("www." in " ".join(s.values("server_name")[0]) for s in servers)
        return
    assert len(www) == 1
    scheme = "https" if config.tls.enabled else f"${config.app.name.replace('-', '_')}_proto"
    assert location(www[0], "/").values("return") == [["301", f"{scheme}://{config.domain.name}$request_uri"]]
    assert location(www[0], *ACME) is not None


@pytest.mark.parametrize("case", NGINX_CASES, ids=ids(NGINX_CASES))
def test_nginx_trusts_forwarded_addresses_only_from_the_load_balancer(case):
    config = case.load()
    http, servers = nginx_of(case)
    site = first_host(case)[Paths(config.app.name).nginx_site]
    real_ip = [s.values("set_real_ip_from") for s in servers if s.all("set_real_ip_from")]
    if not config.trusted_proxies:  # a public front: whatever a client says is ignored
        assert real_ip == []
        assert "real_ip_header" not in site and "set_real_ip_from" not in site
        assert "$http_x_forwarded" not in site
        return
    for server in servers:  # every server that asks the app (the TLS redirect server does not)
        if any(d.name == "proxy_pass" for d in server.walk()):
            assert server.all("set_real_ip_from"), f"server {server.values('server_name')}: no realip"
    for values in real_ip:
        assert values == [[cidr] for cidr in config.trusted_proxies]
    for server in (s for s in servers if s.all("set_real_ip_from")):
        assert server.values("real_ip_header") == [["X-Forwarded-For"]]
        assert server.values("real_ip_recursive") == [["on"]]
    for cidr in ("0.0.0.0/0", "::/0"):
        assert cidr not in site


@pytest.mark.parametrize("case", NGINX_CASES, ids=ids(NGINX_CASES))
def test_nginx_answers_acme_challenges_from_the_webroot(case):
    config = case.load()
    _, servers = nginx_of(case)
    for server in servers:
        if location(server, "/").values("return") == [["444"]]:
            continue  # the catch-all for unknown hosts
        acme = location(server, *ACME)
        assert acme is not None, f"server {server.values('server_name')}: no ACME location"
        assert acme.values("root") == [[Paths(config.app.name).acme_webroot]]
    if config.tls.enabled:  # plain HTTP answers challenges and sends the rest to HTTPS
        names = [config.domain.name] + ([f"www.{config.domain.name}"] if config.domain.www_redirect else [])
        plain = [s for s in servers if "80" in listens(s)]
        assert len(plain) == 1 and location(plain[0], *ACME) is not None
        assert plain[0].values("server_name") == [names]  # www.'s certificate is validated here too
        assert location(plain[0], "/").values("return") == [
            ["301", f"https://{config.domain.name}$request_uri"]]


@pytest.mark.parametrize("case", NGINX_CASES, ids=ids(NGINX_CASES))
def test_nginx_limits_bodies_and_rates_as_set(case):
    config = case.load()
    _, servers = nginx_of(case)
    server = app_server(config, servers)
    assert server.values("client_max_body_size") == [[config.app.max_body_size]]
    root = location(server, "/")
    if config.rate_limit.enabled:
        assert root.values("limit_req_status") == [["429"]]
        assert root.values("limit_req")[0][1] == f"burst={config.rate_limit.burst}"
    else:
        assert not any(d.name.startswith("limit_req") for s in servers for d in s.walk())


@pytest.mark.parametrize("case", NGINX_CASES, ids=ids(NGINX_CASES))
def test_nginx_tls_uses_the_domain_certificate_and_hsts(case):
    config = case.load()
    http, servers = nginx_of(case)
    if not config.tls.enabled:
        assert not any(d.name.startswith("ssl_") for s in servers for d in s.walk())
        return
    assert http.values("ssl_protocols") == [["TLSv1.2", "TLSv1.3"]]
    paths = Paths(config.app.name)
    server = app_server(config, servers)
    assert server.values("ssl_certificate") == [[paths.tls_fullchain]]
    assert server.values("ssl_certificate_key") == [[paths.tls_key]]
    assert server.values("add_header")[0][:2] == ["Strict-Transport-Security", "max-age=63072000"]
    # Mozilla intermediate's curves only (OpenSSL's defaults add X448 and secp521r1).
    assert http.values("ssl_ecdh_curve") == [["X25519:prime256v1:secp384r1"]]
    assert http.values("ssl_ciphers") == [[render.INTERMEDIATE.ciphers]]
    # `always`: the redirects Nginx answers itself (return 301) carry it too.
    for tls_server in (s for s in servers if s.values("ssl_certificate")):
        assert tls_server.values("add_header")[0] == ["Strict-Transport-Security", "max-age=63072000",
                                                      "always"]
        # A location's own add_header would drop the server's.
        assert not [loc.args for loc in tls_server.all("location") if loc.all("add_header")]


# -- HAProxy ---------------------------------------------------------------------------------
def haproxy_of(case: stacks.Case) -> str:
    return first_host(case)["/etc/haproxy/haproxy.cfg"]


@pytest.mark.parametrize("case", HAPROXY_CASES, ids=ids(HAPROXY_CASES))
def test_haproxy_uses_http_request_rules_only(case):
    cfg = haproxy_of(case)
    # reqadd, reqrep, rspadd, rspdel, ... were removed in HAProxy 2.1
    assert not re.search(r"^\s*(req|rsp)[a-z]+\s", cfg, flags=re.M)
    assert re.search(r"^\s+http-request set-header X-Forwarded-Proto ", cfg, flags=re.M)
    assert re.search(r"^\s+http-request del-header X-Forwarded-For$", cfg, flags=re.M)
    assert re.search(r"^\s+option forwardfor$", cfg, flags=re.M)
    assert re.search(r"^\s+http-response del-header Server$", cfg, flags=re.M)
    assert re.search(r"^backend acme$", cfg, flags=re.M)


@pytest.mark.parametrize("case", HAPROXY_CASES, ids=ids(HAPROXY_CASES))
def test_haproxy_tls_is_mozilla_intermediate_with_hsts_on_its_own_answers_too(case):
    config = case.load()
    cfg = haproxy_of(case)
    if not config.tls.enabled:
        assert "ssl-default-bind" not in cfg and "Strict-Transport-Security" not in cfg
        return
    profile = render.INTERMEDIATE
    assert f"\n    ssl-default-bind-ciphers {profile.ciphers}\n" in cfg
    assert f"\n    ssl-default-bind-ciphersuites {profile.ciphersuites}\n" in cfg
    assert "\n    ssl-default-bind-curves X25519:prime256v1:secp384r1\n" in cfg
    # http-after-response, not http-response: HAProxy's own redirects (www., HTTP to HTTPS) and
    # denials carry it as well as the app's answers.
    hsts = re.findall(r"^\s+(\S+) set-header Strict-Transport-Security (.*)$", cfg, flags=re.M)
    assert hsts == [("http-after-response", f'"{render.HSTS}" if {{ ssl_fc }}')], hsts


@pytest.mark.parametrize("case", HAPROXY_CASES, ids=ids(HAPROXY_CASES))
def test_haproxy_rate_limit_answers_429(case):
    config = case.load()
    rule = re.search(r"^\s+http-request deny deny_status 429 if \{ sc_http_req_rate\(0\) gt (\d+) \}",
                     haproxy_of(case), flags=re.M)
    if config.rate_limit.enabled:
        limit = config.rate_limit.requests_per_second * 10 + config.rate_limit.burst
        assert rule and int(rule.group(1)) == limit
    else:
        assert rule is None


@pytest.mark.parametrize("case", HAPROXY_CASES, ids=ids(HAPROXY_CASES))
def test_haproxy_trusts_forwarded_addresses_only_from_the_load_balancer(case):
    config = case.load()
    cfg = haproxy_of(case)
    if config.trusted_proxies:
        assert f"acl from_proxy src {' '.join(config.trusted_proxies)}\n" in cfg
        assert "set-src req.hdr_ip(X-Forwarded-For,-1) if from_proxy" in cfg
        if config.tls.enabled:  # a client's own TLS connection is https, whoever it is
            assert "X-Forwarded-Proto https if { ssl_fc } !from_proxy" in cfg
    else:
        assert "set-src" not in cfg and "from_proxy" not in cfg
    www = f"-i www.{config.domain.name} }}" in cfg
    assert www == bool(config.domain.name and config.domain.www_redirect)


# -- systemd ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_units_run_the_rendered_config_on_the_socket(case):
    config = case.load()
    paths = Paths(config.app.name)
    files = first_host(case)
    service, socket = files[paths.service_unit], files[paths.socket_unit]
    assert f"User={config.app.name}\n" in service
    assert f"--config {paths.gunicorn_conf}\n" in service
    assert f"EnvironmentFile={paths.env_file}\n" in service
    assert f"EnvironmentFile=-{paths.secret_env_file}\n" in service
    if config.app.listen == "unix":
        assert f"ListenStream={paths.socket}\n" in socket
        assert "SocketMode=0660\n" in socket
        assert f"SocketGroup={render.FRONT_USERS[config.front]}\n" in socket
    else:
        assert f"ListenStream={config.app.listen}\n" in socket


def test_env_file_quotes_a_value_with_spaces_quotes_dollars_and_hashes():
    config = stacks.case("variant:nginx-trusted-proxies").load()
    env = first_host(stacks.case("variant:nginx-trusted-proxies"))[Paths(config.app.name).env_file]
    assert stacks.TRICKY_ENV_LINE + "\n" in env.splitlines(keepends=True)
    assert 'PLAIN="x"\n' in env.splitlines(keepends=True)


def test_env_file_reads_back_unchanged_through_a_shell(tmp_path):
    """systemd unescapes \\\\, \\", \\$ and \\` inside double quotes, as a POSIX shell does: a shell
    that sources the file must read back the exact value and run nothing."""
    config = stacks.case("variant:nginx-trusted-proxies").load()
    env = tmp_path / "app.env"
    env.write_text(first_host(stacks.case("variant:nginx-trusted-proxies"))[Paths(config.app.name).env_file])
    result = subprocess.run(["sh", "-c", 'set -a; . "$1"; printf %s "$TRICKY"', "sh", str(env)],
                            capture_output=True, text=True, timeout=30, env={"PATH": os.defpath})
    assert result.returncode == 0, result.stderr
    assert result.stdout == stacks.TRICKY_ENV_VALUE


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_rendered_python_compiles(case):
    for path, content in first_host(case).items():
        if path.endswith(".py"):
            compile(content, path, "exec")


def test_the_wsgi_entry_passes_factory_arguments_as_python():
    config = stacks.case("variant:nginx-factory").load()
    wsgi = first_host(stacks.case("variant:nginx-factory"))[Paths(config.app.name).wsgi]
    # Each argument as app.entry wrote it, read back as a literal when the module is imported.
    assert '    args = [ast.literal_eval(text) for text in ["(\'shop\')"]]\n' in wsgi
    assert '("debug", "(False)")' in wsgi
    compile(wsgi, "wsgi.py", "exec")


# -- TLS on the host -------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_the_renew_hook_comes_with_tls_only_and_reloads_the_front(case):
    config = case.load()
    paths = Paths(config.app.name)
    files = first_host(case)
    if not config.tls.enabled:
        assert paths.renew_hook not in files
        return
    hook = files[paths.renew_hook]
    assert hook.startswith("#!/bin/sh\n")
    checked = subprocess.run(["sh", "-n"], input=hook, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert '[ "${RENEWED_LINEAGE:-}" = "$lineage" ] || exit 0' in hook
    assert f"lineage=/etc/letsencrypt/live/{config.domain.name}\n" in hook
    assert f"systemctl reload {config.front}" in hook
    assert f"-servername {config.domain.name}" in hook


# -- sshd ------------------------------------------------------------------------------------
def sshd_of(case: stacks.Case) -> dict[str, list[str]]:
    text = first_host(case)["/etc/ssh/sshd_config.d/10-flask-stack.conf"]
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split(None, 1)
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_sshd_takes_keys_only_from_the_deploy_user_with_modern_algorithms(case):
    config = case.load()
    sshd = sshd_of(case)
    user = config.ssh.user
    assert sshd["PasswordAuthentication"] == ["no"] and sshd["KbdInteractiveAuthentication"] == ["no"]
    assert sshd["AuthenticationMethods"] == ["publickey"]
    assert sshd["AllowUsers"] == [user]
    # Root only when the deploy itself logs in as root (DigitalOcean), and then by key only.
    assert sshd["PermitRootLogin"] == ["prohibit-password" if user == "root" else "no"]
    kex, ciphers, macs = (sshd[k][0].split(",") for k in ("KexAlgorithms", "Ciphers", "MACs"))
    assert kex[0] == "sntrup761x25519-sha512@openssh.com" and "curve25519-sha256" in kex
    assert not [k for k in kex if "sha1" in k or k.startswith("diffie-hellman-group1")]
    assert not [c for c in ciphers if "cbc" in c or "3des" in c]
    assert macs and all(m.endswith("-etm@openssh.com") for m in macs)
    assert sshd["HostKey"][0] == "/etc/ssh/ssh_host_ed25519_key"


def test_a_login_that_would_widen_allowusers_is_refused():
    from stack import sshd

    config = stacks.case("stack:dev").load()
    for login in ("deploy *", "*", "deploy@10.0.0.1", "de?loy"):
        broken = dataclasses.replace(config, ssh=dataclasses.replace(config.ssh, user=login))
        with pytest.raises(ValueError, match="ssh.user"):
            sshd.context(broken)
