"""The stack file reader: odd, hostile or misplaced YAML ends in exit 2 with a line that names the
file and the key, never a hang, a traceback or a setting silently left out (stack/settings/
sources.py, stack/settings/yamlfile.py)."""

from __future__ import annotations

import json
import time
from contextvars import ContextVar
from pathlib import Path

import pytest
from conftest import EXAMPLES, REPO_ROOT, load_example

from stack import cli, settings
from stack.settings import SettingsError, yamlfile

MINIMAL = """\
config:
  flask-stack:platform: existing
  flask-stack:hosts:
    addresses:
      - 203.0.113.10
  flask-stack:ssh:
    user: deploy
    privateKey:
      secure: AAABAx
"""

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyR6E6TISzLkMABixy6N+k0E449lzgYW4KdaRZsjbn9"
LOL = '["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
BOMB = ("config:\n  flask-stack:app:\n    a: &a " + LOL + "\n"
        + "".join(f"    {n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n"
                  for p, n in zip("abcdefgh", "bcdefghi", strict=True)))


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["check", "t", "--dir", str(tmp_path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# (id, the file's text or bytes, a fragment the report must hold)
REFUSED = [
    ("billion-laughs", BOMB,
     "Pulumi.t.yaml: config: flask-stack:app.a: an anchor (&a) marks a value to repeat; a stack "
     "file takes no anchors or aliases: write each value out (line 3)"),
    ("self-referencing-alias", "config:\n  flask-stack:hosts: &x [*x]\n",
     "Pulumi.t.yaml: config: flask-stack:hosts: an anchor (&x)"),
    ("alias-without-anchor", "config:\n  flask-stack:hosts:\n    count: *n\n",
     "Pulumi.t.yaml: config: flask-stack:hosts.count: an alias (*n) repeats a value from elsewhere; "
     "a stack file takes no aliases: write the value out (line 3)"),
    ("merge-key", "config:\n  flask-stack:hosts:\n    <<: {count: 2}\n",
     "Pulumi.t.yaml: config: flask-stack:hosts: a merge key (<<) copies keys in"),
    ("list-3000-deep", "config:\n  flask-stack:hosts: " + "[" * 3000 + "]" * 3000 + "\n",
     "Pulumi.t.yaml: config: flask-stack:hosts: nested more than 32 levels deep"),
    ("block-list-3000-deep", "config:\n  flask-stack:hosts:\n  " + "- " * 3000 + "1\n",
     "nested more than 32 levels deep"),
    ("mapping-3000-deep", "config:\n  flask-stack:hosts: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
     "Pulumi.t.yaml: config: flask-stack:hosts.a.a.a"),
    ("int-5000-digits", "config:\n  flask-stack:hosts:\n    count: " + "9" * 5000 + "\n",
     "Pulumi.t.yaml: config: flask-stack:hosts.count: not valid YAML for a stack file: an integer "
     "of 5,000 digits, more than the 100 a number in the config may have; quote it if it is text "
     "(line 3)"),
    ("file-2mb", "config:\n" + "".join(f"  aws:k{i}: {'x' * 60}\n" for i in range(30_000)),
     "Pulumi.t.yaml: larger than 1 MiB"),
    ("scalar-200kb", "config:\n  flask-stack:tls:\n    acmeCaBundle: '" + "A" * 200_000 + "'\n",
     "Pulumi.t.yaml: config: flask-stack:tls.acmeCaBundle: a value of 200,000 characters, more "
     "than the 65,536"),
    ("duplicate-section",
     MINIMAL.replace("  flask-stack:ssh:", "  flask-stack:hosts:\n    count: 2\n  flask-stack:ssh:"),
     "Pulumi.t.yaml: config: flask-stack:hosts: given twice (lines 3 and 6); keep one"),
    ("duplicate-key-in-section", MINIMAL.replace("    user: deploy\n", "    user: deploy\n    user: ops\n"),
     "Pulumi.t.yaml: config: flask-stack:ssh.user: given twice (lines 7 and 8); keep one"),
    ("duplicate-key-in-a-flow-mapping",
     "config: {flask-stack:platform: aws, flask-stack:platform: existing}\n",
     "Pulumi.t.yaml: config: flask-stack:platform: given twice on line 1; keep one"),
    ("duplicate-config", MINIMAL + "config:\n  aws:region: eu-west-1\n",
     "Pulumi.t.yaml: config: given twice (lines 1 and 10); keep one"),
    ("typo-namespace-letter", MINIMAL + "  flask-stak:hosts:\n    count: 2\n",
     "Pulumi.t.yaml: config: flask-stak:hosts: flask-stak is not this project's namespace, so the "
     "program would never read it; did you mean flask-stack:hosts?"),
    ("typo-namespace-underscore", MINIMAL + "  flask_stack:app:\n    path: app\n",
     "did you mean flask-stack:app?"),
    ("typo-namespace-case", MINIMAL + "  Flask-Stack:platform: aws\n",
     "Pulumi.t.yaml: config: Flask-Stack:platform: Flask-Stack is not this project's namespace"),
    ("key-without-namespace", MINIMAL + "  domain:\n    name: example.com\n",
     "Pulumi.t.yaml: config: domain: has no namespace, and Pulumi reads a key under config: only "
     "as <namespace>:<name>; write it as flask-stack:domain"),
    ("key-with-two-colons", MINIMAL + "  flask-stack:hosts:count: 2\n",
     "Pulumi.t.yaml: config: flask-stack:hosts:count: is not a key Pulumi can read"),
    ("key-outside-config", MINIMAL + "flask-stack:platform: aws\n",
     "Pulumi.t.yaml: flask-stack:platform: is outside config:; indent it under config:"),
    ("unknown-top-level-key", MINIMAL + "confg:\n  aws:region: eu-west-1\n",
     "Pulumi.t.yaml: confg: is not a key of a stack file; did you mean config?"),
    ("not-utf8", b"config:\n  flask-stack:platform: \xff\xfe\n",
     "Pulumi.t.yaml: not valid YAML: byte 0xff on line 2 is not UTF-8; save the file as UTF-8"),
    ("tab", "config:\n\tflask-stack:platform: existing\n",
     "Pulumi.t.yaml: not valid YAML: found character '\\t' that cannot start any token (while "
     "scanning for the next token); indent with spaces, not tabs (line 2, column 1)"),
    ("broken-yaml", "config: {flask-stack:platform: [\n", "Pulumi.t.yaml: not valid YAML: "),
    ("two-documents", MINIMAL + "---\n" + MINIMAL,
     "Pulumi.t.yaml: not valid YAML: expected a single document in the stream, but found another"),
    ("list-document", "- config\n- flask-stack:platform\n",
     "Pulumi.t.yaml: must be a mapping with a config: key"),
    ("empty-file", "", "flask-stack:platform: is required"),
    ("config-a-list", "config:\n  - flask-stack:platform: existing\n",
     "Pulumi.t.yaml: config: must be a mapping of keys to values"),
]


@pytest.mark.parametrize(("text", "fragment"), [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_a_bad_stack_file_exits_2_naming_the_file_and_key(tmp_path, capsys, text, fragment):
    (tmp_path / "app").symlink_to(REPO_ROOT / "app")
    target = tmp_path / "Pulumi.t.yaml"
    target.write_bytes(text) if isinstance(text, bytes) else target.write_text(text)
    started = time.process_time()  # CPU time: the suite may run beside the host tests, niced
    code, output = check(tmp_path, capsys)
    elapsed = time.process_time() - started
    assert code == 2
    assert "Traceback" not in output
    assert fragment in output, output
    assert elapsed < 1, f"{elapsed:.2f} s"  # generous: the bomb and the deep cases take milliseconds
    if text:  # each line of the report names the file (an empty file has only missing settings)
        lines = [line for line in output.splitlines() if line.startswith("  - ")]
        assert lines and all(line.startswith("  - Pulumi.t.yaml: ") for line in lines), output


def test_the_bomb_is_refused_in_milliseconds(tmp_path):
    (tmp_path / "Pulumi.t.yaml").write_text(BOMB)
    started = time.perf_counter()
    with pytest.raises(SettingsError):
        settings.read_stack_file(tmp_path / "Pulumi.t.yaml")
    assert time.perf_counter() - started < 1


def test_every_typo_of_a_file_is_reported_together(tmp_path):
    (tmp_path / "Pulumi.t.yaml").write_text(
        MINIMAL + "  flask-stak:hosts: {}\n  platform: aws\nflask-stack:app: {}\n")
    with pytest.raises(SettingsError) as caught:
        settings.read_stack_file(tmp_path / "Pulumi.t.yaml")
    assert [line.split(":", 2)[1:] for line in caught.value.errors] == [
        [" flask-stack", "app: is outside config:; indent it under config:"],
        [" config", " flask-stak:hosts: flask-stak is not this project's namespace, so the program "
                    "would never read it; did you mean flask-stack:hosts?"],
        [" config", " platform: has no namespace, and Pulumi reads a key under config: only as "
                    "<namespace>:<name>; write it as flask-stack:platform"]]


def test_a_minimal_file_with_other_namespaces_beside_it_loads(tmp_path, capsys):
    (tmp_path / "app").symlink_to(REPO_ROOT / "app")
    (tmp_path / "Pulumi.t.yaml").write_text(
        "secretsprovider: passphrase\nencryptionsalt: v1:abc\n"
        + MINIMAL.replace("    user: deploy\n", f"    user: deploy\n    hostKey: {HOST_KEY}\n")
        + "  aws:region: eu-west-1\n  pulumi:template: flask-stack\n  digitalocean:token:\n"
        + "    secure: AAABAx\n  command:something: {a: [1, 2]}\n  flask:debug: true\n")
    assert cli.main(["check", "t", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "existing\n"
    raw = settings.read_stack_file(tmp_path / "Pulumi.t.yaml")
    assert sorted(raw) == ["hosts", "platform", "ssh"]  # other namespaces are Pulumi's, not ours


def test_pulumis_older_key_form_is_read_as_the_project_key(tmp_path):
    older = MINIMAL.replace("flask-stack:platform", "flask-stack:config:platform")
    (tmp_path / "Pulumi.t.yaml").write_text(older)
    assert settings.read_stack_file(tmp_path / "Pulumi.t.yaml")["platform"] == "existing"
    (tmp_path / "Pulumi.t.yaml").write_text(MINIMAL + "  flask-stack:config:platform: aws\n")
    with pytest.raises(SettingsError, match=r"flask-stack:config:platform: given twice \(also as "
                                            r"flask-stack:platform\); keep one"):
        settings.read_stack_file(tmp_path / "Pulumi.t.yaml")


def test_values_near_the_limits_load(tmp_path):
    pem = "-----BEGIN CERTIFICATE-----\n" + "A" * 64_000 + "\n-----END CERTIFICATE-----\n"
    nested = "{a: " * 29 + "1" + "}" * 29  # 32 levels with the document and config:
    (tmp_path / "Pulumi.t.yaml").write_text(
        MINIMAL + "  flask-stack:tls:\n    acmeCaBundle: |\n"
        + "".join(f"      {line}\n" for line in pem.splitlines())
        + f"  aws:deep: {nested}\n  aws:big: {'9' * 100}\n")
    raw = settings.read_stack_file(tmp_path / "Pulumi.t.yaml")
    assert raw["tls"]["acmeCaBundle"] == pem


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_the_examples_still_load(name):
    assert load_example(name).platform


def test_the_dev_stack_still_loads():
    assert settings.from_stack_file("dev", REPO_ROOT).platform


# -- the running program's config: the same limits on the JSON the CLI hands over ----------------
@pytest.mark.parametrize(("text", "fragment"), [
    ("[" * 3000 + "]" * 3000, "flask-stack:hosts: nested more than 32 levels deep"),
    ('{"count": ' + "9" * 5000 + "}", "flask-stack:hosts: an integer of 5,000 digits"),
    (json.dumps({"addresses": ["x" * 70_000]}), "flask-stack:hosts.addresses[0]: a value of 70,000"),
], ids=["deep", "long-int", "long-string"])
def test_from_pulumi_refuses_what_the_stack_file_reader_refuses(monkeypatch, text, fragment):
    from pulumi.runtime import config as runtime_config

    # The config as the CLI hands it over; none left behind by the program tests' mocks.
    fresh: ContextVar[dict[str, str]] = ContextVar("config")
    fresh.set({})
    monkeypatch.setattr(runtime_config, "CONFIG", fresh)
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"flask-stack:hosts": text, "aws:region": "x"}))
    monkeypatch.delenv("PULUMI_CONFIG_SECRET_KEYS", raising=False)
    with pytest.raises(SettingsError) as caught:
        settings.from_pulumi()
    assert len(caught.value.errors) == 1 and caught.value.errors[0].startswith(fragment), caught.value


def test_parse_json_takes_what_a_stack_file_can_hold():
    assert yamlfile.parse_json('{"a": [1, {"b": "c"}], "n": ' + "9" * 100 + "}", ["k"]) == {
        "a": [1, {"b": "c"}], "n": int("9" * 100)}
    with pytest.raises(ValueError):
        yamlfile.parse_json("[not json", ["k"])


# -- the workflows read the stack files they rewrite with the same loader -------------------------
def test_the_workflows_read_a_stack_file_as_the_loader_does(tmp_path):
    from workflow import WorkflowError, stackfile

    target = tmp_path / "Pulumi.t.yaml"
    target.write_text(MINIMAL)
    assert stackfile.read_yaml(target)["config"]["flask-stack:platform"] == "existing"
    target.write_text(MINIMAL + "  flask-stack:platform: aws\n")
    with pytest.raises(WorkflowError) as caught:
        stackfile.read_yaml(target)
    assert str(caught.value) == (f"{target}: config: flask-stack:platform: given twice (lines 2 "
                                 "and 10); keep one")
    target.write_text(BOMB)
    with pytest.raises(WorkflowError, match=r"an anchor \(&a\)"):
        stackfile.read_yaml(target)
