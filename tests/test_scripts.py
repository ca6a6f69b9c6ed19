"""The remote steps' scripts: pinned output, shellcheck, quoting, and a few exact commands.

Pinned output: every step's script for host web-0 of the dev stack, every example and two
variants, made with a fixed release and address, is compared byte for byte with
tests/golden-scripts/<name>/<step>.sh (a tree of its own: tests/golden/<name>/ holds exactly the
files a host receives). After an intended change to a script template, regenerate and review:

    UPDATE_GOLDEN=1 python -m pytest tests/test_scripts.py -k golden   # rewrites, then FAILS
    git diff tests/golden-scripts                                      # review every change
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest

from stack import hostkeys, inventory, render, scripts, settings
from stack.paths import Paths
from stack.release import Release
from stack.scripts import shell
from tests.support import stacks

GOLDEN = Path(__file__).resolve().parent / "golden-scripts"
UPDATE = os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")
ADDRESS = "203.0.113.10"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkqXN6mLzuD2Pg0Nb1R9UTpQe0cjAIdKdYqPRWs8Ilh"
RELEASE = Release(
    id="0123456789abcdef0123", sha256="0123456789abcdef0123" + "4" * 44,
    archive=Path("/nonexistent/release.tar.gz"), files=("app.py",),
    wheels=("flask-3.1.3-py3-none-any.whl", "gunicorn-27.0.1-py3-none-any.whl"),
    python="3.11.2", requirements=("flask==3.1.3", "gunicorn==27.0.1"))


def golden_cases() -> list[stacks.Case]:
    return [*stacks.stack_file_cases(), *stacks.example_cases(),
            stacks.case("variant:complete"), stacks.case("variant:haproxy-tls-private-acme")]


def golden_name(case: stacks.Case) -> str:
    kind, name = case.id.split(":", 1)
    return name if kind in ("stack", "example") else f"{kind}-{name}"


def step_scripts(case: stacks.Case, host_name: str = "web-0", address: str = ADDRESS,
                 config=None) -> dict[str, str]:
    """{step: script text} of every step one host runs."""
    config = config or case.load()
    host = inventory.Host(host_name, address)
    files = render.render_host(config, host)
    paths = Paths(config.app.name)
    made = {
        "bootstrap": scripts.bootstrap(config, host_name, address),
        "database": scripts.database(config, host_name, "appdb", "appuser", address=address),
        "env": scripts.env(config, host_name, files[paths.env_file], address),
        "release": scripts.release(config, host_name, RELEASE, release_command=True,
                                   address=address, wsgi=files[paths.wsgi]),
        "configure": scripts.configure(config, host_name, files, address),
        "gate": scripts.gate(config, host_name, address),
    }
    if config.tls.enabled:
        made["certificate"] = scripts.certificate(config, host_name, files, address)
    # The host key steps, which run where `pulumi up` runs: the check, and on a cloud the record
    # of a new machine's key that the check then compares with.
    pinned = hostkeys.configured(config, address)
    if pinned is None:
        made["hostkey-record"] = hostkeys.script(config, host_name, address, None)
    made["hostkey"] = hostkeys.script(config, host_name, address, pinned or HOST_KEY)
    return {step: script.text() for step, script in made.items()}


# -- pinned output ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", golden_cases(), ids=[c.id for c in golden_cases()])
def test_golden(case):
    made = step_scripts(case)
    directory = GOLDEN / golden_name(case)
    if UPDATE:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for step, text in made.items():
            (directory / f"{step}.sh").write_bytes(text.encode())
        pytest.fail(f"UPDATE_GOLDEN is set: rewrote {directory.relative_to(GOLDEN.parent.parent)}; "
                    "review `git diff tests/golden-scripts`, then run again without UPDATE_GOLDEN")
    if not directory.is_dir():
        pytest.fail(f"no golden scripts for {case.id} in {directory}; create them with "
                    "UPDATE_GOLDEN=1 python -m pytest tests/test_scripts.py -k golden")
    pinned = {f.name.removesuffix(".sh"): f.read_bytes().decode() for f in sorted(directory.glob("*.sh"))}
    assert sorted(pinned) == sorted(made), "the set of steps changed"
    for step, text in made.items():
        assert text == pinned[step], f"{step} differs from {directory / (step + '.sh')}"


# -- shellcheck ------------------------------------------------------------------------------
def shellcheck_path() -> str:
    found = shutil.which("shellcheck")
    if found:
        return found
    if os.environ.get("CI", "") not in ("", "0", "false"):
        pytest.fail("shellcheck is missing and CI is set: install it (bin/test's ensure_apt does)")
    pytest.skip("shellcheck is not installed (apt-get install shellcheck); under CI this fails")


CHECKED = stacks.all_cases()
_seen: set[str] = set()  # scripts already checked for an earlier case (many cases share some)


@pytest.mark.parametrize("case", CHECKED, ids=[c.id for c in CHECKED])
def test_shellcheck_finds_nothing(case, tmp_path):
    """Every step's script of every stack file, example and variant: 0 findings."""
    tool = shellcheck_path()
    made = {step: text for step, text in step_scripts(case).items() if text not in _seen}
    _seen.update(made.values())
    if not made:
        return
    for step, text in made.items():
        (tmp_path / f"{step}.sh").write_text(text)
    result = subprocess.run([tool, "-s", "bash", "-f", "gcc", *sorted(str(p) for p in tmp_path.glob("*.sh"))],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and not result.stdout, f"{case.id}:\n{result.stdout}{result.stderr}"


# -- quoting ---------------------------------------------------------------------------------
HOSTILE = "'; touch CANARY #\"$(touch CANARY)`touch CANARY`"
HOSTILE_ADDRESS = "203.0.113.10$(touch CANARY)'; touch CANARY"


def template(text: str, **values: object) -> str:
    return shell.environment().from_string(text).render(**values)


def test_shellcheck_as_run_here_flags_what_the_old_gate_did(tmp_path):
    """The check can fail: the gate's old `for release in $(ls -1t)` is SC2045."""
    tool = shellcheck_path()
    (tmp_path / "old.sh").write_text(
        "set -euo pipefail\nfor release in $(ls -1t); do echo \"$release\"; done\n")
    result = subprocess.run([tool, "-s", "bash", "-f", "gcc", str(tmp_path / "old.sh")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "SC2045" in result.stdout, result.stdout


def test_every_value_a_template_pastes_becomes_one_word():
    assert template("rm -rf {{ path }}", path="/srv/a b; rm -rf /") == "rm -rf '/srv/a b; rm -rf /'"
    assert template("echo {{ v }}", v="'; rm -rf / #") == """echo ''"'"'; rm -rf / #'"""
    assert template("echo {{ v }}", v="$(id)") == "echo '$(id)'"
    assert template("echo {{ v }}", v="plain-word_1.2/x") == "echo plain-word_1.2/x"
    assert template("echo {{ v }}", v="") == "echo ''"


def test_numbers_go_in_as_digits_and_shell_text_as_it_is():
    assert template("sleep {{ n }}", n=30) == "sleep 30"
    assert template("{{ cmd('echo', 'a b') }}") == "echo 'a b'"
    assert template("{{ v }}", v=shell.Shell('"$stage/files"')) == '"$stage/files"'


@pytest.mark.parametrize("value", [True, None, 1.5, ["a"]])
def test_a_value_with_no_shell_meaning_is_refused(value):
    with pytest.raises(TypeError, match="script template tried to paste"):
        template("echo {{ v }}", v=value)


def test_an_undefined_name_in_a_script_template_fails():
    with pytest.raises(jinja2.UndefinedError):
        template("echo {{ missing }}")


def test_inside_double_quotes_a_value_stays_text():
    said = subprocess.run(["bash", "-c", template('echo "at {{ v | dq }} here"', v=HOSTILE)],
                          capture_output=True, text=True, cwd="/tmp", check=True)
    assert said.stdout == f"at {HOSTILE} here\n"


def hostile_settings(**app):
    raw = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10"]}, "ssh": {"user": "deploy"},
           "deploy": {"healthTimeout": 5}, "app": app}
    return settings.load(raw, stack="dev", project_dir=stacks.REPO_ROOT, offline=True)


def stub(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / name).chmod(0o755)


def test_a_hostile_host_and_address_reach_a_message_intact_and_inert(tmp_path):
    """The failure report names host and address as text; nothing in them runs."""
    config = hostile_settings()
    for make in (lambda: scripts.gate(config, HOSTILE, HOSTILE_ADDRESS),
                 lambda: scripts.env(config, HOSTILE, "A=1\n", HOSTILE_ADDRESS),
                 lambda: scripts.bootstrap(config, HOSTILE, HOSTILE_ADDRESS)):
        checked = subprocess.run(["bash", "-n"], input=make().text(), capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
    bin_dir = tmp_path / "bin"
    stub(bin_dir, "curl", "printf 200")
    stub(bin_dir, "journalctl", "echo 'ModuleNotFoundError: rocket'")
    script = (scripts.prelude("release", HOSTILE, HOSTILE_ADDRESS)
              + f"export PATH={shlex.quote(str(bin_dir))}:$PATH\n"
              + scripts.health_functions(config, HOSTILE, HOSTILE_ADDRESS) + 'unhealthy "Rolled back"\n')
    ran = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert ran.returncode == 1
    assert f"flask-stack: release on host {HOSTILE} ({HOSTILE_ADDRESS}): " in ran.stderr
    assert "). Rolled back; the previous version answers 200 again" in ran.stderr
    assert not (tmp_path / "CANARY").exists(), "a value ran as a command"


def test_a_hostile_release_command_arrives_as_one_argument(tmp_path):
    """app.releaseCommand is the user's shell, run by /bin/sh -c on the host: the script hands
    it over as one word, unchanged, and runs nothing of it itself."""
    command = "python -c 'import app' && echo \"$(id)\" ; rm -rf / #"
    config = hostile_settings(releaseCommand=command)
    text = scripts.release(config, "web-0", RELEASE, release_command=True).text()
    line = next(x for x in text.splitlines() if x.startswith("systemd-run "))
    bin_dir = tmp_path / "bin"
    stub(bin_dir, "systemd-run", 'for a in "$@"; do printf "%s\\0" "$a"; done')
    run = f"fail() {{ exit 9; }}; PATH={shlex.quote(str(bin_dir))}:$PATH; {line}"
    ran = subprocess.run(["bash", "-c", run], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert ran.returncode == 0, ran.stderr
    argv = ran.stdout.split("\0")[:-1]
    assert argv[-3:] == ["/bin/sh", "-c", command]


def test_env_values_travel_in_a_heredoc_that_keeps_them(tmp_path):
    app_env = f"TRICKY={HOSTILE}\nFLASKSTACK_0=end\n"
    text = shell.heredoc(str(tmp_path / "app.env"), app_env)
    subprocess.run(["bash", "-c", text], check=True, cwd=tmp_path)
    assert (tmp_path / "app.env").read_text() == app_env
    assert not (tmp_path / "CANARY").exists()


# -- small commands, exact strings -----------------------------------------------------------
def test_cmd_quotes_each_token():
    assert scripts.cmd("install", "-d", "-m", "0755", "/srv/a b") == "install -d -m 0755 '/srv/a b'"


def test_heredoc_names_its_delimiter_after_the_content():
    text = shell.heredoc("/etc/x.conf", "a $b\n")
    delimiter = re.search(r"<<'(FLASKSTACK_[0-9A-F]{16})'", text).group(1)
    assert text == f"cat > /etc/x.conf <<'{delimiter}'\na $b\n{delimiter}\n"
    unterminated = shell.heredoc("/etc/x.conf", "a $b")
    assert "\na $b\nFLASKSTACK_" in unterminated, "a missing final newline is added"
    staged = shell.heredoc("/etc/a b", "x\n", staged=True)
    assert staged.startswith("""cat > "$stage/files"'/etc/a b' <<'FLASKSTACK_""")


def test_nginx_workers_fixed_and_from_the_cpus():
    assert scripts.nginx_workers("/tmp/my etc", 3) == (
        "workers=3\n"
        "cat > '/tmp/my etc'/flask-stack-workers.conf <<FLASKSTACK_WORKERS\n"
        "# Written by flask-stack's configure step: frontWorkers.\n"
        "worker_processes $workers;\n"
        "FLASKSTACK_WORKERS")
    assert scripts.nginx_workers("/etc/nginx").startswith(
        'cpus=$(nproc); workers=$(( cpus / 2 )); [ "$workers" -ge 1 ] || workers=1\n'
        "cat > /etc/nginx/flask-stack-workers.conf <<FLASKSTACK_WORKERS\n"
        "# Written by flask-stack's configure step: half of this host's $cpus CPUs, at least one.\n")


def test_the_grants_quote_identifiers():
    assert scripts.steps.grants("appdb", "app_user") == (
        "psql -X -q -v ON_ERROR_STOP=1 <<'SQL'\n"
        'GRANT ALL PRIVILEGES ON DATABASE "appdb" TO "app_user";\n'
        'GRANT ALL ON SCHEMA public TO "app_user";\nSQL\n')
    with pytest.raises(ValueError):
        scripts.steps.grants("db\nSQL", "u")


def test_as_root_runs_the_script_under_bash_through_sudo():
    config = stacks.case("stack:dev").load()
    script = scripts.gate(config, "web-0", ADDRESS)
    line = scripts.as_root(config, script)
    expected = "bash -c " + shlex.quote(script.text())
    assert line == (expected if config.ssh.user == "root" else "sudo -n " + expected)


def test_the_prelude_names_step_and_host_with_its_address():
    assert scripts.prelude("health gate", "web-0", "203.0.113.10").splitlines()[2:] == [
        'fail() { echo "flask-stack: health gate on host web-0 (203.0.113.10): $*" >&2; exit 1; }',
        'failed() { local rc=$?; echo "flask-stack: health gate on host web-0 (203.0.113.10) failed '
        '(exit $rc) running: $BASH_COMMAND" >&2; }',
        "trap failed ERR"]
    assert scripts.prelude("bootstrap", "web-0").splitlines()[2].startswith(
        'fail() { echo "flask-stack: bootstrap on host web-0: ')


def test_the_deps_key_ignores_wheel_order():
    reordered = Release(**{**RELEASE.__dict__, "wheels": tuple(reversed(RELEASE.wheels))})
    assert scripts.deps_key(reordered) == scripts.deps_key(RELEASE)
    assert re.fullmatch(r"[0-9a-f]{20}", scripts.deps_key(RELEASE))


def test_the_gate_keeps_the_newest_releases_and_the_current_one(tmp_path):
    """The gate's pruning, run in a scratch tree: newest first by time (as `ls -t` orders them),
    the live release always kept, dot entries left alone."""
    config = hostile_settings()
    paths = Paths(config.app.name)
    releases = tmp_path / "releases"
    releases.mkdir()
    for age, name in enumerate(["r6", "r5", "r4", "r3", "r2", "r1", ".stage"]):
        (releases / name).mkdir()
        os.utime(releases / name, (1_000_000 - age * 60, 1_000_000 - age * 60))
    (tmp_path / "current").symlink_to(releases / "r1")  # the oldest one is live (a rollback)
    bin_dir = tmp_path / "bin"
    stub(bin_dir, "curl", "printf 200")
    gate = scripts.gate(config, "web-0", ADDRESS)
    body = gate.body.replace(paths.current, str(tmp_path / "current")).replace(paths.releases, str(releases))
    text = (scripts.prelude(gate.step, gate.host, gate.address)
            + f"PATH={shlex.quote(str(bin_dir))}:$PATH\n" + body)
    ran = subprocess.run(["bash", "-c", text], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr
    kept = config.deploy.releases_kept
    assert sorted(p.name for p in releases.iterdir()) == sorted(
        [".stage", "r1", *[f"r{i}" for i in range(6, 6 - (kept - 1), -1)]])
