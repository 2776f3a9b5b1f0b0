# Shared by up.sh and test.sh: make a fresh Debian machine able to run the platform. Idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.caas"
mkdir -p "$STATE"

: "${CAAS_DB_USER:=caas}"
: "${CAAS_DB_PASSWORD:=caas}"
: "${CAAS_DB_HOST:=127.0.0.1}"
: "${CAAS_DB_PORT:=5432}"
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
# Runs a noisy step quietly; shows its output only when it fails.
quietly() { local out; out="$("$@" 2>&1)" || { printf '%s\n' "$out" >&2; die "failed: $*"; }; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi; }

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_node() {
  command -v node >/dev/null || die "Node.js 20 is needed (https://nodejs.org or Debian's nodejs package)"
  local major; major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || die "Node.js $major is too old: 20 or newer is needed"
}

ensure_postgres() {
  apt_install postgresql postgresql-client
  if ! pg_isready -q -h "$CAAS_DB_HOST" -p "$CAAS_DB_PORT"; then
    say "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h "$CAAS_DB_HOST" -p "$CAAS_DB_PORT" && break; sleep 1; done
    pg_isready -q -h "$CAAS_DB_HOST" -p "$CAAS_DB_PORT" || die "PostgreSQL did not start"
  fi
  # The platform's own role (password auth works with Debian's default pg_hba and with trust alike).
  local sql="DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$CAAS_DB_USER') THEN
    CREATE ROLE $CAAS_DB_USER LOGIN CREATEDB PASSWORD '$CAAS_DB_PASSWORD'; END IF; END \$\$;"
  if PGCONNECT_TIMEOUT=3 psql -h "$CAAS_DB_HOST" -p "$CAAS_DB_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    psql -h "$CAAS_DB_HOST" -p "$CAAS_DB_PORT" -U postgres -d postgres -qc "$sql" >/dev/null
  else
    as_root runuser -u postgres -- psql -p "$CAAS_DB_PORT" -d postgres -qc "$sql" >/dev/null
  fi
}

db_url() { echo "postgresql://$CAAS_DB_USER:$CAAS_DB_PASSWORD@$CAAS_DB_HOST:$CAAS_DB_PORT/$1"; }

ensure_database() {
  local name="$1"
  if ! psql "$(db_url postgres)" -Atqc "select 1 from pg_database where datname = '$name'" | grep -q 1; then
    psql "$(db_url postgres)" -qc "CREATE DATABASE \"$name\"" >/dev/null
  fi
}

ensure_redis() {
  apt_install redis-server redis-tools
  local host port
  host="$(node -e 'const u=new URL(process.argv[1]);console.log(u.hostname)' "$REDIS_URL")"
  port="$(node -e 'const u=new URL(process.argv[1]);console.log(u.port||6379)' "$REDIS_URL")"
  if ! redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG; then
    say "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 30); do redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.5; done
    redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG || die "Redis did not start"
  fi
}

ensure_node_modules() {
  local stamp="$ROOT/node_modules/.caas-lock-hash" want
  want="$(sha256sum "$ROOT/package-lock.json" | cut -c1-64)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing Node dependencies (npm ci)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
  fi
  say "generating the Prisma client"
  (cd "$ROOT" && CHECKPOINT_DISABLE=1 quietly npx nx run prisma:db:generate --skip-nx-cache)
}

migrate() {
  say "applying migrations to $1"
  (cd "$ROOT" && CHECKPOINT_DISABLE=1 DATABASE_URL="$(db_url "$1")" quietly npx prisma migrate deploy)
}

setup_machine() {
  ensure_node
  # Network tests apply real nftables rulesets inside namespaces they create.
  apt_install nftables iproute2 iperf3 conntrack
  # Pod VMs: QEMU, the Go toolchain for the guest agent, what builds the initrd and root filesystem images.
  apt_install qemu-system-x86 golang-go busybox-static cpio e2fsprogs erofs-utils util-linux lz4
  # OCI image tests: a real registry (docker-registry; htpasswd from apache2-utils for its bcrypt Basic auth file).
  apt_install docker-registry skopeo umoci openssl apache2-utils
  ensure_postgres
  ensure_redis
  ensure_node_modules
}
