"""Random strings in every string-valued setting: the settings refuse the value, naming its key, or
every output made from it passes the cheap checks of its language.

One value at a time goes into a complete config (tests/test_settings.py `good`), drawn from an
alphabet weighted towards what breaks outputs (quotes, backslash, $, `, %, newlines, NUL, lone
non-BMP characters, `\"\"\"`). Then either

- `stack.settings.load` raises SettingsError, every line starting `flask-stack:` and one naming
  the key; or
- the host files and step scripts render, and: the WSGI module and Gunicorn config compile (and
  the module, imported, calls the factory with exactly app.entry's arguments); every step
  script passes `bash -n`; the env file, sourced by bash under `env -i`, gives back the value.

Checked in-process or with one bash per example: nginx -t and haproxy -c are tests/test_injection.py's.
Derandomized with no example database, so CI runs the same examples every time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from stack import inventory, render, scripts, settings
from stack.paths import Paths
from stack.settings import SettingsError
from tests.test_injection import step_scripts
from tests.test_settings import changed, good

ADDRESS = "203.0.113.10"
EXAMPLES = 100  # per key: the module runs in about 30 s
PROPERTY = hypothesis_settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NASTY = ["'", '"', "\\", "$", "`", "%", "\n", "\r", "\0", "#", ";", "{", "}", "(", ")", " ", "\t",
         "!", "*", "~", "&", "|", "<", ">", "=", ":", "/", ".", "-", "@", '"""', "$(id)", "\\N",
         "\\U", "😀", "é", "\u2028", "\x7f", "FLASKSTACK_", "%n", "a", "Z", "0"]
# No lone surrogates: the settings accept some (tests/test_injection.py, where the renderer's
# refusal of them is checked), so until they refuse them every such example would fail here.
TEXT = st.lists(st.sampled_from(NASTY) | st.sampled_from(NASTY) | st.characters(codec="utf-8"),
                max_size=24).map("".join)

# Python literals, for factory arguments the settings accept: their repr is the argument's text.
LITERALS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT | st.binary(max_size=8)
    | st.complex_numbers(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.integers() | TEXT, inner, max_size=2)
    | st.frozensets(st.integers() | TEXT, max_size=3).map(lambda s: set(s) or {0}),
    max_leaves=6)

APP_MODULE = """
CALLS = []


def create_app(*args, **kwargs):
    CALLS.append((args, kwargs))
    return lambda environ, start_response: [b""]
"""

# key -> how a drawn string becomes the config change (dotted paths, as test_settings.changed).
KEYS = {
    "app.entry": lambda text: {"app.entry": f"x:create_app({text})"},
    "app.env.VALUE": lambda text: {"app.env": {"VALUE": text}},
    "app.releaseCommand": lambda text: {"app.releaseCommand": text},
    "app.name": lambda text: {"app.name": text},
    "app.staticUrl": lambda text: {"app.staticUrl": text},
    "app.maxBodySize": lambda text: {"app.maxBodySize": text},
    "app.listen": lambda text: {"app.listen": text},
    "domain.name": lambda text: {"domain.name": text},
    "deploy.healthPath": lambda text: {"deploy.healthPath": text},
    "ssh.user": lambda text: {"ssh.user": text},
    "tls.email": lambda text: {"tls.email": text},
    "tls.acmeDirectory": lambda text: {"tls.acmeDirectory": text},
    "hosts.trustedProxies": lambda text: {"hosts.trustedProxies": [text]},
}


# A valid value per key, for values near the edge of its grammar: one with random text inserted.
SEEDS = {"app.entry": '"x"', "app.env.VALUE": "v", "app.releaseCommand": "flask db upgrade",
         "app.name": "my-app", "app.staticUrl": "/static", "app.maxBodySize": "10m",
         "app.listen": "127.0.0.1:8000", "domain.name": "example.com", "deploy.healthPath": "/healthz",
         "ssh.user": "deploy", "tls.email": "ops@example.com", "tls.acmeDirectory": "https://acme.test/dir",
         "hosts.trustedProxies": "192.0.2.0/24"}


def near(seed: str) -> st.SearchStrategy[str]:
    return st.tuples(st.integers(0, len(seed)), TEXT).map(lambda t: seed[:t[0]] + t[1] + seed[t[0]:])


@pytest.fixture(scope="module")
def app_dir():
    with tempfile.TemporaryDirectory() as name:
        path = Path(name)
        (path / "x.py").write_text(APP_MODULE)
        (path / "requirements.txt").write_text("flask\n")
        (path / "static").mkdir()
        yield path


