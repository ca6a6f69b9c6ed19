# Sourced by the scripts beside it (not run): the project's paths, messages for the GitHub log,
# and the runner's own address.
# shellcheck shell=bash

# shellcheck disable=SC2034  # ROOT and PY are for the scripts that source this file
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY="$ROOT/.venv/bin/python"  # made by .github/actions/setup (or bin/test on a workstation)

say() { printf '%s\n' "$*" >&2; }
# A one-line notice or error, shown on the workflow run's summary page.
notice() { printf '::notice title=%s::%s\n' "$1" "$2"; }
fail() { printf '::error::%s\n' "$*"; exit 1; }

# Sets a step output (a no-op outside GitHub Actions).
output() {
  if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s=%s\n' "$1" "$2" >> "$GITHUB_OUTPUT"; fi
}

# This runner's public IPv4 address as a /32, for ssh.adminCidrs. RUNNER_CIDR overrides it (a
# self-hosted runner whose address is known, and the tests).
runner_cidr() {
  if [ -n "${RUNNER_CIDR:-}" ]; then printf '%s\n' "$RUNNER_CIDR"; return; fi
  local ip
  ip=$(curl -fsS --max-time 15 --retry 3 https://checkip.amazonaws.com | tr -d '[:space:]') ||
    fail "could not find this runner's public address (https://checkip.amazonaws.com)"
  [[ $ip =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || fail "https://checkip.amazonaws.com answered '$ip', not an IPv4 address"
  printf '%s/32\n' "$ip"
}
