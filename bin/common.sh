# Shared by bin/deploy and bin/test: the project's Python environment, made or refreshed.
# Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

find_python() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# Creates .venv and installs requirements.txt into it; a no-op when nothing changed.
ensure_venv() {
  local python stamp want
  python=$(find_python) || die "Python 3.11 or newer is needed (apt-get install python3 python3-venv)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "setting up $VENV ..."
    "$python" -m venv "$VENV" || die "could not create $VENV (apt-get install python3-venv)"
  fi
  stamp="$VENV/.requirements.sha256"
  want=$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing requirements.txt into $VENV ..."
    # (this machine's pip may warn about local package folders it does not have: not ours)
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt" \
      2> >(grep -v "^WARNING: Location 'file:" >&2) \
      || die "pip install -r requirements.txt failed (see above)"
    echo "$want" > "$stamp"
  fi
}

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