def load(app_dir: Path, change: dict) -> settings.Settings:
    raw = changed(good("existing"), {"app.path": app_dir.name, "app.entry": "x:create_app()", **change})
    return settings.load(raw, stack="prod", project_dir=app_dir.parent, offline=True)


def refused_naming(error: SettingsError, key: str) -> None:
    # Each error, not each line of the text: see test_an_error_about_a_value_is_one_line.
    assert error.errors and all(e.startswith("flask-stack:") for e in error.errors), error.errors
    assert any(key in e for e in error.errors), (key, error.errors)


def factory_calls(wsgi: str) -> list:
    """The calls the module made to x.create_app when imported (x being APP_MODULE, fresh)."""
    recorder = types.ModuleType("x")
    exec(APP_MODULE, recorder.__dict__)  # noqa: S102 - our own module
    saved = sys.modules.get("x")
    sys.modules["x"] = recorder
    try:
        exec(compile(wsgi, "flaskstack_wsgi.py", "exec"), {"__name__": "flaskstack_wsgi"})  # noqa: S102
    finally:
        if saved is None:
            del sys.modules["x"]
        else:
            sys.modules["x"] = saved
    return recorder.CALLS


CHECK = r"""
set -u
dir=$1
for script in "$dir"/*.sh; do bash -n "$script" || { echo "bash -n failed: $script" >&2; exit 1; }; done
env -i bash -c 'set -a; . "$1"; printf "%s" "${VALUE-<unset>}"' bash "$dir/app.env"
"""


def check_outputs(config: settings.Settings, env_value: str | None) -> None:
    """Every file and step script of one host is sound by its own tool: the Python files
    compile, each script passes `bash -n`, the env file sourced gives VALUE back unchanged."""
    files = render.render_host(config, inventory.Host("web-0", ADDRESS))
    paths = Paths(config.app.name)
    for path in (paths.wsgi, paths.gunicorn_conf):
        compile(files[path], path, "exec")

    made = step_scripts(config)
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        for step, script in made.items():
            line = scripts.as_root(config, script)  # the command line is made (and fits)
            assert line.startswith(("sudo -n bash -c ", "bash -c "))
            (directory / f"{step}.sh").write_bytes(script.text().encode())
        (directory / "app.env").write_bytes(files[paths.env_file].encode())
        result = subprocess.run(["bash", "-c", CHECK, "bash", name], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    if env_value is not None:
        assert result.stdout.decode() == env_value


def refused_or_sound(app_dir: Path, key: str, text: str) -> None:
    try:
        config = load(app_dir, KEYS[key](text))
    except SettingsError as error:
        refused_naming(error, key)
        event("refused")
        return
    event("rendered")
    check_outputs(config, text if key == "app.env.VALUE" else None)
    check_factory(config)


def check_factory(config: settings.Settings) -> None:
    """The generated WSGI module calls the factory (x.create_app) with the entry's arguments."""
    wsgi = render.render_host(config, inventory.Host("web-0", ADDRESS))[Paths(config.app.name).wsgi]
    call = ast.parse(config.app.entry.split(":", 1)[1].strip(), mode="eval").body
    expected = [(tuple(ast.literal_eval(a) for a in call.args),
                 {k.arg: ast.literal_eval(k.value) for k in call.keywords})]
    assert repr(factory_calls(wsgi)) == repr(expected)


@pytest.mark.parametrize("key", sorted(KEYS))
@PROPERTY
@given(data=st.data())
def test_a_random_value_is_refused_or_renders_sound_files(app_dir, key, data):
    refused_or_sound(app_dir, key, data.draw(TEXT | near(SEEDS[key]), label=key))


@PROPERTY
@given(arguments=st.lists(LITERALS, max_size=3), keywords=st.dictionaries(
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), LITERALS, max_size=2))
def test_factory_arguments_reach_the_factory_exactly(app_dir, arguments, keywords):
    text = ", ".join([*map(repr, arguments), *(f"{k}={v!r}" for k, v in keywords.items())])
    refused_or_sound(app_dir, "app.entry", text)


@pytest.mark.parametrize("text", ["a\nb", "a\u2028b", "a\x1eb", "a\x85b"])
def test_an_error_about_a_value_is_one_line(app_dir, text):
    with pytest.raises(SettingsError) as caught:
        load(app_dir, {"app.name": text})
    assert all(line.startswith("flask-stack:") for line in str(caught.value).splitlines())
