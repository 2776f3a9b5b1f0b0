#!/usr/bin/env bash
# Brings the platform up on this host: PostgreSQL, Redis, migrations, the API and the scheduler (built, in the
# background), a demo tenant, and one query a user can see. Re-running restarts them and keeps the data.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

setup_machine
ensure_database caas
migrate caas

ENV_FILE="$STATE/dev.env"
if [ ! -f "$ENV_FILE" ]; then
  say "generating the operator token and secrets key ($ENV_FILE)"
  umask 077
  cat > "$ENV_FILE" <<VARS
DATABASE_URL=$(db_url caas)
REDIS_URL=$REDIS_URL
PORT=${PORT:-4000}
HOST=${HOST:-127.0.0.1}
OPERATOR_TOKEN=caas_$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')
SECRETS_KEY=$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64"))')
VARS
fi
set -a; source "$ENV_FILE"; set +a
URL="http://$HOST:$PORT"

say "building the API and the scheduler"
(cd "$ROOT" && quietly node tools/build.mjs api && quietly node tools/build.mjs scheduler)

# Starts (or restarts) one built app in the background: its pid in .caas/<app>.pid, its log in .caas/<app>.log.
start_app() {
  local app=$1 pidfile="$STATE/$1.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "stopping the previous $app (pid $(cat "$pidfile"))"
    kill "$(cat "$pidfile")"; while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.2; done
  fi
  say "starting the $app (log: .caas/$app.log)"
  nohup node "$ROOT/dist/$app/apps/$app/src/main.js" >>"$STATE/$app.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

cd "$ROOT"
start_app api
for _ in $(seq 1 60); do
  node -e "fetch('$URL/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" && break
  kill -0 "$(cat "$STATE/api.pid")" 2>/dev/null || { tail -20 "$STATE/api.log"; die "the API exited"; }
  sleep 0.5
done
node -e "fetch('$URL/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" || die "the API is not ready; see .caas/api.log"
start_app scheduler
sleep 1
kill -0 "$(cat "$STATE/scheduler.pid")" 2>/dev/null || { tail -20 "$STATE/scheduler.log"; die "the scheduler exited"; }

GQL=(node "$ROOT/scripts/gql.mjs" "$URL/graphql")
if [ -z "${DEMO_TOKEN:-}" ]; then
  say "creating the demo tenant"
  slug="demo-$(node -e 'process.stdout.write(require("crypto").randomBytes(3).toString("hex"))')"
  out="$("${GQL[@]}" "$OPERATOR_TOKEN" 'mutation($slug: String!) { createTenant(input: { slug: $slug, displayName: "Demo tenant", ownerEmail: "owner@demo.example" }) { ownerToken tenant { slug } } }' "{\"slug\":\"$slug\"}")"
  DEMO_TOKEN="$(node -e 'console.log(JSON.parse(process.argv[1]).data.createTenant.ownerToken)' "$out")"
  echo "DEMO_TOKEN=$DEMO_TOKEN" >> "$ENV_FILE"
fi

say "the demo tenant asks who it is:"
"${GQL[@]}" "$DEMO_TOKEN" '{ viewer { kind role tenant { slug displayName status subnet networkId quota { maxPods maxVcpus maxMemoryMiB usedPods } } } }'

cat <<MSG

The platform API is up: $URL/graphql  (health: $URL/healthz, readiness: $URL/readyz)
  operator token:  $OPERATOR_TOKEN
  demo tenant token (OWNER): $DEMO_TOKEN
Both are also in .caas/dev.env. Try:
  node scripts/gql.mjs $URL/graphql \$DEMO_TOKEN '{ tenant { slug subnet } apiTokens { edges { node { name prefix role } } } }'
  curl -s $URL/graphql -H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json' \\
       -d '{"query":"{ tenants { totalCount edges { node { slug status } } } }"}'
The scheduler runs beside it (places pods once nodes have joined; log: .caas/scheduler.log).
Stop both with: kill \$(cat .caas/api.pid) \$(cat .caas/scheduler.pid)
MSG
