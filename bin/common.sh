# Shared by bin/deploy and bin/test: the project's Python environment, made or refreshed.
# Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Sets PYTHON to a Python 3.11 or newer (once: later calls keep it), or dies saying what to install.
PYTHON=""
find_python() {
  local candidate
  [ -n "$PYTHON" ] && return 0
  for candidate in python3.11 python3.12 python3.13 python3; do
    # (the interpreter itself, not a launcher such as pyenv's shim: it starts in a third the time)
    if command -v "$candidate" >/dev/null 2>&1 && PYTHON=$("$candidate" -c \
        'import sys; print(sys.executable) if sys.version_info >= (3, 11) else sys.exit(1)' 2>/dev/null) &&
        [ -n "$PYTHON" ]; then
      return 0
    fi
  done
  die "Python 3.11 or newer is needed (apt-get install python3 python3-venv)"
}

# check_lock PINS LOCK [versions]: refuses (with what to run) when LOCK was not made from PINS as
# it is now: every `name==version` in PINS must be in LOCK at that version, and every package
# LOCK has from a `-r` file (a direct pin) must still be in PINS. With `versions` (PINS is another
# lock), only the first.
check_lock() {
  local pins=$1 lock=$2 mode=${3:-} file
  find_python
  for file in "$pins" "$lock"; do
    [ -f "$file" ] || die "${file#"$ROOT/"} is missing: run bin/lock to make the lock files"
  done
  "$PYTHON" - "$pins" "$lock" "${pins#"$ROOT/"}" "${lock#"$ROOT/"}" "$mode" <<'PY' || exit 1
import re, sys
pins_path, lock_path, pins_name, lock_name, mode = sys.argv[1:]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
def key(name): return re.sub(r"[-_.]+", "-", name).lower()
def read(path):
    pins, direct, last = {}, set(), None
    for line in open(path, encoding="utf-8"):
        found = PIN.match(line)
        if found:
            last = key(found[1])
            pins[last] = found[2]
        elif last and re.match(r"^\s*#\s*(via\s+)?-r\s", line):
            direct.add(last)
    return pins, direct
want, _ = read(pins_path)
have, direct = read(lock_path)
wrong = [f"{n}=={v} (the lock has {have[n] if n in have else 'none'})"
         for n, v in sorted(want.items()) if have.get(n) != v]
if mode != "versions":
    wrong += [f"{n}=={have[n]} is in the lock, no longer in {pins_name}" for n in sorted(direct - set(want))]
if wrong:
    print(f"error: {lock_name} does not match {pins_name}:\n  " + "\n  ".join(wrong)
          + f"\nrun bin/lock to make the lock again (docs/security.md, \"Locked dependencies\")",
          file=sys.stderr)
    sys.exit(1)
PY
}

# sync_venv DIR REQUIREMENTS [any]: creates the virtualenv DIR and installs the lock made from
# REQUIREMENTS (a path under the project: requirements.txt -> requirements.lock) into it, every
# file checked against the lock's sha256 (pip --require-hashes). The build tools come first, from
# requirements-build.lock, so an sdist in the lock builds with them (--no-build-isolation), not
# with tools pip would fetch unchecked (--use-pep517: Debian 12's pip 23.0 would otherwise run the
# deprecated `setup.py install` for an sdist with no pyproject.toml). A no-op when the locks have
# not changed since. It refuses a lock that no longer matches REQUIREMENTS (check_lock) unless
# told `any` (bin/lock, which needs the venv's uv to make the lock again).
sync_venv() {
  local dir=$1 requirements=$2 drift=${3:-} stamp want lock build name
  lock=${requirements%.txt}.lock
  build="$ROOT/requirements-build.lock"
  name=${lock#"$ROOT/"}
  if [ "$drift" != any ]; then
    check_lock "$requirements" "$lock"
    check_lock "$build" "$lock" versions
  fi
  find_python
  if [ ! -x "$dir/bin/python" ]; then
    say "setting up $dir ..."
    "$PYTHON" -m venv "$dir" || die "could not create $dir (apt-get install python3-venv)"
  fi
  stamp="$dir/.lock.sha256"
  want=$(cat "$build" "$lock" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing $name into $dir ..."
    # (this machine's pip may warn about local package folders it does not have: not ours)
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
      -r "$build" 2> >(grep -v "^WARNING: Location 'file:" >&2) \
      || die "pip install --require-hashes -r ${build#"$ROOT/"} failed (see above)"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
      --no-build-isolation --use-pep517 -r "$lock" 2> >(grep -v "^WARNING: Location 'file:" >&2) \
      || die "pip install --require-hashes -r $name failed (see above)"
    echo "$want" > "$stamp"
  fi
}

# Creates .venv and installs requirements.lock into it; a no-op when nothing changed.
ensure_venv() { sync_venv "$VENV" "$ROOT/requirements.txt"; }

# For bin/lock, which needs uv: .venv as it is when it has one, else as the lock in hand has it,
# even when requirements.txt has moved on since.
ensure_venv_unlocked() {
  [ -x "$VENV/bin/uv" ] && return 0
  sync_venv "$VENV" "$ROOT/requirements.txt" any
}

# The policy pack's own virtualenv, policy/venv (PulumiPolicy.yaml names it), from
# policy/requirements.lock: the CLI runs the pack with it and does not make it (docs/policy.md).
ensure_policy_venv() { sync_venv "$ROOT/policy/venv" "$ROOT/policy/requirements.txt"; }

# Installs Debian packages that are missing (needs root or sudo).
ensure_apt() {
  local missing=() pkg sudo=""
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing packages: ${missing[*]} (install them as root)"
    sudo="sudo"
  fi
  say "installing ${missing[*]} ..."
  $sudo apt-get update -qq || die "apt-get update failed"
  # Packages are installed, not started: the tests run their own instances on loopback.
  $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}
