"""processes and schedules: what the settings take and refuse (each with its key), and the units
rendered from them. On real hosts: tests/hosts/test_processes.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stack import hostfiles, render, scripts, settings
from stack.inventory import planned
from stack.settings import SettingsError

ROOT = Path(__file__).resolve().parent.parent
BASE = {"platform": "existing", "hosts": {"addresses": ["203.0.113.10", "203.0.113.11"]},
        "ssh": {"user": "deploy"}, "app": {"env": {"QUEUE": "default"}}}


def load(**extra: Any) -> settings.Settings:
    return settings.load({**BASE, **extra}, stack="dev", project_dir=ROOT, offline=True)


def errors(**extra: Any) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(**extra)
    return caught.value.errors


def test_a_process_and_a_schedule_with_their_defaults():
    s = load(processes={"worker": {"command": "rq worker $QUEUE"}},
             schedules={"digest": {"command": "flask digest", "onCalendar": "Mon..Fri  09:00"}})
    (worker,) = s.processes
    assert (worker.command, worker.count, worker.on, worker.stop_timeout, worker.env) == (
        ("rq", "worker", "$QUEUE"), 1, "all", 30, ())
    (digest,) = s.schedules
    assert (digest.on, digest.timeout, digest.random_delay, digest.on_calendar) == (
        "first", 3600, 0, "Mon..Fri 09:00")


HOSTILE_COMMANDS = {
    "rq worker | tee log": "outside quotes",
    "rq worker && echo done": "outside quotes",
    "rq worker; rm -rf /": "outside quotes",
    "rq worker > /tmp/log": "outside quotes",
    "rq worker $(id)": "outside quotes",
    'rq worker "`id`"': "backticks",
    "rq worker ${QUEUE:-default}": "other than as $NAME",
    "rq worker $1": "other than as $NAME",
    "rq worker 'unclosed": "unclosed quote",
    "rq worker \\": "trailing backslash",
    "rq worker\nrm -rf /": "one line",
    "rq worker \x1b[31m": "control character",
    "--version": "must start with the program",
    "FOO=1 rq worker": "must start with the program",
    "$QUEUE worker": "must start with the program",
    "": "is empty",
    "   ": "is empty",
    "x" * 3000: "bytes",
    "rq worker $NOBODY_SETS_THIS": "which nothing sets on the hosts",
}


@pytest.mark.parametrize("command", HOSTILE_COMMANDS, ids=range(len(HOSTILE_COMMANDS)))
def test_every_hostile_command_is_refused_with_its_key(command):
    for section, entry in (("processes", {"w": {"command": command}}),
                           ("schedules", {"w": {"command": command, "onCalendar": "daily"}})):
        found = errors(**{section: entry})
        assert any(line.startswith(f"flask-stack:{section}.w.command: ") and HOSTILE_COMMANDS[command] in line
                   for line in found), found


def test_quoted_operators_are_words_not_operators():
    (proc,) = load(processes={"w": {"command": """python -c "print('a; b | c')" '&&'"""}}).processes
    assert proc.command == ("python", "-c", "print('a; b | c')", "&&")


HOSTILE_CALENDARS = ["every day", "*-*-* 25:00:00", "daily; reboot", "$(reboot)", "Mon..Fri\n09:00",
                     "*-*-* 02:00:00 Not/AZone", "", "%i", "x" * 300]


@pytest.mark.parametrize("calendar", HOSTILE_CALENDARS, ids=range(len(HOSTILE_CALENDARS)))
def test_every_bad_calendar_is_refused_with_its_key(calendar):
    found = errors(schedules={"job": {"command": "flask job", "onCalendar": calendar}})
    assert any(line.startswith("flask-stack:schedules.job.onCalendar: ") for line in found), found


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_calendars_systemd_takes_are_taken():
    for calendar in ("daily", "*:0/15", "Mon..Fri *-*-* 02:30:00 UTC", "*-*-01 00:00:00",
                     "Sat,Sun 10:00", "*-*~1", "hourly"):
        assert load(schedules={"j": {"command": "flask j", "onCalendar": calendar}}).schedules


@pytest.mark.parametrize(("entry", "key", "said"), [
    ({"web": {"command": "x"}}, "processes.web", "the web app itself"),
    ({"release": {"command": "x"}}, "processes.release", "release phase"),
    ({"Worker": {"command": "x"}}, "processes.Worker", "lower-case"),
    ({"a--b": {"command": "x"}}, "processes.a--b", "single dashes"),
    ({"w": {"command": "x", "count": 0}}, "processes.w.count", "from 1 to 16"),
    ({"w": {"command": "x", "count": 17}}, "processes.w.count", "from 1 to 16"),
    ({"w": {"command": "x", "on": "second"}}, "processes.w.on", "one of all, first"),
    ({"w": {"command": "x", "stopTimeout": 0}}, "processes.w.stopTimeout", "from 1 to 3600"),
    ({"w": {"command": "x", "size": "standard-1x"}}, "processes.w.size", "platform heroku"),
    ({"w": {"command": "x", "env": {"PATH": "/tmp"}}}, "processes.w.env.PATH", "not the app's to set"),
    ({"w": {"command": "x", "env": {"LD_PRELOAD": "/tmp/x.so"}}}, "processes.w.env.LD_PRELOAD",
     "not the app's to set"),
    ({"w": {"command": "x", "comand": "y"}}, "processes.w.comand", 'did you mean "command"'),
    ({"w": {}}, "processes.w.command", "is required"),
    ({"w": {"command": "x", "env": {"BIG": "v" * 2100}}}, "processes.w.env", "more than 2,048 bytes"),
    ({f"p{i}": {"command": "x"} for i in range(11)}, "processes", "at most 10"),
])
def test_bad_processes_are_refused_with_their_key(entry, key, said):
    found = errors(processes=entry)
    assert any(line.startswith(f"flask-stack:{key}: ") and said in line for line in found), found


def test_a_schedule_may_not_share_a_process_name_or_shadow_a_host_unit():
    found = errors(processes={"digest": {"command": "x"}},
                   schedules={"digest": {"command": "y", "onCalendar": "daily"}})
    assert any(line.startswith("flask-stack:schedules.digest: ") and "also the name of a process" in line
               for line in found), found
    found = errors(app={"name": "cloud"}, processes={"init": {"command": "x"}})  # cloud-init
    assert any(line.startswith("flask-stack:processes.init: its units would be cloud-init")
               for line in found), found


def test_schedules_are_refused_on_heroku_naming_the_clock_process():
    found = errors(platform="heroku", hosts={}, ssh={},
                   schedules={"digest": {"command": "flask digest", "onCalendar": "daily"}})
    assert any(line.startswith("flask-stack:schedules.digest: ") and "clock process" in line
               for line in found), found


# -- the units ----------------------------------------------------------------------------------
COMPLEX = {"processes": {"worker": {"command": "rq worker --url=${QUEUE} 'two words' 50%", "count": 2,
                                    "stopTimeout": 90, "env": {"RQ_NAME": "w $x"}},
                         "clock": {"command": "python clock.py", "on": "first"}},
           "schedules": {"digest": {"command": "flask digest", "onCalendar": "*-*-* 02:30:00",
                                    "on": "all", "timeout": 600, "randomDelay": 120},
                         "report": {"command": "flask report", "onCalendar": "weekly"}}}


def test_each_host_gets_the_units_of_what_it_runs():
    s = load(**COMPLEX)
    first, second = (render.render_host(s, host) for host in planned(s))
    units = "/etc/systemd/system/"
    everywhere = {units + "app-worker@.service", "/etc/app/process-worker.env",
                  units + "app-digest.service", units + "app-digest.timer"}
    only_first = {units + "app-clock@.service", units + "app-report.service", units + "app-report.timer"}
    assert everywhere | only_first <= set(first)
    assert everywhere <= set(second) and not only_first & set(second)
    worker = first[units + "app-worker@.service"]
    assert 'ExecStart=/usr/bin/env "rq" "worker" "--url=${QUEUE}" "two words" "50%%"\n' in worker
    assert "TimeoutStopSec=90\n" in worker and "KillMode=mixed\n" in worker
    assert "EnvironmentFile=/etc/app/process-worker.env\n" in worker
    assert "SyslogIdentifier=app-worker\n" in worker and "User=app\n" in worker
    app_unit = first[units + "app.service"]
    hardening = app_unit[app_unit.index("# Hardening"):app_unit.index("[Install]")].rstrip()
    assert hardening in worker and hardening in first[units + "app-digest.service"]
    assert 'RQ_NAME="w \\$x"' in first["/etc/app/process-worker.env"]
    timer = first[units + "app-digest.timer"]
    for line in ("OnCalendar=*-*-* 02:30:00", "Persistent=true", "AccuracySec=1s",
                 "RandomizedDelaySec=120", "Unit=app-digest.service"):
        assert line + "\n" in timer
    assert "TimeoutStartSec=600\n" in first[units + "app-digest.service"]


def test_the_release_step_carries_the_units_and_a_process_change_alone_changes_only_it():
    s = load(**COMPLEX)
    files = render.render_host(s, planned(s)[1])
    rows = hostfiles.installed_by(s, hostfiles.Step.RELEASE, files)
    assert {row.remote(s) for row in rows} == {
        "/etc/systemd/system/app-worker@.service", "/etc/app/process-worker.env",
        "/etc/systemd/system/app-digest.service", "/etc/systemd/system/app-digest.timer"}
    assert {row.reloads for row in rows} == {hostfiles.Reload.PROCESS, hostfiles.Reload.TIMER}
    # Configure's files do not hold them: a process change does not run configure.
    assert not {f.path for f in scripts.config_files(s, files)} & {row.remote(s) for row in rows}
    worker = {**COMPLEX["processes"]["worker"], "stopTimeout": 5}
    changed = load(**{**COMPLEX, "processes": {**COMPLEX["processes"], "worker": worker}})
    after = render.render_host(changed, planned(changed)[1])
    assert {p for p in files if files[p] != after.get(p)} == {"/etc/systemd/system/app-worker@.service"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify_takes_the_rendered_units(tmp_path):
    s = load(**COMPLEX)
    files = render.render_host(s, planned(s)[0])
    paths = []
    for path, text in files.items():
        if path.startswith("/etc/systemd/system/app-"):
            (tmp_path / Path(path).name).write_text(text)
            paths.append(str(tmp_path / Path(path).name))
    result = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines() if str(tmp_path) in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_a_hostile_word_cannot_leave_its_quotes_in_the_unit():
    with pytest.raises(ValueError, match="should have refused"):
        render.systemd_word("a$(id)")
    assert render.systemd_word('a "b" \\ 100% ${X}y') == '"a \\"b\\" \\\\ 100%% ${X}y"'


# -- Heroku ---------------------------------------------------------------------------------
def heroku(stack: str = "dev", **extra: Any) -> settings.Settings:
    return settings.load({"platform": "heroku", **extra}, stack=stack, project_dir=ROOT, offline=True)


@pytest.mark.parametrize(("entry", "key", "said"), [
    ({"w": {"command": "x", "size": "huge"}}, "processes.w.size", "must be one of eco"),
    ({"w": {"command": "x", "size": "basic", "count": 2}}, "processes.w.count", "at most one"),
    ({"w": {"command": "x", "on": "first"}}, "processes.w.on", "number of dynos"),
    ({"w": {"command": "x", "stopTimeout": 10}}, "processes.w.stopTimeout", "30 s after SIGTERM"),
])
def test_bad_processes_on_heroku_are_refused_with_their_key(entry, key, said):
    with pytest.raises(SettingsError) as caught:
        heroku(processes=entry)
    assert any(line.startswith(f"flask-stack:{key}: ") and said in line for line in caught.value.errors), \
        caught.value.errors


def test_each_process_is_a_procfile_line_whose_words_bash_keeps(tmp_path):
    from stack import dyno

    s = heroku(app={"env": {"MOOD": "very  happy"}},
               processes={"worker": {"command": """rq worker "two words" 'it"s' 100% """
                                                """--mood=$MOOD ${MOOD} ''""",
                                     "env": {"RQ_NAME": "a b $x"}},
                          "clock": {"command": "python clock.py", "count": 0}})
    lines = dyno.procfile(s).splitlines()
    assert lines[0].startswith("web: ") and lines[1] == "clock: exec python clock.py"
    worker = lines[2].removeprefix("worker: ")
    # Run the line as Heroku does (bash), with `rq` a program that prints its argv and env.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "rq").write_text("#!/usr/bin/env python3\nimport json, os, sys\n"
                               "print(json.dumps([sys.argv[1:], os.environ['RQ_NAME']]))\n")
    (bindir / "rq").chmod(0o755)
    out = subprocess.run(["bash", "-c", worker], capture_output=True, text=True, check=True,
                         env={"PATH": f"{bindir}:/usr/bin:/bin", "MOOD": "very  happy"}).stdout
    assert json.loads(out) == [["worker", "two words", 'it"s', "100%", "--mood=very  happy",
                                "very  happy", ""], "a b $x"]


def test_each_process_is_a_formation_after_the_build_and_review_stacks_shrink_them():
    from tests.test_heroku import BUILD, FORMATION, one, run

    r = run("heroku-complete", stack="prod")
    formations = {f.inputs["type"]: f for f in r.monitor.by_type(FORMATION)}
    worker = formations["worker"]
    assert (worker.inputs["quantity"], worker.inputs["size"]) == (1, "standard-1x")
    assert one(r, BUILD).urn in worker.dependencies
    review = heroku(stack="pr-3", processes={"w": {"command": "x", "count": 4, "size": "standard-2x"}})
    assert [(p.count, p.size) for p in review.processes] == [(1, "basic")]
