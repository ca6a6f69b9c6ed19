"""TLS on the host itself (single-host mode, or a server facing the internet), for each front,
against a real ACME server: Pebble on the testbed's bridge (tests/hosts/pebble.py).

The host trusts Pebble's directory through `tls.acmeCaBundle`, as it would a private ACME server;
Pebble resolves the test domain through its own DNS, where each test points it at the host (or
away from it, to make an order fail). What the host serves is checked against Pebble's root, the
way a browser checks against Let's Encrypt's.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest

from tests.hosts.deploying import HTTPSTo, get, get_response, host_state, load, new_stack, running, wait_for
from tests.hosts.pebble import Pebble

pytestmark = pytest.mark.hosts
DOMAIN = "shop.flask-stack.test"
NAMES = (DOMAIN, f"www.{DOMAIN}")
CLI_INI = "/etc/letsencrypt/cli.ini"


@pytest.fixture(scope="module")
def pebble(testbed):
    acme = Pebble(testbed.dir / "pebble", bridge_address=testbed.bridge_address)
    try:
        yield acme.start()
    finally:
        acme.stop()


@pytest.fixture(scope="module", params=("nginx", "haproxy"))
def site(request, testbed, pebble, tmp_path_factory):
    (host,) = testbed.boot(1, prefix=f"t{request.param[0]}")
    stack = new_stack(testbed, [host], tmp_path_factory, front=request.param, extra={
        "domain": {"name": DOMAIN},
        "tls": {"enabled": True, "email": "ops@example.com", "acmeDirectory": pebble.directory,
                "acmeCaBundle": pebble.ca_pem}})
    for name in NAMES:
        pebble.forget(name)
    yield stack, host
    for name in NAMES:
        pebble.forget(name)
    testbed.destroy(host)


def trusting(pebble: Pebble) -> ssl.SSLContext:
    """A client that trusts Pebble's root only (as a browser trusts Let's Encrypt's)."""
    return ssl.create_default_context(cadata=pebble.root_pem())


def served_certificate(host, name: str = DOMAIN) -> dict:
    """Subject, issuer, serial and names of what the host serves for `name` (not verified)."""
    chain = subprocess.run(["openssl", "s_client", "-connect", f"{host.address}:443", "-servername", name],
                           input="", capture_output=True, text=True, timeout=30, check=False).stdout
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-issuer", "-subject", "-ext",
                          "subjectAltName"], input=chain, capture_output=True, text=True, timeout=30,
                         check=False).stdout
    return {"serial": next((line for line in out.splitlines() if line.startswith("serial=")), ""),
            "issuer": next((line for line in out.splitlines() if line.startswith("issuer=")), ""),
            "text": out}


def test_a_failed_order_fails_naming_host_and_domain_and_the_host_keeps_serving(site):
    stack, host = site
    # The domain does not resolve to the host yet: Pebble's validation reaches nothing.
    outcome = stack.deploy(expect_failure=True)
    message = str(outcome.failed)
    assert outcome.failed.step == "app-web-0-certificate", outcome.failed.step
    assert "on host web-0" in message and host.address in message, message
    assert f"no certificate for {DOMAIN} and www.{DOMAIN}" in message, message
    assert "Nothing changed on the host" in message
    assert "app-web-0-gate" not in outcome.ran
    # Serving as before: HTTP answers (health, and the redirect), HTTPS has the placeholder.
    assert get(host, "/healthz")[0] == 200
    response = get_response(host, "/", server_name=DOMAIN)
    assert response.status == 301 and response.getheader("Location") == f"https://{DOMAIN}/"
    assert host.ssh(f"sudo -n test -e /etc/letsencrypt/live/{DOMAIN}", check=False).returncode == 1
    served = served_certificate(host)
    assert f"CN = {DOMAIN}" in served["issuer"], served["text"]  # self-signed


