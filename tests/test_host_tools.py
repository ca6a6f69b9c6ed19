"""Every rendered host file, checked by the tool that will read it on a host, on this machine.

For each stack file, example and variant (tests/support/stacks.py) the files of its first host are
relocated under a scratch directory (tests/support/hostfs.py: only paths move) and checked with:

- `nginx -t` (no warning either) and gixy-ng (no finding) for the Nginx front;
- `haproxy -c -dW` (zero-warning mode) for the HAProxy front;
- `gunicorn --check-config` with the release and the WSGI entry in place, plus the resolved
  settings read back through Gunicorn's own config loader;
- `systemd-analyze verify` on the units, made strict: systemd 252 exits 0 on an unknown key or an
  unparsable value (it logs "..., ignoring" and carries on), so any output at all is a failure;
- `systemd-analyze security --offline=true`: overall exposure at most MAX_EXPOSURE.

Each check has a negative test that breaks the input and proves the check fails. A missing tool
fails the test with the apt-get line to install it; nothing is skipped.

`User=<app>` names a user that exists on the hosts (bootstrap creates it), not on this machine:
neither `verify` nor `security --offline` resolves users, so no user is created here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stack import inventory, render, scripts
from stack.paths import WSGI_MODULE, Paths
from tests.support import hostfs, stacks

pytestmark = pytest.mark.tools

MAX_EXPOSURE = 2.0
CASES = stacks.all_cases()
GIXY = Path(sys.executable).parent / "gixy"
TIMEOUT = 60


NGINX_CASES = stacks.with_front("nginx")
HAPROXY_CASES = stacks.with_front("haproxy")


def ids(cases: list[stacks.Case]) -> list[str]:
    return [c.id for c in cases]


# -- tools -----------------------------------------------------------------------------------
def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or next(
        (p for d in ("/usr/sbin", "/sbin", "/usr/bin") if os.access(p := f"{d}/{name}", os.X_OK)), None)
    if not found:
        pytest.fail(f"{name} is not installed; install {package} (apt-get install {package})")
    return found


@pytest.fixture(scope="session")
def nginx() -> str:
    return _tool("nginx", "nginx")


@pytest.fixture(scope="session")
def haproxy() -> str:
    return _tool("haproxy", "haproxy")


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    return _tool("systemd-analyze", "systemd")


@pytest.fixture(scope="session")
def openssl() -> str:
    return _tool("openssl", "openssl")


@pytest.fixture(scope="session")
def gixy() -> str:
    if not os.access(GIXY, os.X_OK):
        pytest.fail(f"gixy is not installed next to {sys.executable}; install gixy-ng "
                    f"({sys.executable} -m pip install gixy-ng)")
    return str(GIXY)


@pytest.fixture(scope="session")
def certificates(openssl, tmp_path_factory):
    """domain -> (certificate, key): one throwaway self-signed pair per domain per session."""
    made: dict[str, tuple[Path, Path]] = {}
    base = tmp_path_factory.mktemp("certs")

    def get(domain: str) -> tuple[Path, Path]:
        if domain not in made:
            cert, key = base / domain / "cert.pem", base / domain / "key.pem"
            hostfs.self_signed(cert, key, domain)
            made[domain] = (cert, key)
        return made[domain]

    return get


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)


def host_files(case: stacks.Case) -> tuple[render.Paths, dict[str, str]]:
    config = case.load()
    host = inventory.planned(config)[0]
    return Paths(config.app.name), render.render_host(config, host)


# -- Nginx -----------------------------------------------------------------------------------
def nginx_tree(case: stacks.Case, root: Path, certificates) -> Path:
    config = case.load()
    files = render.render_host(config, inventory.planned(config)[0])
    conf = hostfs.nginx_prefix(files, root, workers=config.front_workers)
    if config.tls.enabled:
        cert, key = certificates(config.domain.name)
        paths = Paths(config.app.name)
        render.local_path(root, paths.tls_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(cert, render.local_path(root, paths.tls_fullchain))
        shutil.copy(key, render.local_path(root, paths.tls_key))
    return conf


def nginx_test(nginx: str, conf: Path) -> list[str]:
    """Problems `nginx -t` reports: a failure, or any warning (a duplicate or conflicting
    server name, an ignored directive) in an otherwise valid config."""
    error_log = conf.parent.parent.parent / "var" / "log" / "nginx" / "error.log"
    result = run([nginx, "-t", "-q", "-p", f"{conf.parent}/", "-e", str(error_log), "-c", str(conf)])
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or output:
        return [f"nginx -t exited {result.returncode}: {output}"]
    return []


@pytest.mark.parametrize("case", NGINX_CASES, ids=ids(NGINX_CASES))
def test_nginx_accepts_the_config(case, nginx, certificates, tmp_path):
    conf = nginx_tree(case, tmp_path, certificates)
    assert nginx_test(nginx, conf) == []


@pytest.mark.parametrize(("setting", "expected"), [(None, max(1, len(os.sched_getaffinity(0)) // 2)), (3, 3)])
def test_the_worker_file_holds_half_the_cpus_or_front_workers(setting, expected, tmp_path):
    # The configure step's own shell text, run here: nproc counts the CPUs this process may use.
    subprocess.run(["bash", "-c", scripts.nginx_workers(str(tmp_path), setting)], check=True)
    written = (tmp_path / Paths("app").nginx_workers.rsplit("/", 1)[1]).read_text()
    assert re.findall(r"^worker_processes (\d+);$", written, re.M) == [str(expected)], written


def test_nginx_check_fails_on_a_broken_config(nginx, certificates, tmp_path):
    conf = nginx_tree(stacks.case("stack:dev"), tmp_path, certificates)
    site = next((conf.parent / "sites-available").glob("*.conf"))
    site.write_text(site.read_text().replace("client_max_body_size 10m;", "client_max_body_size 10m", 1))
    problems = nginx_test(nginx, conf)
    assert problems and "emerg" in problems[0]


def test_nginx_check_fails_on_a_warning(nginx, certificates, tmp_path):
    conf = nginx_tree(stacks.case("stack:dev"), tmp_path, certificates)
    site = next((conf.parent / "sites-available").glob("*.conf"))
    twice = "server {\n    listen 8081;\n    server_name dup.example;\n    return 204;\n}\n" * 2
    site.write_text(site.read_text() + twice)  # valid, but nginx warns and ignores the second
    problems = nginx_test(nginx, conf)
    assert problems and "conflicting server name" in problems[0]


def gixy_findings(gixy: str, conf: Path) -> list[dict]:
    # No --nginx-version: Debian backports security fixes without changing nginx's version, so
    # gixy's CVE table would report fixed CVEs; the package's patches are not the config's job.
    result = run([gixy, "--format", "json", str(conf)])
    try:
        findings = json.loads(result.stdout or "[]")
    except ValueError:
        pytest.fail(f"gixy exited {result.returncode} without a JSON report:\n{result.stdout}{result.stderr}")
    if result.returncode not in (0, 1) or (result.returncode == 1 and not findings):
        pytest.fail(f"gixy exited {result.returncode}:\n{result.stderr}")
    return findings


@pytest.mark.parametrize("case", NGINX_CASES, ids=ids(NGINX_CASES))
def test_gixy_finds_nothing(case, gixy, certificates, tmp_path):
    conf = nginx_tree(case, tmp_path, certificates)
    findings = gixy_findings(gixy, conf)
    assert findings == [], "\n".join(f"{f['plugin']}: {f['reason']}\n{f['config']}" for f in findings)


def test_gixy_check_fails_on_a_finding(gixy, certificates, tmp_path):
    conf = nginx_tree(stacks.case("stack:dev"), tmp_path, certificates)
    conf.write_text(conf.read_text().replace("server_tokens off;", "server_tokens on;"))
    assert "version_disclosure" in {f["plugin"] for f in gixy_findings(gixy, conf)}


# -- HAProxy ---------------------------------------------------------------------------------
def haproxy_tree(case: stacks.Case, root: Path, certificates) -> Path:
    config = case.load()
    files = render.render_host(config, inventory.planned(config)[0])
    cfg = hostfs.haproxy_prefix(files, root)
    if config.tls.enabled:
        cert, key = certificates(config.domain.name)
        pem = render.local_path(root, Paths(config.app.name).tls_pem)
        pem.parent.mkdir(parents=True, exist_ok=True)
        pem.write_text(cert.read_text() + key.read_text())
    return cfg


def haproxy_check(haproxy: str, cfg: Path) -> list[str]:
    """Problems `haproxy -c` reports; -dW (zero-warning mode) makes any warning fatal."""
    result = run([haproxy, "-c", "-dW", "-f", str(cfg)])
    if result.returncode != 0:
        return [f"haproxy -c exited {result.returncode}:\n{result.stdout}{result.stderr}"]
    return []


@pytest.mark.parametrize("case", HAPROXY_CASES, ids=ids(HAPROXY_CASES))
def test_haproxy_accepts_the_config(case, haproxy, certificates, tmp_path):
    cfg = haproxy_tree(case, tmp_path, certificates)
    assert haproxy_check(haproxy, cfg) == []


def test_front_workers_sets_haproxys_threads_and_auto_leaves_them_to_haproxy():
    def haproxy_cfg(case_id: str) -> str:
        config = stacks.case(case_id).load()
        return render.render_host(config, inventory.planned(config)[0])["/etc/haproxy/haproxy.cfg"]

    assert stacks.case("variant:haproxy-tls").load().front_workers == 2
    assert "\n    nbthread 2\n" in haproxy_cfg("variant:haproxy-tls")
    assert "nbthread" not in haproxy_cfg("variant:haproxy-plain")


def test_haproxy_check_fails_on_a_removed_directive(haproxy, certificates, tmp_path):
    cfg = haproxy_tree(stacks.case("variant:haproxy-tls"), tmp_path, certificates)
    cfg.write_text(cfg.read_text().replace("frontend public\n", "frontend public\n    reqadd X-Test:\\ 1\n"))
    problems = haproxy_check(haproxy, cfg)
    assert problems and "reqadd" in problems[0]


def test_haproxy_check_fails_on_a_warning(haproxy, certificates, tmp_path):
    cfg = haproxy_tree(stacks.case("variant:haproxy-tls"), tmp_path, certificates)
    cfg.write_text(re.sub(r"^    timeout server .*\n", "", cfg.read_text(), flags=re.M))
    problems = haproxy_check(haproxy, cfg)
    assert problems and "missing timeouts" in problems[0]


def test_haproxy_check_fails_without_the_certificate(haproxy, certificates, tmp_path):
    cfg = haproxy_tree(stacks.case("variant:haproxy-tls"), tmp_path, certificates)
    config = stacks.case("variant:haproxy-tls").load()
    render.local_path(tmp_path, Paths(config.app.name).tls_pem).unlink()
    assert haproxy_check(haproxy, cfg) != []


# -- Gunicorn --------------------------------------------------------------------------------
# Gunicorn's own loader (the one `gunicorn -c` uses) reports the resolved settings as JSON.
RESOLVE = """
import json, sys
from gunicorn.app.wsgiapp import WSGIApplication
sys.argv = ["gunicorn", "--config", sys.argv[1]]
cfg = WSGIApplication("%(prog)s").cfg
print(json.dumps({name: setting.get() for name, setting in cfg.settings.items()}, default=repr))
"""


def gunicorn_tree(case: stacks.Case, root: Path) -> Path:
    config = case.load()
    files = render.render_host(config, inventory.planned(config)[0])
    return hostfs.gunicorn_prefix(files, root, app_dir=config.app.path)


def gunicorn(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GUNICORN"))}
    return run([sys.executable, *args], cwd=cwd, env=env)


def check_config(conf: Path) -> subprocess.CompletedProcess:
    # From an empty directory (`python -m` puts the working directory on the path): only what
    # the config itself puts on the path can be imported, as when the deploy runs the check.
    empty = conf.parent / "empty-cwd"
    empty.mkdir(exist_ok=True)
    return gunicorn("-m", "gunicorn", "--check-config", "--config", str(conf), cwd=empty)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_gunicorn_checks_the_config_and_loads_the_app(case, tmp_path):
    conf = gunicorn_tree(case, tmp_path)
    result = check_config(conf)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_gunicorn_resolved_settings(case, tmp_path):
    config = case.load()
    app = config.app
    conf = gunicorn_tree(case, tmp_path)
    result = gunicorn("-c", RESOLVE, str(conf), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = json.loads(result.stdout)

    assert cfg["bind"], "no bind address"
    for bind in cfg["bind"]:
        assert "0.0.0.0" not in bind  # noqa: S104
        if app.listen == "unix":
            assert bind.startswith("unix:") and bind.endswith(f"/run/{app.name}/gunicorn.sock"), bind
        else:
            host = bind.rsplit(":", 1)[0].strip("[]")
            assert host in ("127.0.0.1", "::1") and bind == app.listen, bind
    assert cfg["control_socket_disable"] is True
    assert cfg["worker_class"] == app.worker_class
    # A sync worker with threads > 1 would silently become gthread: threads stays 1 unless gthread.
    assert cfg["threads"] == (app.threads if app.worker_class == "gthread" else 1)
    cpus = len(os.sched_getaffinity(0))
    expected_workers = app.workers or (cpus * 2 + 1 if app.worker_class == "sync" else cpus + 1)
    assert cfg["workers"] == expected_workers
    assert cfg["secure_scheme_headers"] == {"X-FORWARDED-PROTO": "https"}
    assert cfg["forwarded_allow_ips"] == ["127.0.0.1", "::1"]
    assert cfg["preload_app"] is False
    assert cfg["wsgi_app"] == f"{WSGI_MODULE}:application"
    assert cfg["timeout"] == app.timeout and cfg["graceful_timeout"] == app.graceful_timeout
    assert cfg["keepalive"] == app.keepalive
    assert cfg["max_requests"] == app.max_requests
    assert cfg["accesslog"] is None and cfg["errorlog"] == "-"


def test_gunicorn_check_fails_when_the_entry_is_missing(tmp_path):
    raw = {**stacks.VARIANTS["nginx-factory"], "app": {"entry": "rocket:no_such_app"}}
    case = stacks.Case(id="variant:missing-entry", raw=raw)
    result = check_config(gunicorn_tree(case, tmp_path))
    assert result.returncode != 0
    assert "no_such_app" in result.stderr


def test_gunicorn_check_fails_on_a_bad_setting(tmp_path):
    conf = gunicorn_tree(stacks.case("stack:dev"), tmp_path)
    conf.write_text(conf.read_text() + 'timeout = "soon"\n')
    assert check_config(conf).returncode != 0


# -- systemd ---------------------------------------------------------------------------------
def systemd_tree(case: stacks.Case, root: Path) -> list[Path]:
    config = case.load()
    return hostfs.systemd_prefix(render.render_host(config, inventory.planned(config)[0]), root)


def verify_problems(systemd_analyze: str, units: list[Path]) -> list[str]:
    """What `systemd-analyze verify` says about the units. It exits 0 on an unknown key, an
    unknown section or a value it cannot parse (logging "..., ignoring"), so every line it
    prints about them is a problem, whatever the exit status. (Lines about other units, e.g.
    this machine's own targets, are not the rendered units' problems.)"""
    result = run([systemd_analyze, "verify", "--man=no", *map(str, units)])
    names = tuple(u.name for u in units)
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if line.strip() and any(name in line for name in names)]
    if result.returncode != 0 and not lines:
        lines = [f"systemd-analyze verify exited {result.returncode}"]
    return lines


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_systemd_verifies_the_units(case, systemd_analyze, tmp_path):
    units = systemd_tree(case, tmp_path)
    # The app's service and socket, and the processes' and schedules' units where a case has them.
    assert {".service", ".socket"} <= {u.suffix for u in units} <= {".service", ".socket", ".timer"}
    assert verify_problems(systemd_analyze, units) == []


@pytest.mark.parametrize(("unit", "old", "new", "message"), [
    (".service", "Type=notify", "Type=notifyy", "Failed to parse service type"),
    (".service", "KillMode=mixed", "KillMode=mixed\nRestartForever=yes", "Unknown key"),
    (".service", "ProtectSystem=strict", "ProtectSystem=very", "Failed to parse protect system"),
    (".service", "[Service]", "[Servce]", "Unknown section"),
    (".socket", "SocketMode=0660", "SocketMode=rw-rw----", "Failed to parse mode"),
    (".socket", "[Socket]", "[Socket]\nListenStreem=/run/x.sock", "Unknown key"),
])
def test_systemd_verify_fails_on_a_broken_unit(systemd_analyze, tmp_path, unit, old, new, message):
    units = systemd_tree(stacks.case("stack:dev"), tmp_path)
    target = next(u for u in units if u.name == f"app{unit}")  # the app's own unit
    assert old in target.read_text()
    target.write_text(target.read_text().replace(old, new, 1))
    problems = verify_problems(systemd_analyze, units)
    assert any(message in p for p in problems), problems


def test_systemd_verify_fails_when_the_program_is_missing(systemd_analyze, tmp_path):
    units = systemd_tree(stacks.case("stack:dev"), tmp_path)
    service = next(u for u in units if u.name == "app.service")
    program = re.search(r"^ExecStart=(\S+)", service.read_text(), flags=re.M).group(1)
    # Only ever a stub of the tree's own: a program outside it is this machine's.
    assert Path(program).is_relative_to(tmp_path), program
    Path(program).unlink()
    assert any("is not executable" in p for p in verify_problems(systemd_analyze, units))


def exposure(systemd_analyze: str, service: Path) -> float:
    result = run([systemd_analyze, "security", "--offline=true", "--no-pager", str(service)])
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    if result.returncode != 0 or not found:
        pytest.fail(f"systemd-analyze security exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return float(found.group(1))


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_systemd_security_exposure_is_low(case, systemd_analyze, tmp_path):
    services = [u for u in systemd_tree(case, tmp_path) if u.suffix == ".service"]
    assert len(services) >= 2  # the app's and the failure report's, at least
    for service in services:
        score = exposure(systemd_analyze, service)
        assert score <= MAX_EXPOSURE, f"{service.name}: exposure {score} > {MAX_EXPOSURE}"


def test_systemd_security_scores_an_unhardened_unit_high(systemd_analyze, tmp_path):
    service = tmp_path / "plain.service"
    service.write_text("[Service]\nExecStart=/bin/true\n")
    assert exposure(systemd_analyze, service) > MAX_EXPOSURE
