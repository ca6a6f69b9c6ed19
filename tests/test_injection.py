"""Hostile values the settings accept, rendered and checked by the tool of each output language.

Each value here passes `stack.settings.load`; what is checked is that it reaches its output only
through that language's escaping rule and arrives unchanged:

- the WSGI module (Python): `python -m py_compile`, then imported against an app module of our
  own (APP_MODULE) that records its factory's arguments, which must be exactly app.entry's;
- the plain env file (systemd EnvironmentFile, which unescapes as a POSIX shell does inside
  double quotes): sourced by `bash` under `env -i`, every value read back unchanged; none of it
  in a unit file (where % would be a specifier);
- the step scripts (bash): `bash -n`, and every occurrence of a hostile value's marker lies in a
  single-quoted word, an escaped double-quoted string or a quoted heredoc (`unquoted_markers`);
- Nginx and HAProxy: `nginx -t`, `haproxy -c` on the values at the edge of their grammar, and the
  renderer's own refusal (render.token) of a value outside it;
- systemd units: `systemd-analyze verify`;
- a step's command line too long for one SSH argument: refused, naming its biggest part; a config
  at the proposed per-value limits (LIMITS) stays under it.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from stack import inventory, render, scripts, settings
from stack.paths import Paths
from stack.scripts import shell
from stack.scripts.steps import MAX_COMMAND, CommandTooLong
from stack.settings import app as app_settings
from stack.settings import environment, web
from tests import test_host_tools as tools
from tests.support import hostfs
from tests.support.stacks import REPO_ROOT
from tests.test_scripts import RELEASE
from tests.test_settings import changed, good

pytestmark = pytest.mark.tools

# The host tools' fixtures (tests/test_host_tools.py), which pytest finds here under these names.
nginx, haproxy, systemd_analyze, openssl, certificates = (
    tools.nginx, tools.haproxy, tools.systemd_analyze, tools.openssl, tools.certificates)

ADDRESS = "203.0.113.10"
TIMEOUT = 60

# The app the hostile entries name: x.create_app (and x.factory) record what they were called with.
APP_MODULE = '''
CALLS = []


def create_app(*args, **kwargs):
    CALLS.append((args, kwargs))

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


factory = create_app
'''

ENTRIES = [
    'x:create_app("\\"\\"\\"")',
    'x:create_app("C:\\\\Users\\\\new")',
    'x:create_app(r"C:\\Users\\new", "\\N{BULLET}")',  # \U and \N broke the old docstring
    'x:create_app(1e999, -0.0, b"\\x00", {1, 2}, (1,), None)',
    'x:factory(name="\'; import os #")',
    'x:create_app("😀 ünï \\u2028 \\ud800", {"k": [1.5, (b"", None)]})',
    'x:create_app("""\nFLASKSTACK_0123456789ABCDEF\n""", x=-1j, y=0x1F, z=1_000)',
    "x:create_app(\"'''\", '{__import__(\"os\")}', r'\\\\')",
]

MARK = "INJECTED"
# One of each thing a shell would act on: quotes, substitutions, a comment, a separator, globs.
HOSTILE = f"""it's "{MARK}" $({MARK}) `{MARK}` ${{{MARK}}} ; {MARK} # {MARK} * ? ~ \\ {MARK} %n %% !"""
ENV_VALUES = {
    "QUOTES": "it's \"double\" and 'single'",
    "SUBST": f"$(touch /tmp/{MARK}) `touch /tmp/{MARK}` ${{HOME}} $HOME",
    "PERCENT": "100% %n %i %% %{x}",
    "BACKSLASH": "C:\\Users\\new \\n \\t \\\\ \\\" \\$",
    "TRAILING": "ends in a backslash \\",
    "UNICODE": "ünïcødé 😀 \u2028 \u00a0 zero\u200bwidth",
    "HASH": "# not a comment ; echo no",
    "SPACES": "  leading and trailing  ",
    "EQUALS": "a=b=c&&d||e",
    "HOSTILE": HOSTILE,
    "EMPTY": "",
    "TAB": "a\tb",
}


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile-app")
    (path / "x.py").write_text(APP_MODULE)
    (path / "requirements.txt").write_text("flask\n")
    (path / "static").mkdir()
    return path