def test_the_host_obtains_a_certificate_over_http01_and_serves_https_with_it(site, pebble):
    stack, host = site
    for name in NAMES:
        pebble.point(name, host.address)
    outcome = stack.deploy()
    assert "app-web-0-certificate" in outcome.ran and "app-web-0-gate" in outcome.ran
    print(f"\n{stack.front}: certificate step {outcome.seconds['app-web-0-certificate']:.1f} s")
    context = trusting(pebble)
    response = get_response(host, "/", https=True, server_name=DOMAIN, context=context)
    assert (response.status, response.body) == (200, b"Hello World!")
    assert response.getheader("Strict-Transport-Security") == "max-age=63072000"
    www = get_response(host, "/x?y=1", https=True, server_name=f"www.{DOMAIN}", context=context)
    assert www.status == 301 and www.getheader("Location") == f"https://{DOMAIN}/x?y=1"
    served = served_certificate(host)
    assert "Pebble Intermediate CA" in served["issuer"], served["text"]
    assert f"DNS:{DOMAIN}" in served["text"] and f"DNS:www.{DOMAIN}" in served["text"]
    assert get(host, "/healthz")[0] == 200  # the deploy's own probe, over plain HTTP


def test_https_is_checked_against_the_acme_servers_root(site, pebble, tmp_path):
    """The check above can fail: a client trusting another root refuses the same server."""
    _, host = site
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=another root", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(other)], check=True, capture_output=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        get_response(host, "/", https=True, server_name=DOMAIN,
                     context=ssl.create_default_context(cafile=str(other)))


def test_plain_http_redirects_to_https_except_acme_challenges(site):
    _, host = site
    response = get_response(host, "/some/page?q=1", server_name=DOMAIN)
    assert response.status == 301
    assert response.getheader("Location") == f"https://{DOMAIN}/some/page?q=1"
    assert response.getheader("Strict-Transport-Security") is None  # HSTS only over HTTPS
    www = get_response(host, "/", server_name=f"www.{DOMAIN}")
    assert www.status == 301 and www.getheader("Location") == f"https://{DOMAIN}/"
    challenge = get_response(host, "/.well-known/acme-challenge/no-such-token", server_name=DOMAIN)
    assert challenge.status in (404, 503), challenge.status  # passed to the ACME client, not redirected


def handshake(address: str, port: int, version: str, name: str = DOMAIN) -> subprocess.CompletedProcess:
    """An OpenSSL client offering one TLS version only, at security level 0 (OpenSSL 3 refuses
    TLS 1.0/1.1 above it, and Debian's openssl.cnf sets MinProtocol TLSv1.2): only the server
    can refuse."""
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:{port}", "-servername", name, f"-{version}",
         "-cipher", "DEFAULT:@SECLEVEL=0"], input="", capture_output=True, text=True, timeout=30,
        env={"OPENSSL_CONF": "/dev/null", "PATH": "/usr/bin:/bin"}, check=False)


@contextlib.contextmanager
def tls11_server(tmp_path: Path):
    """An OpenSSL server that accepts TLS 1.1, to prove the client above really offers it."""
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=old", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    from tests.hosts.postgres import free_port
    port = free_port(["127.0.0.1"])
    server = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
                               "-key", str(key), "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-www"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE,
                              env={"OPENSSL_CONF": "/dev/null", "PATH": "/usr/bin:/bin"})
    try:
        wait_for(lambda: subprocess.run(["bash", "-c", f"</dev/tcp/127.0.0.1/{port}"],
                                        capture_output=True).returncode == 0, timeout=10, interval=0.1)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def negotiated(result: subprocess.CompletedProcess, version: str) -> bool:
    """The handshake completed with `version` (s_client prints the version it offered even when
    the server refused it, then "Cipher is (NONE)")."""
    shown = f"Protocol  : {version}\n" in result.stdout or f"New, {version}, Cipher is " in result.stdout
    return result.returncode == 0 and shown and "Cipher is (NONE)" not in result.stdout


