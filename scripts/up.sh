#!/usr/bin/env bash
# Brings the platform up on this host: PostgreSQL, Redis, migrations, the API, the scheduler and one node agent
# (built, in the background), a demo tenant and a demo pod booted as a VM from a local registry, its status and
# output. Re-running restarts the processes and keeps the data (and the pod, started again if it is not running).
#
#   scripts/up.sh        # (npm run up) up, as above
#   scripts/up.sh down   # stops what `up` started: the API, the scheduler, the agent, its VMs and the demo registry
#                        # (the data stays; the next `up` starts the demo pod again)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Stops the process whose pid is in .caas/<name>.pid, waiting up to 10 s before SIGKILL.
stop_pidfile() {
  local pidfile="$STATE/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping the $1 (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
}

if [ "${1:-}" = down ]; then
  for app in agent scheduler api; do stop_pidfile "$app"; done
  # A stopped agent leaves its VMs running (by design): this host's are the QEMUs with files in .caas/agent.
  if pkill -f "qemu-system-x86_64 .*$STATE/agent/"; then
    say "stopping the agent's VMs"
    for _ in $(seq 1 50); do pgrep -f "qemu-system-x86_64 .*$STATE/agent/" >/dev/null || break; sleep 0.2; done
    pkill -KILL -f "qemu-system-x86_64 .*$STATE/agent/" || true
  fi
  bash "$ROOT/scripts/demo-registry.sh" stop
  say "stopped; the data is kept (PostgreSQL database caas, .caas/): npm run up starts it all again"
  exit 0
fi
[ -z "${1:-}" ] || die "usage: scripts/up.sh [down]"

setup_machine
ensure_database caas
migrate caas

ENV_FILE="$STATE/dev.env"
if [ ! -f "$ENV_FILE" ]; then
  say "generating the operator token and secrets key ($ENV_FILE)"
  # Only the file is private: a umask left at 077 would reach the agent, whose VM directories must be 0711.
  (umask 077; cat > "$ENV_FILE") <<VARS
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

say "building the API, the scheduler, the agent and the guest kernel and initrd"
(cd "$ROOT" && quietly node tools/build.mjs api && quietly node tools/build.mjs scheduler && quietly node tools/build.mjs agent)
(cd "$ROOT" && quietly bash runtime/guest/build.sh)

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

# One node agent on this host. It joins once with a one-time token and keeps its identity in .caas/agent.
# TCG is allowed here because KVM is not usable on development machines like this one: it is not a security
# boundary, and the agent says so in its log.
field() { node -e 'let v=JSON.parse(process.argv[1]);for(const k of process.argv[2].split("."))v=v?.[k];console.log(v??"")' "$1" "$2"; }
AGENT_STATE="$STATE/agent"
if [ ! -f "$AGENT_STATE/identity.json" ]; then
  out="$("${GQL[@]}" "$OPERATOR_TOKEN" 'mutation { createNodeJoinToken(input: {}) { token } }')"
  export JOIN_TOKEN="$(field "$out" data.createNodeJoinToken.token)"
fi
export API_URL="$URL" STATE_DIR="$AGENT_STATE" ALLOW_TCG=true NODE_NAME="${NODE_NAME:-dev-$(hostname -s | tr 'A-Z_' 'a-z-' | cut -c1-50)}"
export GUEST_KERNEL="$ROOT/dist/guest/kernel" GUEST_INITRD="$ROOT/dist/guest/initrd.cpio"
start_app agent
for _ in $(seq 1 120); do
  status="$(field "$("${GQL[@]}" "$OPERATOR_TOKEN" '{ nodes { edges { node { name status } } } }')" data.nodes.edges.0.node.status)"
  [ "$status" = READY ] && break
  kill -0 "$(cat "$STATE/agent.pid")" 2>/dev/null || { tail -20 "$STATE/agent.log"; die "the agent exited"; }
  sleep 0.5
done
[ "$status" = READY ] || die "the node did not become READY; see .caas/agent.log"
say "node $NODE_NAME joined and is READY"