def load(app_dir: Path, changes: dict | None = None, platform: str = "existing") -> settings.Settings:
    raw = changed(good(platform), {"app.path": app_dir.name, "app.entry": "x:create_app()",
                                   **(changes or {})})
    return settings.load(raw, stack="prod", project_dir=app_dir.parent, offline=True)


def host_files(config: settings.Settings) -> dict[str, str]:
    return render.render_host(config, inventory.Host("web-0", ADDRESS))


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)


# -- Python: the WSGI module -------------------------------------------------------------------
IMPORT = """
import importlib.util, pickle, sys
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("flaskstack_wsgi", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import x
sys.stdout.buffer.write(pickle.dumps(x.CALLS))
"""


def expected_call(entry: str) -> tuple[tuple, dict]:
    call = ast.parse(entry.split(":", 1)[1].strip(), mode="eval").body
    return (tuple(ast.literal_eval(a) for a in call.args),
            {k.arg: ast.literal_eval(k.value) for k in call.keywords})


def test_every_hostile_entry_is_accepted_by_the_settings(app_dir):
    # Otherwise the tests below would test nothing the settings let through.
    for entry in ENTRIES:
        assert load(app_dir, {"app.entry": entry}).app.entry == entry


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_wsgi_module_compiles_and_passes_the_arguments_exactly(entry, app_dir, tmp_path):
    config = load(app_dir, {"app.entry": entry})
    files = host_files(config)
    paths = Paths(config.app.name)
    module = tmp_path / "flaskstack_wsgi.py"
    module.write_text(files[paths.wsgi])
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(files[paths.gunicorn_conf])
    compiled = run([sys.executable, "-m", "py_compile", str(module), str(conf)])
    assert compiled.returncode == 0, compiled.stderr
    assert files[paths.wsgi].isascii()  # every value is a literal of printable ASCII

    imported = subprocess.run([sys.executable, "-c", IMPORT, str(app_dir), str(module)],
                              capture_output=True, timeout=TIMEOUT, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr.decode()
    calls = pickle.loads(imported.stdout)  # noqa: S301 - our own subprocess's output
    # repr tells -0.0 from 0.0, a tuple from a list, bytes from str, and keeps keyword order.
    assert repr(calls) == repr([expected_call(entry)])


def test_gunicorn_loads_a_hostile_entry(app_dir, tmp_path):
    files = host_files(load(app_dir, {"app.entry": ENTRIES[3]}))
    conf = hostfs.gunicorn_prefix(files, tmp_path, app_dir=app_dir)
    result = tools.check_config(conf)
    assert result.returncode == 0, result.stdout + result.stderr


# -- systemd: the env file and the units -------------------------------------------------------
READ_BACK = 'set -a; . "$1"; shift; for name; do printf "%s\\0" "${!name}"; done'


def test_every_env_value_reaches_the_app_unchanged(app_dir, tmp_path):
    config = load(app_dir, {"app.env": ENV_VALUES})
    env_file = tmp_path / "app.env"
    env_file.write_text(host_files(config)[Paths(config.app.name).env_file])
    names = sorted(ENV_VALUES)
    checked = run(["bash", "-n", str(env_file)])
    assert checked.returncode == 0, checked.stderr
    result = subprocess.run(["env", "-i", "bash", "-c", READ_BACK, "bash", str(env_file), *names],
                            capture_output=True, timeout=TIMEOUT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split("\0")[:-1] == [ENV_VALUES[n] for n in names]
    assert not (tmp_path / MARK).exists() and not Path(f"/tmp/{MARK}").exists()


def test_no_env_value_reaches_a_unit_file(app_dir, systemd_analyze, tmp_path):
    config = load(app_dir, {"app.env": ENV_VALUES})
    files = host_files(config)
    units = {p: c for p, c in files.items() if p.startswith("/etc/systemd/")}
    assert units
    on_failure = f"OnFailure={Paths(config.app.name).on_failure}"  # the one specifier written
    for content in units.values():
        assert MARK not in content and "%n" not in content.replace(on_failure, "")
    assert tools.verify_problems(systemd_analyze, hostfs.systemd_prefix(files, tmp_path)) == []


def test_the_longest_app_name_makes_units_systemd_verifies(app_dir, systemd_analyze, tmp_path):
    config = load(app_dir, {"app.name": "a-" + "9" * 28 + "-z"})
    assert len(config.app.name) == 32
    assert tools.verify_problems(systemd_analyze, hostfs.systemd_prefix(host_files(config), tmp_path)) == []


# -- bash: the step scripts --------------------------------------------------------------------
def unquoted_markers(script: str, marker: str = MARK) -> list[str]:
    """Each place `marker` occurs where bash would read it as code: not inside single quotes, a
    quoted heredoc, or a double-quoted string (where `$(`, `${` and backticks open code again
    unless escaped). A small model of bash's quoting, enough for these scripts."""
    found = []
    frames: list[list] = [["code", None, 0]]  # [kind, what closes it, open parentheses]
    heredocs: list[tuple[str, bool]] = []  # (delimiter, quoted) waiting for the next line
    i, word_start = 0, True
    while i < len(script):
        kind, closer, _ = frame = frames[-1]
        char = script[i]
        if kind == "heredoc":
            end = script.index("\n", i)
            line = script[i:end]
            if line == heredocs[0][0]:
                heredocs.pop(0)
                frames.pop()
                if heredocs:
                    frames.append(["heredoc", None, 0])
            elif not heredocs[0][1] and marker in line:
                found.append(line)
            i = end + 1
            continue
        if kind == "code" and script.startswith(marker, i):
            found.append(script[max(0, i - 40):i + len(marker) + 20])
        opens_code = script.startswith(("$(", "${"), i)
        if kind == "sq":
            if char == "'":
                frames.pop()
        elif kind == "dq":
            if char == "\\":
                i += 1
            elif char == '"':
                frames.pop()
            elif opens_code or char == "`":
                frames.append(["code", "`" if char == "`" else ")" if script[i + 1] == "(" else "}", 0])
                i += 0 if char == "`" else 1
        elif char == "\\":
            i += 1
        elif char == "'":
            frames.append(["sq", None, 0])
        elif char == '"':
            frames.append(["dq", None, 0])
        elif char == "#" and word_start:
            end = script.find("\n", i) % (len(script) + 1)
            if marker in script[i:end]:
                found.append(script[i:end])
            i = end - 1
        elif script.startswith("<<<", i):  # a here-string: a word like any other
            i += 2
        elif script.startswith("<<", i):
            word = re.match(r"<<-?\s*('?)([A-Za-z0-9_]+)'?", script[i:])
            heredocs.append((word.group(2), bool(word.group(1))))
            i += len(word.group(0)) - 1
        elif char == "\n" and heredocs and len(frames) == 1:
            frames.append(["heredoc", None, 0])
        elif opens_code or (char == "`" and closer != "`"):
            frames.append(["code", "`" if char == "`" else ")" if script[i + 1] == "(" else "}", 0])
            i += 0 if char == "`" else 1
        elif char == "(" and closer == ")":
            frame[2] += 1
        elif char == closer and frame[2] == 0 and len(frames) > 1:
            frames.pop()
        elif char == ")" and closer == ")":
            frame[2] -= 1
        word_start = char in " \t\n;|&()"
        i += 1
    return found


def test_the_quoting_model_finds_what_bash_would_run():
    assert unquoted_markers(f"echo {MARK}\n")
    assert unquoted_markers(f'echo "$({MARK})"\n')
    assert unquoted_markers(f"cat <<X\n{MARK}\nX\n")
    assert not unquoted_markers(f"echo {shlex.quote(HOSTILE)}\n")
    assert not unquoted_markers(f'echo "{shell.dq(HOSTILE)}"\n')
    assert not unquoted_markers(shell.heredoc("/f", HOSTILE + "\n" + HOSTILE))


def step_scripts(config: settings.Settings) -> dict[str, scripts.Script]:
    files = host_files(config)
    paths = Paths(config.app.name)
    made = {
        "bootstrap": scripts.bootstrap(config, "web-0", ADDRESS),
        "database": scripts.database(config, "web-0", "appdb", "appuser", address=ADDRESS),
        "env": scripts.env(config, "web-0", files[paths.env_file], ADDRESS),
        "release": scripts.release(config, "web-0", RELEASE, release_command=True, address=ADDRESS,
                                   wsgi=files[paths.wsgi]),
        "configure": scripts.configure(config, "web-0", files, ADDRESS),
        "gate": scripts.gate(config, "web-0", ADDRESS),
    }
    if config.tls.enabled:
        made["certificate"] = scripts.certificate(config, "web-0", files, ADDRESS)
    return made


HOSTILE_SCRIPT_VALUES = {
    "app.releaseCommand": HOSTILE,
    "app.env": {"HOSTILE": HOSTILE, "SUBST": ENV_VALUES["SUBST"]},
    # The settings refuse these two now; the test puts them past the settings to see them quoted.
    "tls.email": f"o'\"$({MARK})`{MARK}`;{MARK}\\@example.com",
    "tls.acmeDirectory": f"https://acme.test/d'\"$({MARK})`{MARK}`;{MARK}&x=%n\\",
    "tls.acmeCaBundle": None,  # set below: PEM only, so nothing hostile beyond its size
    "app.entry": 'x:create_app("$(INJECTED)`INJECTED`\'", """\nFLASKSTACK_0123456789ABCDEF\n""")',
}


@pytest.mark.parametrize("front", ["nginx", "haproxy"])
def test_hostile_values_reach_the_scripts_only_quoted(front, app_dir, tmp_path):
    values = {k: v for k, v in HOSTILE_SCRIPT_VALUES.items() if v is not None}
    # The settings refuse such an email and directory now; the scripts must still quote them.
    refused = {key: values.pop(key) for key in ("tls.email", "tls.acmeDirectory")}
    config = load(app_dir, {**values, "front": front})
    for key, value in refused.items():
        config = past_the_settings(config, key, value)
    made = step_scripts(config)
    for step, script in made.items():
        text = script.text()
        path = tmp_path / f"{step}.sh"
        path.write_text(text)
        checked = run(["bash", "-n", str(path)])
        assert checked.returncode == 0, f"{step}: {checked.stderr}"
        assert unquoted_markers(text) == [], step
    assert shlex.quote(HOSTILE) in made["release"].text()
    assert shlex.quote(config.tls.email) in made["certificate"].text()


def heredoc_round_trip(content: str, tmp_path: Path) -> str:
    target = tmp_path / "out"
    result = run(["bash", "-c", shell.heredoc(str(target), content) + "echo done\n"])
    assert result.returncode == 0 and result.stdout == "done\n", result.stderr
    return target.read_text()


def test_a_heredoc_keeps_content_that_holds_delimiter_like_lines(app_dir, tmp_path):
    # The WSGI module of an entry whose argument holds a line like the heredoc's delimiter, and
    # content made of such lines: each heredoc ends only at its own delimiter.
    config = load(app_dir, {"app.entry": HOSTILE_SCRIPT_VALUES["app.entry"]})
    wsgi = host_files(config)[Paths(config.app.name).wsgi]
    assert "\nFLASKSTACK_0123456789ABCDEF\n" not in wsgi  # the entry's newline is \x0a in a literal
    assert heredoc_round_trip(wsgi, tmp_path) == wsgi
    tricky = "FLASKSTACK_0123456789ABCDEF\nSQL\nEOF\nFLASKSTACK_WORKERS\n'FLASKSTACK_X'\n"
    assert heredoc_round_trip(tricky, tmp_path) == tricky


def test_a_heredoc_refuses_content_holding_its_own_delimiter(monkeypatch):
    class Fixed:
        def __init__(self, _data):
            pass

        def hexdigest(self):
            return "ab" * 32

    monkeypatch.setattr(shell.hashlib, "sha256", Fixed)
    with pytest.raises(ValueError, match="its own heredoc delimiter"):
        shell.heredoc("/f", "x\nFLASKSTACK_ABABABABABABABAB\ny\n")


def test_a_nul_byte_never_enters_a_script():
    for make in (shell.word, shell.dq, lambda v: shell.cmd("echo", v), lambda v: shell.heredoc("/f", v)):
        with pytest.raises(ValueError, match="NUL"):
            make("a\0b")


NULS = {"tls.email": "o\0ps@example.com", "tls.acmeDirectory": "https://acme.test/\0"}


def past_the_settings(config: settings.Settings, key: str, value) -> settings.Settings:
    """`config` with `key` set to a value the settings would refuse: what the renderer's own
    checks (the second line of defence) must still stop."""
    section, name = key.split(".")
    field = {"acmeDirectory": "acme_directory", "releaseCommand": "release_command"}.get(name, name)
    if key == "app.env":
        value = tuple(sorted(value.items()))
    part = dataclasses.replace(getattr(config, section), **{field: value})
    return dataclasses.replace(config, **{section: part})


@pytest.mark.parametrize("key", sorted(NULS))
def test_a_nul_past_the_settings_is_refused_by_the_renderer(key, app_dir):
    config = past_the_settings(load(app_dir), key, NULS[key])
    with pytest.raises(ValueError, match="NUL byte"):
        step_scripts(config)


@pytest.mark.parametrize("key", sorted(NULS))
def test_the_settings_refuse_a_nul(key, app_dir):
    with pytest.raises(settings.SettingsError, match=f"flask-stack:{key}: holds a NUL byte"):
        load(app_dir, {key: NULS[key]})


SURROGATE = "a\ud800"  # what "\\ud800" in a JSON or YAML string makes
SURROGATES = {"app.env": {"V": SURROGATE}, "app.releaseCommand": SURROGATE,
              "tls.email": SURROGATE + "@example.com", "tls.acmeDirectory": "https://x.test/" + SURROGATE}


@pytest.mark.parametrize("key", sorted(SURROGATES))
def test_a_lone_surrogate_past_the_settings_is_refused_by_the_renderer(key, app_dir):
    config = past_the_settings(load(app_dir), key, SURROGATES[key])
    with pytest.raises(ValueError, match="lone surrogate"):
        for script in step_scripts(config).values():
            scripts.as_root(config, script)


@pytest.mark.parametrize("key", sorted(SURROGATES))
def test_the_settings_refuse_a_lone_surrogate(key, app_dir):
    with pytest.raises(settings.SettingsError, match="lone surrogate"):
        load(app_dir, {key: SURROGATES[key]})


# -- Nginx and HAProxy -------------------------------------------------------------------------
EDGE = {
    "app.name": "a-" + "9" * 28 + "-z",
    "app.staticUrl": "/st~at.ic-_/A.9",
    "deploy.healthPath": "/~up_.-/health/",
    "app.maxBodySize": "4g",
    # The longest a certificate's CN may be (64); the settings allow 253, which openssl refuses.
    "domain.name": "a" * 20 + "-0." + "b" * 29 + ".x-y.example",
    "rateLimit.burst": 1_000_000,
}


def edge_config(app_dir: Path, front: str, platform: str = "existing") -> settings.Settings:
    changes = {**EDGE, "front": front}
    if platform == "existing":
        changes["hosts.trustedProxies"] = ["192.0.2.0/24", "2001:db8:abcd:12::/64", "198.51.100.7/32"]
    return load(app_dir, changes, platform)


def front_tree(config: settings.Settings, root: Path, certificates) -> Path:
    files = host_files(config)
    paths = Paths(config.app.name)
    cert, key = certificates(config.domain.name)
    if config.front == "nginx":
        conf = hostfs.nginx_prefix(files, root, workers=config.front_workers)
        render.local_path(root, paths.tls_dir).mkdir(parents=True, exist_ok=True)
        render.local_path(root, paths.tls_fullchain).write_bytes(cert.read_bytes())
        render.local_path(root, paths.tls_key).write_bytes(key.read_bytes())
        return conf
    cfg = hostfs.haproxy_prefix(files, root)
    pem = render.local_path(root, paths.tls_pem)
    pem.parent.mkdir(parents=True, exist_ok=True)
    pem.write_text(cert.read_text() + key.read_text())
    return cfg


def test_nginx_accepts_values_at_the_edge_of_their_grammar(app_dir, nginx, certificates, tmp_path):
    conf = front_tree(edge_config(app_dir, "nginx"), tmp_path, certificates)
    assert tools.nginx_test(nginx, conf) == []


def test_haproxy_accepts_values_at_the_edge_of_their_grammar(app_dir, haproxy, certificates, tmp_path):
    cfg = front_tree(edge_config(app_dir, "haproxy"), tmp_path, certificates)
    assert tools.haproxy_check(haproxy, cfg) == []


LONGEST_DOMAIN = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "com"])  # 253, as DNS allows