def test_only_tls_1_2_and_1_3_are_offered(site, tmp_path):
    _, host = site
    with tls11_server(tmp_path) as port:
        control = handshake("127.0.0.1", port, "tls1_1")
        assert negotiated(control, "TLSv1.1"), control.stdout[-800:] + control.stderr[-400:]
    old = handshake(host.address, 443, "tls1_1")
    assert not negotiated(old, "TLSv1.1"), old.stdout[-800:]
    assert "alert protocol version" in old.stderr, old.stderr[-400:]  # the server said no
    for version, shown in (("tls1_2", "TLSv1.2"), ("tls1_3", "TLSv1.3")):
        result = handshake(host.address, 443, version)
        assert negotiated(result, shown), (version, result.stdout[-800:])
    # Mozilla intermediate: forward-secret AEAD suites only.
    result = subprocess.run(["openssl", "s_client", "-connect", f"{host.address}:443", "-servername", DOMAIN,
                             "-tls1_2", "-cipher", "AES128-SHA:AES256-SHA:ECDHE-RSA-AES128-SHA"],
                            input="", capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0, result.stdout[-800:]


# What sslyze's Mozilla check finds that only the test CA causes: Pebble issues certificates valid
# for 5 years, where the profile allows at most 366 days (Let's Encrypt's last 90 or fewer). The
# check does not look at OCSP stapling, SCTs or HSTS (sslyze 6.3 leaves HSTS out; asserted below).
TEST_CA_ONLY = {"maximum_certificate_lifespan"}


def mozilla_intermediate(host, root: Path) -> tuple[dict[str, str], object]:
    """sslyze's scan with its `--mozilla_config=intermediate` check against the host's port 443
    for DOMAIN (by SNI), Pebble's root as the trust store: (the issues by name, the scan result)."""
    from sslyze import (
        CertificateInfoExtraArgument,
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkLocation,
        ServerScanRequest,
    )
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    scanner = Scanner()
    with warnings.catch_warnings():  # sslyze's own trust stores hold a root with a zero serial
        warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive")
        scanner.queue_scans([ServerScanRequest(
            server_location=ServerNetworkLocation(DOMAIN, 443, host.address),
            scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
            scan_commands_extra_arguments=ScanCommandsExtraArguments(
                certificate_info=CertificateInfoExtraArgument(custom_ca_file=root)))])
        (result,) = scanner.get_results()
    try:
        check_server_against_tls_configuration(
            result, MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE))
    except ServerNotCompliantWithTlsConfiguration as exc:
        return exc.issues, result
    return {}, result


def test_tls_passes_mozillas_intermediate_check_and_hsts_is_on_the_fronts_own_redirects(
        site, pebble, tmp_path):
    stack, host = site
    root = tmp_path / "pebble-root.pem"
    root.write_text(pebble.root_pem())
    started = time.monotonic()
    issues, result = mozilla_intermediate(host, root)
    print(f"\n{stack.front}: sslyze --mozilla_config=intermediate {time.monotonic() - started:.1f} s, "
          f"issues {issues}")
    assert set(issues) == TEST_CA_ONLY, issues
    days = int(issues["maximum_certificate_lifespan"].split(" is ")[1].split()[0])
    assert days > 366, issues  # Pebble's choice, not the front's
    # The certificate itself verifies against Pebble's root (the check above would have said so).
    (deployment,) = result.scan_result.certificate_info.result.certificate_deployments
    assert deployment.verified_certificate_chain is not None
    # X448 and secp521r1, which OpenSSL would offer unasked, are refused.
    curves = result.scan_result.elliptic_curves.result
    offered = {c.name for c in curves.supported_curves}
    assert offered == {"X25519", "secp256r1", "secp384r1"}, offered  # sslyze's name of prime256v1
    assert {"X448", "secp521r1"} <= {c.name for c in curves.rejected_curves}
    for group in ("X448", "secp521r1"):
        refused = subprocess.run(["openssl", "s_client", "-connect", f"{host.address}:443", "-servername",
                                  DOMAIN, "-groups", group], input="", capture_output=True, text=True,
                                 timeout=30, check=False)
        assert refused.returncode != 0, (group, refused.stdout[-600:])
    # HSTS on every HTTPS answer: the front's own www. redirect too, not only the app's answers.
    context = trusting(pebble)
    www = get_response(host, "/any?q=1", https=True, server_name=f"www.{DOMAIN}", context=context)
    assert www.status == 301 and www.getheader("Location") == f"https://{DOMAIN}/any?q=1"
    assert www.getheader("Strict-Transport-Security") == "max-age=63072000", www.getheaders()


def test_an_unchanged_deploy_runs_nothing_and_every_step_again_changes_nothing(site):
    stack, host = site
    before = (host_state(host), served_certificate(host)["serial"])
    assert stack.deploy().ran == []
    stack.replayer.state.clear()
    outcome = stack.deploy()
    assert "app-web-0-certificate" in outcome.ran
    assert (host_state(host), served_certificate(host)["serial"]) == before  # not issued again


def https_request(context: ssl.SSLContext):
    def request(host) -> int:
        return get_response(host, "/", https=True, server_name=DOMAIN, context=context,
                            headers={"Connection": "close"}, timeout=10).status
    return request


