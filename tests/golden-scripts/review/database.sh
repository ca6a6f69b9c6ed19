set -Eeuo pipefail
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "flask-stack: database on host web-0 (203.0.113.10): $*" >&2; exit 1; }
failed() { local rc=$?; echo "flask-stack: database on host web-0 (203.0.113.10) failed (exit $rc) running: $BASH_COMMAND" >&2; }
trap failed ERR
command -v psql >/dev/null 2>&1 || fail "psql is missing (bootstrap installs postgresql-client)"
while IFS='=' read -r key value; do
  case $key in PGHOST|PGPORT|PGUSER|PGPASSWORD|PGSSLMODE) export "$key=$value" ;; esac
done
export PGDATABASE=appdb PGCONNECT_TIMEOUT=10
deadline=$((SECONDS + 300))
until err=$(psql -X -q -At -c 'select 1' 2>&1 >/dev/null); do
  if [ $SECONDS -ge $deadline ]; then
    fail "cannot reach the database at $PGHOST:$PGPORT (database appdb) as $PGUSER after 300 s: $err"
  fi
  sleep 5
done
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
GRANT ALL PRIVILEGES ON DATABASE "appdb" TO "appuser";
GRANT ALL ON SCHEMA public TO "appuser";
SQL
echo "flask-stack: database appdb: user appuser may create its tables"
