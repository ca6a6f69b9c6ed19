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

# Creates the virtualenv VENV_DIR and installs REQUIREMENTS (a path under the project) into it;
# a no-op when that file has not changed since.
sync_venv() {
  local dir=$1 requirements=$2 python stamp want name
  name=${requirements#"$ROOT/"}
  python=$(find_python) || die "Python 3.11 or newer is needed (apt-get install python3 python3-venv)"
  if [ ! -x "$dir/bin/python" ]; then
    say "setting up $dir ..."
    "$python" -m venv "$dir" || die "could not create $dir (apt-get install python3-venv)"
  fi
  stamp="$dir/.requirements.sha256"
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing $name into $dir ..."
    # (this machine's pip may warn about local package folders it does not have: not ours)
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
      2> >(grep -v "^WARNING: Location 'file:" >&2) \
      || die "pip install -r $name failed (see above)"
    echo "$want" > "$stamp"
  fi
}

# Creates .venv and installs requirements.txt into it; a no-op when nothing changed.
ensure_venv() { sync_venv "$VENV" "$ROOT/requirements.txt"; }

# The policy pack's own virtualenv, policy/venv (PulumiPolicy.yaml names it), from
# policy/requirements.txt: the CLI runs the pack with it and does not make it (docs/policy.md).
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
