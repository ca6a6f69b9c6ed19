"""The rollout as the program declares it, under Pulumi's mocks: steps, order, secrets."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.mocks import Secret, plain, run_program
from tests.support.replay import COMMAND, COPY, comparable

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nKEYMATERIAL\n-----END OPENSSH PRIVATE KEY-----"
DB_PASSWORD = "dbpassword-7f3a"
APP_SECRET = "appsecret-91c2"
STEPS = ("bootstrap", "env", "upload", "release", "configure", "gate")


def config(app_path: str = "app", **extra) -> dict:
    base = {
        "platform": "existing",
        "hosts": {"addresses": ["203.0.113.10", "203.0.113.11", "203.0.113.12"]},
        "ssh": {"user": "deploy", "privateKey": PRIVATE_KEY},
        "database": {"url": f"postgresql://app:{DB_PASSWORD}@db.internal/app"},
        "app": {"path": app_path, "releaseCommand": "flask db upgrade",
                "secretEnv": {"SECRET_KEY": APP_SECRET}, "env": {"GREETING": "hi"}},
        "deploy": {"batchSize": 2},
    }
    for key, value in extra.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base


def run(cfg: dict):
    return run_program(cfg, secret_keys=("ssh", "database", "app"))


@pytest.fixture(scope="module")
def graph():
    return run(config()).monitor


def steps_of(monitor, host: str) -> dict:
    return {r.name.rsplit("-", 1)[1]: r for r in monitor.registered
            if r.type in (COMMAND, COPY) and r.name.startswith(f"app-{host}-")}


def test_each_host_gets_its_six_steps_parented_under_its_apphost(graph):
    apphosts = {r.urn: r for r in graph.by_type("flask-stack:hosts:AppHost")}
    rollout = graph.by_type("flask-stack:app:Rollout")
    assert len(apphosts) == 3 and len(rollout) == 1
    for apphost in apphosts.values():
        assert apphost.parent == rollout[0].urn, apphost.urn
    for host in ("web-0", "web-1", "web-2"):
        steps = steps_of(graph, host)
        assert sorted(steps) == sorted(STEPS), host
        for step in steps.values():
            assert apphosts[step.parent].name == f"app-{host}", step.urn


def test_later_batches_wait_for_the_previous_batch_gates_but_prepare_at_once(graph):
    gates = {steps_of(graph, h)["gate"].urn for h in ("web-0", "web-1")}
    third = steps_of(graph, "web-2")
    for name in ("env", "release", "configure"):
        assert gates <= set(third[name].dependencies), f"{third[name].urn} does not wait for batch 1"
    for name in ("bootstrap", "upload"):
        assert not gates & set(third[name].dependencies), f"{third[name].urn} waits needlessly"


def test_within_a_host_the_steps_run_in_order(graph):
    steps = steps_of(graph, "web-0")
    urn = {name: step.urn for name, step in steps.items()}
    assert urn["bootstrap"] in steps["env"].dependencies
    assert {urn["upload"], urn["env"]} <= set(steps["release"].dependencies)
    assert urn["release"] in steps["configure"].dependencies
    assert {urn["configure"], urn["release"], urn["env"]} <= set(steps["gate"].dependencies)


def test_the_release_command_runs_once_on_the_first_host_before_the_others_switch(graph):
    first, second = steps_of(graph, "web-0"), steps_of(graph, "web-1")
    assert "flask db upgrade" in first["release"].inputs["create"]
    for host in ("web-1", "web-2"):
        assert "flask db upgrade" not in steps_of(graph, host)["release"].inputs["create"]
    assert first["release"].urn in second["release"].dependencies


def test_secrets_never_reach_a_command_line_and_travel_as_secrets(graph):
    for step in graph.registered:
        if step.type not in (COMMAND, COPY):
            continue
        for key in ("create", "update"):
            text = str(step.inputs.get(key, ""))
            for secret in (DB_PASSWORD, APP_SECRET, "KEYMATERIAL"):
                assert secret not in text, f"{secret} in {key} of {step.urn}"
        assert isinstance(step.inputs["connection"], Secret), f"connection of {step.urn} is not secret"
    env = steps_of(graph, "web-0")["env"]
    assert isinstance(env.inputs["stdin"], Secret)
    assert f"DATABASE_URL=\"postgresql://app:{DB_PASSWORD}@db.internal/app\"" in plain(env.inputs["stdin"])
    assert f'SECRET_KEY="{APP_SECRET}"' in plain(env.inputs["stdin"])
    assert 'GREETING="hi"' in env.inputs["create"]  # plain values go in the script


def test_steps_update_in_place_and_never_delete(graph):
    for step in graph.by_type(COMMAND):
        assert step.inputs.get("update") == step.inputs["create"], step.urn
        assert not step.inputs.get("delete"), step.urn
        assert step.inputs["create"].startswith("sudo -n bash -c "), step.urn


def test_every_script_is_valid_bash(graph):
    for step in graph.by_type(COMMAND):
        argv = shlex.split(step.inputs["create"])
        assert argv[:4] == ["sudo", "-n", "bash", "-c"], step.urn
        script = argv[4]
        assert script.startswith("set -Eeuo pipefail\n"), step.urn
        checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert checked.returncode == 0, f"{step.urn}: {checked.stderr}"


def test_a_second_run_declares_identical_inputs(graph):
    again = run(config()).monitor
    first = {r.urn: comparable(r.inputs) for r in graph.registered}
    second = {r.urn: comparable(r.inputs) for r in again.registered}
    assert first == second


def changed_steps(before, after) -> set[str]:
    a = {r.name: comparable(r.inputs) for r in before.registered if r.type in (COMMAND, COPY)}
    b = {r.name: comparable(r.inputs) for r in after.registered if r.type in (COMMAND, COPY)}
    assert a.keys() == b.keys()
    return {name.split("-", 3)[3] for name in a if a[name] != b[name]}


def test_a_config_change_touches_only_configure_and_the_gate(graph):
    after = run(config(app={"timeout": 45})).monitor
    assert changed_steps(graph, after) == {"configure", "gate"}


def test_an_env_change_touches_only_env_and_the_gate(graph):
    after = run(config(app={"env": {"GREETING": "hello"}})).monitor
    assert changed_steps(graph, after) == {"env", "gate"}


def test_an_app_change_touches_only_upload_release_and_the_gate(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(ROOT / "app", app)
    before = run(config(app_path=str(app))).monitor
    (app / "rocket.py").write_text((app / "rocket.py").read_text() + "\n# a change\n")
    after = run(config(app_path=str(app))).monitor
    assert changed_steps(before, after) == {"upload", "release", "gate"}


# -- TLS on the hosts ------------------------------------------------------------------------
TLS = {"domain": {"name": "example.com"},
       "tls": {"enabled": True, "email": "ops@example.com",
               "acmeDirectory": "https://acme-staging-v02.api.letsencrypt.org/directory"}}


@pytest.fixture(scope="module")
def tls_graph():
    return run(config(**TLS)).monitor


def test_with_tls_each_host_gets_a_certificate_step_between_configure_and_the_gate(tls_graph):
    for host in ("web-0", "web-1", "web-2"):
        steps = steps_of(tls_graph, host)
        assert sorted(steps) == sorted((*STEPS, "certificate")), host
        assert steps["configure"].urn in steps["certificate"].dependencies
        assert steps["certificate"].urn in steps["gate"].dependencies
        script = shlex.split(steps["certificate"].inputs["create"])[4]
        assert "--server https://acme-staging-v02.api.letsencrypt.org/directory" in script
        assert "--webroot --webroot-path /var/www/acme" in script
        assert "--domain example.com --domain www.example.com" in script
        checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
    assert not any(r.name.endswith("-certificate") for r in run(config()).monitor.registered)


def test_haproxy_answers_challenges_through_certbots_own_server_on_loopback():
    graph = run(config(front="haproxy", **TLS)).monitor
    script = steps_of(graph, "web-0")["certificate"].inputs["create"]
    assert "--standalone --http-01-address 127.0.0.1 --http-01-port 8402" in script
    assert "--webroot" not in script


def test_the_certificate_step_runs_again_only_when_the_domain_or_acme_settings_change(tls_graph):
    assert changed_steps(tls_graph, run(config(app={"timeout": 45}, **TLS)).monitor) == {"configure", "gate"}
    other = {**TLS, "tls": {**TLS["tls"], "email": "security@example.com"}}
    assert changed_steps(tls_graph, run(config(**other)).monitor) == {"certificate", "gate"}
    bootstrap = steps_of(tls_graph, "web-0")["bootstrap"].inputs["create"]
    assert "certbot" in bootstrap and "openssl" in bootstrap


def test_a_private_acme_servers_ca_is_trusted_by_the_certificate_step_only(tls_graph):
    from tests.support.stacks import TEST_CA_PEM

    private = {**TLS, "tls": {**TLS["tls"], "acmeDirectory": "https://acme.internal/dir",
                              "acmeCaBundle": TEST_CA_PEM}}
    graph = run(config(**private)).monitor
    assert changed_steps(tls_graph, graph) == {"certificate", "gate"}
    script = steps_of(graph, "web-0")["certificate"].inputs["create"]
    assert TEST_CA_PEM.splitlines()[1] in script
    assert "REQUESTS_CA_BUNDLE=/etc/app/tls/acme-ca-bundle.pem" in script
    assert "REQUESTS_CA_BUNDLE" not in steps_of(tls_graph, "web-0")["certificate"].inputs["create"]


def failure_report(tmp_path, fakes: dict[str, str]) -> subprocess.CompletedProcess:
    """The release's `unhealthy` report, run by bash with `fakes` ({command: shell body}) in
    place of curl and journalctl."""
    from stack import scripts, settings

    loaded = settings.load(config(deploy={"healthTimeout": 5}), stack="dev", project_dir=ROOT,
                           secret_keys=frozenset({"ssh", "database", "app"}), offline=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    script = (scripts.prelude("release", "web-0", "203.0.113.10")
              + f"export PATH={shlex.quote(str(bin_dir))}:$PATH\n"
              + scripts.health_functions(loaded, "web-0", "203.0.113.10")
              + 'unhealthy "Rolled back to release r1"\n')
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)


def test_a_failure_reported_before_any_probe_names_the_host_and_status(tmp_path):
    """The release's report when the workers never took the new release: no probe has run yet
    (the front was never asked), and `set -u` must not turn the report into 'unbound variable'."""
    ran = failure_report(tmp_path, {"curl": "printf 200", "journalctl": "echo 'ModuleNotFoundError: rocket'"})
    assert ran.returncode == 1, ran.stderr
    assert "unbound variable" not in ran.stderr, ran.stderr
    assert "on host web-0 (203.0.113.10)" in ran.stderr and "(last status 000)" in ran.stderr
    assert "Rolled back to release r1; the previous version answers 200 again" in ran.stderr
    assert "ModuleNotFoundError: rocket" in ran.stderr


def test_the_cause_stays_in_the_report_when_a_restart_loop_fills_the_journal(tmp_path):
    """A restart loop writes pages of boot lines after the import error: the report keeps the
    error lines ahead of the last 40 lines."""
    loop = "; ".join(f"echo 'systemd[1]: Starting app.service ({i})'" for i in range(60))
    error = "echo \"ModuleNotFoundError: No module named 'rocket'\""
    ran = failure_report(tmp_path, {"curl": "printf 502", "journalctl": f"{error}; {loop}"})
    assert ran.returncode == 1, ran.stderr
    assert "ModuleNotFoundError: No module named 'rocket'\n[...]\n" in ran.stderr
    assert "Starting app.service (59)" in ran.stderr and "Starting app.service (19)" not in ran.stderr


def test_a_change_of_static_dir_alone_runs_the_release_step_that_opens_it_to_nginx(tmp_path):
    """The static folder's permissions are set by the release step on every run, so a new
    app.staticDir (the same release) reaches the hosts without a code change."""
    app = tmp_path / "app"
    for name in ("rocket.py", "requirements.txt", "static/a.css", "assets/b.css"):
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text("app = None\n" if name == "rocket.py" else "\n")
    before = run(config(app_path=str(app))).monitor
    after = run(config(app_path=str(app), app={"staticDir": "assets"})).monitor
    assert changed_steps(before, after) == {"release", "configure", "gate"}
    release_script = steps_of(after, "web-0")["release"].inputs["create"]
    assert "static=/srv/app/releases/" in release_script and "/assets\n" in release_script
    assert "/static\n" not in release_script