@pytest.mark.parametrize("front", ["nginx", "haproxy"])
def test_the_front_accepts_the_longest_domain(front, app_dir, nginx, haproxy, tmp_path):
    # Nginx needs a bigger server-names bucket for it (render.server_names_bucket).
    config = load(app_dir, {"domain.name": LONGEST_DOMAIN, "tls.enabled": False, "front": front})
    assert len(config.domain.name) == 253
    files = host_files(config)
    if front == "nginx":
        assert tools.nginx_test(nginx, hostfs.nginx_prefix(files, tmp_path)) == []
    else:
        assert tools.haproxy_check(haproxy, hostfs.haproxy_prefix(files, tmp_path)) == []


def test_the_placeholder_certificate_of_a_long_domain_keeps_its_cn_short(app_dir):
    config = load(app_dir, {"domain.name": LONGEST_DOMAIN})
    placeholder = scripts.placeholder_certificate(config, "web-0")
    assert "/CN=flask-stack placeholder" in placeholder
    assert LONGEST_DOMAIN not in placeholder.split("-addext")[0]


def test_the_renew_hook_passes_sh_with_the_longest_domain(app_dir):
    config = edge_config(app_dir, "nginx")
    hook = host_files(config)[Paths(config.app.name).renew_hook]
    checked = run(["sh", "-n"], input=hook)
    assert checked.returncode == 0, checked.stderr