@contextlib.contextmanager
def keepalive_https(host, context: ssl.SSLContext, clients: int = 2):
    """Keep-alive HTTPS clients that never retry (a balancer's way, or a script's): each keeps one
    connection and counts a request that fails on it; a closed connection is opened again for
    the next request, as any client does."""
    stats = {"ok": 0, "failed": 0, "errors": [], "connections": 0}
    stop = threading.Event()
    lock = threading.Lock()

    def client():
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = HTTPSTo(host.address, DOMAIN, context=context, timeout=10)
                    with lock:
                        stats["connections"] += 1
                conn.request("GET", "/", headers={"Host": DOMAIN})
                response = conn.getresponse()
                response.read()
                with lock:
                    stats["ok" if response.status == 200 else "failed"] += 1
                    if response.status != 200:
                        stats["errors"].append(f"HTTP {response.status}")
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    stats["failed"] += 1
                    stats["errors"].append(repr(exc))
                conn.close()
                conn = None
            time.sleep(0.02)
        if conn is not None:
            conn.close()

    with running([threading.Thread(target=client, daemon=True) for _ in range(clients)], stop,
                 join_timeout=15):
        yield stats


@contextlib.contextmanager
def forced_renewal(host):
    """certbot renews only 30 days before expiry (Pebble's certificates last 5 years): make the
    renewal that certbot.timer starts a forced one, for the duration."""
    host.ssh(f"echo 'force-renewal = True' | sudo -n tee -a {CLI_INI} >/dev/null")
    try:
        yield
    finally:
        host.ssh(f"sudo -n sed -i '/^force-renewal = True$/d' {CLI_INI}")


def test_the_timer_renews_with_no_failed_request_and_haproxy_keeps_every_connection(site, pebble):
    stack, host = site
    timer = host.ssh("systemctl is-enabled certbot.timer; systemctl is-active certbot.timer; "
                     "systemctl show -p Unit --value certbot.timer").stdout.split()
    assert timer == ["enabled", "active", "certbot.service"], timer
    before = served_certificate(host)["serial"]
    context = trusting(pebble)
    since = host.ssh("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    with forced_renewal(host), load([host], request=https_request(context)) as stats, \
            keepalive_https(host, context) as kept:
        time.sleep(1)
        started = time.monotonic()
        host.ssh("sudo -n systemctl start certbot.service", timeout=120)  # what the timer starts
        renewed = wait_for(lambda: served_certificate(host)["serial"] not in ("", before), timeout=30)
        print(f"\n{stack.front}: renewal through certbot.service {time.monotonic() - started:.1f} s")
        time.sleep(1)
    assert renewed
    assert stats["failed"] == 0 and stats["ok"] > 10, stats["errors"][:5]
    print(f"{stack.front}: keep-alive clients {kept['ok']} ok, {kept['failed']} failed "
          f"({kept['errors'][:3]}), {kept['connections']} connections")
    assert kept["ok"] > 10
    if stack.front == "haproxy":
        # The runtime API swapped the certificate: no connection was closed, none failed.
        assert kept["failed"] == 0 and kept["connections"] == 2, kept
        assert "reloading HAProxy instead" not in host.ssh(
            f"sudo -n journalctl --no-pager -t flask-stack --since '{since}'").stdout
    else:
        # Nginx 1.22 reloads (docs/tls.md): its old workers close each idle keep-alive connection
        # once, so a client that sends on one just then fails once; never with an HTTP error.
        assert kept["failed"] <= 2 and not [e for e in kept["errors"] if e.startswith("HTTP")], kept
    # The hook's own report (by its syslog identifier: journald may not tie a message from a
    # process that has already exited to certbot.service).
    journal = host.ssh(f"sudo -n journalctl --no-pager -t flask-stack --since '{since}'").stdout
    assert f"{stack.front} serves the new certificate" in journal, journal


def test_a_failed_renewal_leaves_the_served_certificate_alone(site, pebble):
    stack, host = site
    before = served_certificate(host)["serial"]
    for name in NAMES:
        pebble.forget(name)  # the ACME server can no longer reach the host
    try:
        with forced_renewal(host):
            result = host.ssh("sudo -n systemctl start certbot.service", check=False, timeout=120)
        assert result.returncode != 0
        assert "failed" in host.ssh("systemctl is-failed certbot.service", check=False).stdout
    finally:
        for name in NAMES:
            pebble.point(name, host.address)
        host.ssh("sudo -n systemctl reset-failed certbot.service", check=False)
    assert served_certificate(host)["serial"] == before
    response = get_response(host, "/", https=True, server_name=DOMAIN, context=trusting(pebble))
    assert response.status == 200
