"""The host-file table (stack/hostfiles.py) is the one list of what a host receives: rendering,
the configure step, the step triggers and `stack diff` all follow it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stack import hostfiles, inventory, render, scripts
from stack.hostfiles import HostFile, Reload, Step, Validator
from tests.support import stacks

ROOT = Path(__file__).resolve().parent.parent
CASES = stacks.all_cases()


def test_every_template_of_a_host_file_has_a_row_and_every_row_its_template():
    complete = next(case for case in CASES if case.id == "variant:complete").load()
    assert complete.processes and complete.schedules
    named = {row.template for row in (*hostfiles.TABLE, *hostfiles.entry_rows(complete)) if row.template}
    # templates/heroku/ is a dyno's, packed into the Heroku archive (stack/dyno.py), no host's.
    on_disk = {p.relative_to(render.TEMPLATES).as_posix() for p in render.TEMPLATES.rglob("*.j2")
               if "scripts" not in p.relative_to(render.TEMPLATES).parts and p.parent.name != "heroku"
               and not p.name.endswith(".inc.j2")}
    assert named == on_disk, "templates without a row, or rows without a template"
    assert len({row.name for row in hostfiles.TABLE}) == len(hostfiles.TABLE), "row names repeat"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_render_and_configure_follow_the_table(case):
    config = case.load()
    files = render.render_host(config, inventory.planned(config)[0])
    rows = hostfiles.files_of(config)
    assert list(files) == sorted(row.remote(config) for row in rows if row.template)
    installed = scripts.config_files(config, files)
    configure_rows = [row for row in rows if row.step is Step.CONFIGURE and row.template]
    assert sorted(f.path for f in installed) == sorted(row.remote(config) for row in configure_rows)
    for f in installed:
        row = hostfiles.by_path(config)[f.path]
        assert (f.mode, f.group, f.kind) == (row.mode, row.group_name(config), row.reloads.value)
    # Exactly one front's files, and the renewal hook only with TLS on the hosts.
    fronts = {row.validator for row in rows} & {Validator.NGINX, Validator.HAPROXY}
    assert fronts == {Validator.NGINX if config.front == "nginx" else Validator.HAPROXY}
    assert any(row.name == "renew-hook" for row in rows) == config.tls.enabled


def test_each_row_says_what_a_change_sets_off():
    config = stacks.case("stack:dev").load()
    for row in hostfiles.TABLE:
        assert row.reloads.describe(config)
        assert row.mode.startswith("0") and len(row.mode) == 4
        if row.template is None:
            assert row.note, f"{row.name}: say where a file without a template comes from"
    assert hostfiles.by_path(config)["/etc/nginx/nginx.conf"].reloads.describe(config) == "Nginx reloads"


def test_adding_a_host_file_takes_one_row_and_one_template(tmp_path, monkeypatch):
    """An Nginx include added as a row plus its template is rendered, staged and checked with
    the rest of the Nginx config by configure, installed with its mode and group, reloads the
    front when it changes, counts in configure's trigger, and is described by stack diff."""
    templates = tmp_path / "templates"
    shutil.copytree(render.TEMPLATES, templates)
    (templates / "nginx" / "extra.conf.j2").write_text("{{ header }}\nclient_body_timeout 10s;\n")
    row = HostFile("nginx-extra", lambda p: f"/etc/nginx/conf.d/{p.app}-extra.conf",
                   "nginx/extra.conf.j2", Step.CONFIGURE, "0644", "root", Validator.NGINX, Reload.FRONT,
                   lambda settings: settings.front == "nginx")
    config = stacks.case("stack:dev").load()
    host = inventory.planned(config)[0]
    before = render.render_host(config, host)

    monkeypatch.setattr(render, "TEMPLATES", templates)
    monkeypatch.setattr(hostfiles, "TABLE", (*hostfiles.TABLE, row))
    files = render.render_host(config, host)
    path = "/etc/nginx/conf.d/app-extra.conf"
    assert set(files) - set(before) == {path}
    assert "client_body_timeout 10s;" in files[path] and "Rendered by flask-stack" in files[path]

    installed = {f.path: f for f in scripts.config_files(config, files)}
    assert (installed[path].mode, installed[path].group, installed[path].kind) == ("0644", "root", "front")
    configure = scripts.configure(config, host.name, files, "203.0.113.10").text()
    assert "client_body_timeout 10s;" in configure  # staged in the script
    # checked by nginx -t together with the rest of the staged Nginx config, then installed
    staged = f'cp "$stage/files"{path} "$stage/nginx"/conf.d/app-extra.conf'
    assert staged in configure
    assert configure.index(staged) < configure.index('nginx -t -q -c "$stage/nginx/nginx.conf"')
    assert f'put "$stage/files"{path} {path} 0644 root front' in configure
    old_hash = render.content_hash({f.path: before[f.path] for f in scripts.config_files(config, before)})
    new_hash = render.content_hash({p: files[p] for p in installed})
    assert old_hash != new_hash  # configure runs again when the new file changes

    from stack import diff

    note = diff.consequences("dev", ROOT, [path.lstrip("/")])
    assert f"  {path}: the configure step installs it; Nginx reloads" in note


def test_the_units_systemd_checks_are_the_tables():
    config = stacks.case("stack:dev").load()
    files = render.render_host(config, inventory.planned(config)[0])
    configure = scripts.configure(config, "web-0", files, "203.0.113.10").text()
    units = [row.remote(config) for row in hostfiles.files_of(config) if row.validator is Validator.SYSTEMD]
    line = next(line for line in configure.splitlines() if line.startswith("out=$(systemd-analyze verify"))
    assert line == "out=$(systemd-analyze verify " + " ".join(
        f'"$stage/files"{unit}' for unit in sorted(units)) + " 2>&1) \\"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_bootstrap_step_installs_sshds_drop_in_checked_by_sshd(case):
    config = case.load()
    files = render.render_host(config, inventory.planned(config)[0])
    (row,) = [r for r in hostfiles.files_of(config) if r.step is Step.BOOTSTRAP]
    assert (row.remote(config), row.validator, row.reloads) == (
        "/etc/ssh/sshd_config.d/10-flask-stack.conf", Validator.SSHD, Reload.SSHD)
    assert row.reloads.describe(config).startswith("sshd reloads (open SSH sessions stay")
    body = scripts.bootstrap(config, "web-0", "203.0.113.10", files=files).body
    drop_in = files[row.remote(config)]
    assert drop_in in body  # the rendered file itself, in a quoted heredoc
    # Staged, checked in a copy of the whole config, then moved into place and sshd reloaded.
    order = ['"$sshd_stage/sshd_config.d/"10-flask-stack.conf <<', 'sshd -t -f "$sshd_stage/sshd_config"',
             'sshd -T -f "$sshd_stage/sshd_config"', "mv -f /etc/ssh/sshd_config.d/10-flask-stack.conf",
             "systemctl reload ssh.service"]
    assert [body.index(step) for step in order] == sorted(body.index(step) for step in order)
    assert "systemctl restart ssh" not in body


def test_a_stack_without_hosts_has_no_sshd_file():
    heroku = stacks.Case(id="example:heroku-minimal", path=ROOT / "examples/heroku-minimal.yaml").load()
    assert heroku.platform == "heroku"
    assert not [r for r in hostfiles.files_of(heroku) if r.step is Step.BOOTSTRAP]