def with_value(config: settings.Settings, key: str, value) -> settings.Settings:
    section, _, name = key.partition(".")
    if section == "hosts":
        return dataclasses.replace(config, hosts=dataclasses.replace(config.hosts, trusted_proxies=(value,)))
    field = {"staticUrl": "static_url", "staticDir": "static_dir", "maxBodySize": "max_body_size",
             "healthPath": "health_path", "workerClass": "worker_class"}.get(name, name)
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section),
                                                                       **{field: value})})


@pytest.mark.parametrize(("key", "value"), [
    ("app.name", "app;"), ("app.name", "a%n"), ("app.name", "a\nb"),
    ("app.listen", "127.0.0.1:8000; evil"), ("app.staticUrl", "/s { return 200; }"),
    ("app.staticUrl", "/s#x"), ("app.staticDir", "static dir"), ("app.maxBodySize", "10m;"),
    ("app.workerClass", 'gthread"'), ("domain.name", "example.com;"), ("domain.name", "a b.com"),
    ("deploy.healthPath", "/h z"), ("deploy.healthPath", '/h"'), ("deploy.healthPath", "/h\\"),
    ("hosts.trustedProxies", "192.0.2.0/24 0.0.0.0/0"), ("hosts.trustedProxies", "192.0.2.1/24"),
])
def test_the_renderer_refuses_a_value_outside_its_grammar(app_dir, key, value):
    config = with_value(load(app_dir), key, value)
    with pytest.raises(ValueError, match=re.escape(key)):
        host_files(config)


