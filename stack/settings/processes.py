"""`processes` and `schedules`: what runs next to the web app, from the same release.

A process is a long-running command (an RQ, Celery or Dramatiq worker, a clock) kept running by
systemd on the hosts, or a Heroku process type; a schedule is a command run at calendar times (a
systemd timer). Both take a command the way a Procfile line does without its shell: a program
and its arguments, quoted like a shell's words, where `$NAME` and `${NAME}` are the value of an
environment variable, always as one word (like "$NAME" in a shell). Pipes, `&&`, redirections,
subshells and any other `$` are refused: they need a shell, which would then be the process
systemd stops, not the worker (put such a line in a script of the app and run that).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

from stack.settings.environment import read_env, text_problem
from stack.settings.heroku import DYNO_SIZES, SMALL_DYNOS
from stack.settings.platforms import Platform
from stack.settings.reader import Reader, describe
from stack.settings.reserved import host_name_problem
from stack.settings.schema import Process, Schedule

MAX_PROCESSES = 10
MAX_SCHEDULES = 20
MAX_COMMAND = 2 * 1024  # bytes: a command line, not a script
MAX_ENTRY_ENV = 2 * 1024  # bytes of one process's env: the release step carries it
MAX_COUNT = 16  # of one process on one host (Heroku: dynos of one type)
NAME = r"[a-z][a-z0-9]*(-[a-z0-9]+)*"
MAX_NAME = 30
PLACES = ("all", "first")
# Not a process's name: the web process is the app itself, and `release` is Procfile's release phase.
TAKEN = {"web": "is the web app itself (app.* and hosts.* set it)",
         "release": "is the Procfile's release phase, which app.releaseCommand sets"}
# Variables a host gives every process besides the app's own (systemd's, and the database's).
PROVIDED = ("DATABASE_URL", "STATE_DIRECTORY", "HOME", "USER", "LOGNAME", "PATH", "INVOCATION_ID")
# Characters a shell would take as more than a word: refused outside quotes.
OPERATORS = set(";&|<>()`")
REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
# systemd's calendar shorthands (systemd.time(7)).
CALENDAR_WORDS = ("minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually",
                  "quarterly", "semiannually")
CALENDAR_CHARS = re.compile(r"[A-Za-z0-9*.,:/~+_ -]+")


def read_processes(r: Reader, p: Platform, env_names: set[str]) -> tuple[Process, ...]:
    """`processes`: NAME: {command, count, on, stopTimeout, env, size (Heroku)}."""
    out = []
    for name, section in entries(r, MAX_PROCESSES, "processes"):
        env = read_env(section)
        if sum(len(k) + len(v.encode()) + 4 for k, v in env) > MAX_ENTRY_ENV:
            section.error("env", f"holds more than {MAX_ENTRY_ENV:,} bytes; a process's own env is "
                                 "for a few settings (it travels in the release step's command): "
                                 "put the rest in app.env or app.secretEnv")
        command = read_command(section, p, env_names | {key for key, _ in env})
        count = section.integer("count", 1, 0 if not p.hosted else 1, MAX_COUNT)
        place, stop_timeout, size = "all", 30, None
        if p.hosted:
            place = section.choice("on", PLACES, "all")
            stop_timeout = section.integer("stopTimeout", 30, 1, 3600, unit="seconds")
            refuse(section, "size", "is the dyno size of a process on platform heroku; on hosts a "
                                    "process runs on the web hosts (hosts.size); remove it")
        else:
            refuse(section, "on", "has no meaning on platform heroku: count is the number of dynos "
                                  "of this process type; remove it")
            refuse(section, "stopTimeout", "has no meaning on platform heroku: Heroku gives every "
                                           "dyno 30 s after SIGTERM; remove it")
            size = section.choice("size", DYNO_SIZES, None)
            if (size or "") in SMALL_DYNOS and count > 1:
                section.error("count", f"must be 0 or 1 with {size} dynos (Heroku runs at most one "
                                       "eco or basic dyno per process type); use standard-1x or larger")
        section.finish()
        if command is not None:
            out.append(Process(name=name, command=command, count=count, on=place,
                               stop_timeout=stop_timeout, env=env, size=size))
    return tuple(out)


def read_schedules(r: Reader, p: Platform, env_names: set[str],
                   processes: tuple[Process, ...]) -> tuple[Schedule, ...]:
    """`schedules`: NAME: {command, onCalendar, on, timeout, randomDelay}; refused on Heroku."""
    if not p.hosted:
        for name in sorted(r.data, key=str):
            r.raw(name)
            r.error(str(name), "schedules are systemd timers on hosts; Heroku runs none through "
                               "its API (Heroku Scheduler is set up by hand, in its dashboard). "
                               "Run a clock process instead (processes.clock, with APScheduler or "
                               "similar) or remove it")
        return ()
    out = []
    for name, section in entries(r, MAX_SCHEDULES, "schedules"):
        if name in {proc.name for proc in processes}:
            section.error_at(section.path, "is also the name of a process; give each its own name")
        command = read_command(section, p, env_names)
        calendar = section.string("onCalendar", check=check_calendar,
                                  expect='a systemd calendar like "daily" or "*-*-* 02:30:00"')
        place = section.choice("on", PLACES, "first")
        timeout = section.integer("timeout", 3600, 1, 7 * 24 * 3600, unit="seconds")
        delay = section.integer("randomDelay", 0, 0, 24 * 3600, unit="seconds")
        section.finish()
        if command is not None and calendar is not None:
            out.append(Schedule(name=name, command=command, on_calendar=" ".join(calendar.split()), on=place,
                                timeout=timeout, random_delay=delay))
    return tuple(out)


def entries(r: Reader, limit: int, what: str) -> list[tuple[str, Reader]]:
    """The NAME: {...} entries of a map section, each name checked, sorted by name."""
    names = sorted(r.data, key=str)
    if len(names) > limit:
        r.error_at(r.path.rstrip(":"), f"has {len(names)} entries; at most {limit} fit "
                                       f"(each is a unit on every host that runs it)")
        return []
    out = []
    for name in names:
        section = r.section(str(name))
        if problem := name_problem(str(name)):
            section.error_at(section.path, problem)
            continue
        out.append((str(name), section))
    return out


def name_problem(name: str) -> str | None:
    if not re.fullmatch(NAME, name) or len(name) > MAX_NAME:
        return (f"{describe(name)} is not a name here: lower-case letters and digits, single "
                f"dashes between them, at most {MAX_NAME} characters (it names systemd units)")
    if name in TAKEN:
        return f'"{name}" {TAKEN[name]}; give this one another name'
    return None


def unit_name_problem(app: str, name: str) -> str | None:
    """Why `<app>-<name>` cannot name a unit on the hosts (it would be the host's own), or None."""
    return host_name_problem(f"{app}-{name}")


def refuse(r: Reader, name: str, why: str) -> None:
    if r.has(name):
        r.raw(name)
        r.error(name, why)


def read_command(r: Reader, p: Platform, env_names: set[str]) -> tuple[str, ...] | None:
    """`command`: its words, or None (the error recorded)."""
    text = r.string("command", expect='a command like "rq worker default"', check=check_command)
    if text is None:
        return None
    words = tuple(shlex.split(text))
    if p.hosted:
        unknown = sorted({name for word in words for name in references(word)}
                         - env_names - set(PROVIDED))
        if unknown:
            r.error("command", f"uses {', '.join('$' + n for n in unknown)}, which nothing sets on "
                               "the hosts: set it in app.env, app.secretEnv or this entry's env")
            return None
    return words


def check_command(text: str) -> str | None:
    """Why `text` is not a command of words (see the module's docstring), or None."""
    problem = text_problem(text, MAX_COMMAND, "put the steps in a script in the app and run that")
    if problem:
        return problem
    quote = None
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = None
            elif char == "`" and quote == '"':
                return "runs a command in backticks, which needs a shell: " + SCRIPT
        elif char in "'\"":
            quote = char
        elif char in OPERATORS:
            return (f"holds {char!r} outside quotes, which only a shell understands (a pipe, "
                    "&&, ;, a redirection or a subshell): " + SCRIPT)
    if quote or escaped:
        return "has an unclosed quote or a trailing backslash"
    words = shlex.split(text)
    if not words:
        return "is empty: set the program to run and its arguments"
    for word in words:
        rest = REFERENCE.sub("", word)
        if "$" in rest:
            return ("uses $ other than as $NAME or ${NAME} (a default like ${X:-y}, $(...), $1), "
                    "which needs a shell: " + SCRIPT)
    first = words[0]
    if first.startswith("-") or "=" in first or REFERENCE.search(first):
        return (f"must start with the program to run, got {describe(first)}; set variables in "
                "this entry's env")
    return None


SCRIPT = "put the line in a script of the app (e.g. bin/worker) and run that"


def references(word: str) -> list[str]:
    return [braced or bare for braced, bare in REFERENCE.findall(word)]


def check_calendar(text: str) -> str | None:
    """Why `text` is not a systemd calendar expression, or None: systemd-analyze's own verdict
    where this machine has it (it does on every host and CI machine), else the grammar's
    characters and shorthands as a first check (the hosts check the timer again)."""
    problem = text_problem(text, 256, "a calendar expression is short")
    if problem:
        return problem
    if not CALENDAR_CHARS.fullmatch(text) or not text.strip():
        return (f"{describe(text)} is not a systemd calendar expression (letters, digits and "
                "* . , : / ~ - only), like \"daily\" or \"Mon..Fri *-*-* 09:00:00\"")
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return None
    try:
        result = subprocess.run([tool, "calendar", "--", text], capture_output=True, text=True,
                                timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["it is not valid"])[-1]
        return (f"{describe(text)} is not a systemd calendar expression ({said}); see "
                "`man systemd.time`, e.g. \"daily\", \"*-*-* 02:30:00\", \"Mon..Fri 09:00\"")
    return None
