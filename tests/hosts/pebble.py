"""A real ACME server for the test hosts: Pebble (Debian package `pebble`) on the outer machine.

Pebble listens on the testbed's bridge address only, over HTTPS with a certificate this module
makes for that address, signed by a throwaway CA (`ca_pem`): a host trusts Pebble's directory
through the program's `tls.acmeCaBundle`, exactly as it would trust a private ACME server.
Pebble looks names up in `pebble-challtestsrv`'s DNS (same package), also on the bridge, where
the tests point a domain at a host (`point`) or elsewhere; everything else resolves to 127.0.0.1
of this machine, where nothing answers on port 80, so a validation for an unknown name fails
fast. HTTP-01 validations go to port 80 of the address the name resolves to: the host's front.

Pebble makes a new root and intermediate CA at every start; `root_pem()` fetches the root from
its management interface, to check what the hosts serve. Validation runs at once
(PEBBLE_VA_NOSLEEP), every nonce is accepted (PEBBLE_WFE_NONCEREJECT=0) and no authorization is
ever reused (PEBBLE_AUTHZREUSE=0), so every order is really validated.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.hosts.postgres import free_port

INSTALL = "apt-get install -y --no-install-recommends pebble"


class Pebble:
    def __init__(self, workdir: Path, *, bridge_address: str):
        self.workdir = workdir
        self.address = bridge_address
        self.procs: list[subprocess.Popen] = []
        self.acme_port = self.management_port = self.dns_port = self.dns_api_port = 0
        self.ca_pem = ""

    @property
    def directory(self) -> str:
        return f"https://{self.address}:{self.acme_port}/dir"

    def start(self) -> Pebble:
        if self.procs:
            return self
        for tool in ("pebble", "pebble-challtestsrv", "openssl"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} is missing: {INSTALL}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._certificates()
        ports: list[int] = []
        while len(ports) < 4:
            if (port := free_port([self.address])) not in ports:
                ports.append(port)
        self.dns_port, self.dns_api_port, self.acme_port, self.management_port = ports
        self._spawn("challtestsrv", [
            "pebble-challtestsrv", "-dns01", f"{self.address}:{self.dns_port}",
            "-management", f"{self.address}:{self.dns_api_port}", "-defaultIPv4", "127.0.0.1",
            "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", ""])
        config = self.workdir / "pebble-config.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"{self.address}:{self.acme_port}",
            "managementListenAddress": f"{self.address}:{self.management_port}",
            "certificate": str(self.workdir / "listener.pem"),
            "privateKey": str(self.workdir / "listener.key"),
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
            "externalAccountBindingRequired": False}}, indent=1))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
               "PEBBLE_AUTHZREUSE": "0"}
        self._spawn("pebble", ["pebble", "-config", str(config),
                               "-dnsserver", f"{self.address}:{self.dns_port}"], env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                self._get(self.directory)
                self._dns_api("clear-a", {"host": "nothing.invalid."})
                return self
            except OSError as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Pebble did not answer at {self.directory}: {e}\n"
                                       f"{self.logs()}") from e
                self._check_running()
                time.sleep(0.2)

    def point(self, name: str, address: str) -> None:
        """`name` resolves to `address` (A record) in the DNS Pebble asks."""
        self._dns_api("add-a", {"host": name.rstrip(".") + ".", "addresses": [address]})

    def forget(self, name: str) -> None:
        """`name` resolves to the default (127.0.0.1 of this machine) again."""
        self._dns_api("clear-a", {"host": name.rstrip(".") + "."})

    def root_pem(self) -> str:
        """The root CA Pebble issues under (new at every start)."""
        return self._get(f"https://{self.address}:{self.management_port}/roots/0")

    def logs(self) -> str:
        out = []
        for name in ("challtestsrv", "pebble"):
            path = self.workdir / f"{name}.log"
            if path.exists():
                out.append(f"--- {name} (end)\n" + "\n".join(path.read_text().splitlines()[-30:]))
        return "\n".join(out)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.procs = []
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- inside ---------------------------------------------------------------------------------
    def _certificates(self) -> None:
        """A CA and, signed by it, Pebble's listener certificate for the bridge address."""
        w = self.workdir

        def openssl(*argv: str) -> None:
            subprocess.run(["openssl", *argv], check=True, capture_output=True, timeout=60, cwd=w)

        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-days", "2", "-subj", "/CN=flask-stack testbed ACME listener CA", "-keyout", "ca.key",
                "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-subj", f"/CN={self.address}", "-keyout", "listener.key", "-out", "listener.csr")
        (w / "listener.ext").write_text(f"subjectAltName=IP:{self.address}\n"
                                        "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-in", "listener.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "listener.ext", "-out", "listener.pem")
        self.ca_pem = (w / "ca.pem").read_text()

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> None:
        log = (self.workdir / f"{name}.log").open("w")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env, start_new_session=True))

    def _check_running(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}\n{self.logs()}")

    def _get(self, url: str) -> str:
        context = ssl.create_default_context(cadata=self.ca_pem)
        with urllib.request.urlopen(url, context=context, timeout=5) as response:  # noqa: S310
            return response.read().decode()

    def _dns_api(self, action: str, body: dict) -> None:
        request = urllib.request.Request(f"http://{self.address}:{self.dns_api_port}/{action}",
                                         data=json.dumps(body).encode(), method="POST")
        with contextlib.closing(urllib.request.urlopen(request, timeout=5)) as response:  # noqa: S310
            if response.status != 200:
                raise OSError(f"pebble-challtestsrv /{action}: HTTP {response.status}")