IMAGE="$(bash "$ROOT/scripts/demo-registry.sh" push)"
out="$("${GQL[@]}" "$DEMO_TOKEN" '{ pods(first: 1) { edges { node { id } } } }')"
POD_ID="$(field "$out" data.pods.edges.0.node.id)"
if [ -z "$POD_ID" ]; then
  say "the demo tenant creates a pod from $IMAGE"
  out="$("${GQL[@]}" "$DEMO_TOKEN" 'mutation($image: String!) { createPod(input: { name: "hello", vcpus: 1, memoryMiB: 256, containers: [{ name: "hello", image: $image }] }) { id } }' "{\"image\":\"$IMAGE\"}")"
  POD_ID="$(field "$out" data.createPod.id)"
else
  phase="$(field "$("${GQL[@]}" "$DEMO_TOKEN" 'query($id: ID!) { pod(id: $id) { phase } }' "{\"id\":\"$POD_ID\"}")" data.pod.phase)"
  case "$phase" in
    STOPPED|SUCCEEDED|FAILED)
      say "the demo pod is $phase: starting it again"
      "${GQL[@]}" "$DEMO_TOKEN" 'mutation($id: ID!) { startPod(id: $id) { id } }' "{\"id\":\"$POD_ID\"}" >/dev/null ;;
  esac
fi
for _ in $(seq 1 240); do
  phase="$(field "$("${GQL[@]}" "$DEMO_TOKEN" 'query($id: ID!) { pod(id: $id) { phase } }' "{\"id\":\"$POD_ID\"}")" data.pod.phase)"
  case "$phase" in RUNNING|FAILED) break ;; esac
  sleep 0.5
done
say "the demo pod, booted as its own VM on this host:"
"${GQL[@]}" "$DEMO_TOKEN" 'query($id: ID!) { pod(id: $id) { name phase nodeName ip accelerator containers { name phase restartCount } } }' "{\"id\":\"$POD_ID\"}"
[ "$phase" = RUNNING ] || die "the demo pod is $phase; see .caas/agent.log"
# Its first line reaches podLogs a moment after RUNNING (the agent ships the VM's output in batches).
for _ in $(seq 1 60); do
  out="$("${GQL[@]}" "$DEMO_TOKEN" 'query($id: ID!) { podLogs(podId: $id, tail: 10) { line } }' "{\"id\":\"$POD_ID\"}" || true)"
  case "$out" in *'"line"'*) break ;; esac
  sleep 0.5
done
say "its output (podLogs):"
"${GQL[@]}" "$DEMO_TOKEN" 'query($id: ID!) { podLogs(podId: $id, tail: 10) { container stream line } }' "{\"id\":\"$POD_ID\"}" || true

cat <<MSG

The platform is up on this host: the API ($URL/graphql), the scheduler and one node agent running the demo pod.
  operator token:  $OPERATOR_TOKEN
  demo tenant token (OWNER): $DEMO_TOKEN
Both are also in .caas/dev.env. Try (the demo tenant's view):
  source .caas/dev.env
  node scripts/gql.mjs $URL/graphql \$DEMO_TOKEN '{ pods { edges { node { name phase nodeName ip } } } }'
  node scripts/gql.mjs $URL/graphql \$DEMO_TOKEN 'query { events(first: 20) { edges { node { reason message } } } }'
  node scripts/gql.mjs $URL/graphql \$DEMO_TOKEN 'query { podLogs(podId: "$POD_ID") { container stream line } }'
  curl -s $URL/graphql -H "authorization: Bearer $DEMO_TOKEN" -H 'content-type: application/json' \\
       -d '{"query":"{ viewer { role tenant { slug } } }"}'
and as the operator:
  curl -s $URL/graphql -H "authorization: Bearer $OPERATOR_TOKEN" -H 'content-type: application/json' \\
       -d '{"query":"{ nodes { edges { node { name status accelerator } } } }"}'
Logs: .caas/api.log, .caas/scheduler.log, .caas/agent.log. Stop it all (the API, the scheduler, the agent, its VMs
and the demo registry; the data is kept): bash scripts/up.sh down
MSG