# -- a command line too long for SSH -----------------------------------------------------------
# Proposed per-value limits for the settings (bytes of UTF-8), chosen so that no accepted config
# comes near MAX_COMMAND even with the worst characters: a ' costs 5 bytes in a quoted word (25
# when quoted twice, as a release command is), a backslash or quote 2 in the env file, then 5.
# The settings' caps on what the steps carry in their command (each refused above it).
LIMITS = {"app.env value": environment.MAX_VALUE, "app.env total": environment.MAX_PLAIN,
          "app.releaseCommand": app_settings.MAX_COMMAND, "tls.acmeCaBundle": web.MAX_CA_BUNDLE}


def test_a_step_too_long_for_one_ssh_argument_is_refused_naming_its_biggest_part(app_dir):
    config = past_the_settings(load(app_dir), "app.env", {"BIG": "x" * 150_000})
    script = step_scripts(config)["env"]
    with pytest.raises(CommandTooLong) as caught:
        scripts.as_root(config, script)
    message = str(caught.value)
    assert message.startswith("flask-stack: the env step for host web-0 (203.0.113.10) is 15")
    assert "over the 120 KB" in message and re.search(r"app\.env is 150\.\d KB of this", message)
    assert "app.secretEnv" in message


def test_a_too_long_release_command_is_named(app_dir):
    config = past_the_settings(load(app_dir), "app.releaseCommand", "echo '" + "y" * 130_000 + "'")
    with pytest.raises(CommandTooLong, match=r"the release step .* app.releaseCommand is 130\.\d KB"):
        scripts.as_root(config, step_scripts(config)["release"])


