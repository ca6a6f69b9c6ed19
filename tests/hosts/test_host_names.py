"""The bootstrap step never takes over what the host already has under the app's name: the
exact script the program declares, run over SSH on a real host on which a package's unit, a
user or a folder of that name exists. The step fails naming it, and the host is left as it was;
on a host with none of them, the same script bootstraps, and runs again without complaint."""

from __future__ import annotations

import pytest

from stack import scripts, settings
from tests.hosts.harness import HostCommandError, TestHost
from tests.support.stacks import REPO_ROOT

NAME = "shop"
PACKAGE_UNIT = f"/lib/systemd/system/{NAME}.service"


def bootstrap_line(host: TestHost) -> str:
    raw = {"platform": "existing", "hosts": {"addresses": [host.address]},
           "ssh": {"user": "deploy"}, "app": {"name": NAME}}
    config = settings.load(raw, stack="test", project_dir=REPO_ROOT, offline=True)
    return scripts.as_root(config, scripts.bootstrap(config, host.name, host.address))


def refused(host: TestHost, line: str) -> str:
    with pytest.raises(HostCommandError) as caught:
        host.ssh(line, timeout=120)
    return caught.value.stderr


def nothing_of_the_app(host: TestHost) -> None:
    left = host.ssh(f"ls -d /srv/{NAME} /etc/{NAME} /var/lib/{NAME} 2>/dev/null; "
                    f"getent passwd {NAME}; true").stdout
    assert left.strip() == "", left


def test_a_name_the_host_already_uses_is_never_taken_over(host: TestHost):
    line = bootstrap_line(host)

    host.ssh(f"printf '[Service]\\nExecStart=/bin/true\\n' | sudo -n tee {PACKAGE_UNIT} >/dev/null")
    message = refused(host, line)
    assert f"flask-stack: bootstrap on host {host.name} ({host.address}): app.name {NAME} is already " \
           f"used on this host: a package installed the unit {PACKAGE_UNIT}; nothing was changed" in message
    nothing_of_the_app(host)
    assert "ExecStart=/bin/true" in host.ssh(f"cat {PACKAGE_UNIT}").stdout
    host.ssh(f"sudo -n rm {PACKAGE_UNIT}")

    host.ssh(f"sudo -n useradd --system --home-dir /opt/{NAME} --no-create-home {NAME}")
    assert f"the user {NAME} exists, with home /opt/{NAME}" in refused(host, line)
    assert not host.ssh(f"ls /srv/{NAME}", check=False).stdout
    host.ssh(f"sudo -n userdel {NAME}")

    host.ssh(f"sudo -n mkdir /etc/{NAME} && echo mine | sudo -n tee /etc/{NAME}/own.conf >/dev/null")
    assert f"/etc/{NAME} exists" in refused(host, line)
    assert host.ssh(f"cat /etc/{NAME}/own.conf").stdout == "mine\n"
    host.ssh(f"sudo -n rm -r /etc/{NAME}")

    host.ssh(line, timeout=600)  # none of them: the step bootstraps the host
    host.ssh(line, timeout=600)  # and runs again on what it made itself
    assert host.ssh(f"getent passwd {NAME} | cut -d: -f6").stdout == f"/var/lib/{NAME}\n"