def test_the_largest_config_at_the_proposed_limits_fits(app_dir, tmp_path):
    worst = "'"  # the character that grows most under quoting
    per_value = LIMITS["app.env value"]
    # As many values of the largest size as fit under the total (each line costs its name too).
    env = {f"V{i}": worst * per_value for i in range(LIMITS["app.env total"] // (per_value + 8))}
    cert = (REPO_ROOT / "tests" / "support" / "stacks.py").read_text()
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", cert, re.S).group(0)
    bundle = pem * (LIMITS["tls.acmeCaBundle"] // len(pem))
    config = load(app_dir, {"app.env": env, "app.releaseCommand": worst * LIMITS["app.releaseCommand"],
                            "tls.acmeDirectory": "https://acme.internal/dir", "tls.acmeCaBundle": bundle,
                            "hosts.trustedProxies": ["192.0.2.0/24"] * 1 + ["198.51.100.0/24"],
                            **{k: v for k, v in EDGE.items() if k != "rateLimit.burst"}})
    sizes = {step: len(scripts.as_root(config, script).encode())
             for step, script in step_scripts(config).items()}
    assert max(sizes.values()) < MAX_COMMAND, sizes
    assert os.sysconf("SC_ARG_MAX") > MAX_COMMAND


def test_the_program_stops_before_declaring_a_step_too_long_for_ssh():
    from tests.support.mocks import run_program
    from tests.test_rollout import config as rollout_config

    # Two values under the stack file's 64 KiB per value, over the step's limit together.
    raw = rollout_config(app={"env": {"BIG1": "x" * 60_000, "BIG2": "x" * 60_000}})
    too_long = r"the env step for host web-0 is 12\d\.\d KB"
    with mock.patch.multiple(environment, MAX_VALUE=10**6, MAX_PLAIN=10**6), \
            pytest.raises(Exception, match=too_long) as caught:
        run_program(raw, secret_keys=("ssh", "database", "app"))
    assert "app.env is 120." in str(caught.value)
