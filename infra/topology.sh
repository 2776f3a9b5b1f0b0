#!/usr/bin/env bash
# A multi-host topology on one machine, for development: N simulated hosts beside the control plane of
# `npm run up`. A simulated host is a real agent process in the root network namespace (so it reaches the API
# and Redis on loopback) with its own state directory, its own VM uid range and its own host network namespace
# (HOST_NETNS), which it runs its VMs in; the hosts share an underlay (a bridge in the namespace caas-fabric), so
# a tenant's pods on different hosts reach each other over VXLAN (ADR-006).
#
#   infra/topology.sh up [N]      # hosts sim-1 … sim-N (default 2): joined, READY; starts the control plane if
#                                 # it is not answering (scripts/up.sh)
#   infra/topology.sh status      # the nodes as the control plane sees them; each host's agent, VMs, namespace
#   infra/topology.sh kill I      # host sim-I dies: its agent and every VM of it killed at once (its pods move)
#   infra/topology.sh start I     # host sim-I comes back (same identity, a new epoch if it was declared lost)
#   infra/topology.sh down        # every host drained (its pods move or wait), stopped, VMs, namespaces and
#                                 # state removed (each host's identity is kept for the next `up`)
#
# State: .caas/topology/sim-<i>/ (identity, VMs, image cache), logs .caas/topology/sim-<i>.log.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

TOPOLOGY="$STATE/topology"
ENV_FILE="$STATE/dev.env"
UID_BASE=430000 # sim-<i> runs its VMs as uids UID_BASE + i·1000 … + 999, clear of `npm run up`'s agent (420000…)

load_env() {
  [ -f "$ENV_FILE" ] || return 1
  set -a; source "$ENV_FILE"; set +a
  URL="http://${HOST:-127.0.0.1}:${PORT:-4000}"
  node -e "fetch('$URL/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
}

gql() { node "$ROOT/scripts/gql.mjs" "$URL/graphql" "$OPERATOR_TOKEN" "$@"; }
field() { node -e 'let v=JSON.parse(process.argv[1]);for(const k of process.argv[2].split("."))v=v?.[k];console.log(v??"")' "$1" "$2"; }
hosts() { find "$TOPOLOGY" -mindepth 1 -maxdepth 1 -type d -name 'sim-*' -printf '%f\n' 2>/dev/null | sort -V; }
agent_pid() { local f="$TOPOLOGY/$1.pid"; if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then cat "$f"; fi; }
vm_pids() { pgrep -f "qemu-system-x86_64 .*$TOPOLOGY/$1/" || true; }
# A field of the node named $1 as the control plane sees it (empty when there is no such node).
node_field() {
  gql '{ nodes(first: 100) { edges { node { id name status } } } }' |
    node -e 'const a=JSON.parse(require("fs").readFileSync(0,"utf8"));const n=(a.data?.nodes.edges??[]).find(e=>e.node.name===process.argv[1]);console.log(n?n.node[process.argv[2]]:"")' "$1" "$2"
}

FABRIC=caas-fabric # the underlay between the simulated hosts: a bridge in its own namespace

# Plugs host sim-<i> into the fabric (once): its namespace with ul0 (192.168.77.<10+i>/24, the VTEP address) on the
# fabric's bridge, and up0, an uplink that leads nowhere (tenant egress has no way out of this machine).
plug_host() {
  local name=$1 i=${1#sim-} ns="caas-$1"
  if ! ip netns list | grep -qw "$FABRIC"; then
    ip netns add "$FABRIC" && ip -n "$FABRIC" link add br0 type bridge && ip -n "$FABRIC" link set br0 up
  fi
  ip netns list | grep -qw "$ns" || ip netns add "$ns"
  if ! ip -n "$ns" link show ul0 >/dev/null 2>&1; then
    ip -n "$FABRIC" link add "f-$name" type veth peer name ul0 netns "$ns"
    ip -n "$FABRIC" link set "f-$name" master br0 up
    ip -n "$ns" addr add "192.168.77.$((10 + i))/24" dev ul0
    ip -n "$ns" link set ul0 up
    ip -n "$FABRIC" link add "u-$name" type veth peer name up0 netns "$ns"
    ip -n "$ns" link set up0 up
  fi
}

start_host() {
  local name=$1 i=${1#sim-} dir="$TOPOLOGY/$1"
  [ -n "$(agent_pid "$name")" ] && { say "$name is already running (pid $(agent_pid "$name"))"; return; }
  mkdir -p "$dir"
  local token=""
  if [ ! -f "$dir/identity.json" ]; then
    token="$(field "$(gql 'mutation($input: CreateNodeJoinTokenInput!) { createNodeJoinToken(input: $input) { token } }' \
      "{\"input\":{\"labels\":[{\"key\":\"topology.caas.dev/zone\",\"value\":\"zone-$(( (i - 1) % 2 + 1 ))\"}]}}")" \
      data.createNodeJoinToken.token)"
    [ -n "$token" ] || die "could not issue a join token for $name"
  fi
  plug_host "$name"
  say "starting $name (netns caas-$name, VTEP 192.168.77.$((10 + i)), VM uids $((UID_BASE + i * 1000))+, log .caas/topology/$name.log)"
  env -i PATH="$PATH" API_URL="$URL" REDIS_URL="$REDIS_URL" STATE_DIR="$dir" NODE_NAME="$name" \
    ${token:+JOIN_TOKEN="$token"} HOST_NETNS="caas-$name" VM_UID_BASE=$((UID_BASE + i * 1000)) VM_UID_COUNT=1000 \
    NODE_VCPUS="${SIM_VCPUS:-2}" NODE_MEMORY_MIB="${SIM_MEMORY_MIB:-2048}" NODE_PODS="${SIM_PODS:-4}" \
    ALLOW_TCG=true GUEST_KERNEL="$ROOT/dist/guest/kernel" GUEST_INITRD="$ROOT/dist/guest/initrd.cpio" \
    IMAGE_CACHE_LIMIT_BYTES=$((2 * 1024 * 1024 * 1024)) \
    UNDERLAY_IFNAME=ul0 UNDERLAY_ADDRESS="192.168.77.$((10 + i))" UPLINK_IFNAME=up0 TENANT_NETNS_PREFIX="$name-t" \
    nohup node "$ROOT/dist/agent/apps/agent/src/main.js" >>"$TOPOLOGY/$name.log" 2>&1 </dev/null &
  echo $! >"$TOPOLOGY/$name.pid"
}

wait_ready() {
  local name=$1 status=""
  for _ in $(seq 1 240); do
    status="$(node_field "$name" status)"
    [ "$status" = READY ] && { say "$name is READY"; return; }
    [ -n "$(agent_pid "$name")" ] || { tail -20 "$TOPOLOGY/$name.log" >&2; die "the agent of $name exited"; }
    sleep 0.5
  done
  die "$name is ${status:-unknown}, not READY; see .caas/topology/$name.log"
}

up() {
  local count=${1:-2}
  [[ "$count" =~ ^[1-9][0-9]?$ ]] || die "usage: infra/topology.sh up [N]  (1–99 hosts)"
  load_env || { say "the control plane is not answering: bringing it up (scripts/up.sh)"; bash "$ROOT/scripts/up.sh"; load_env || die "the API is not ready"; }
  [ -f "$ROOT/dist/agent/apps/agent/src/main.js" ] || (cd "$ROOT" && quietly node tools/build.mjs agent)
  mkdir -p "$TOPOLOGY"
  for i in $(seq 1 "$count"); do start_host "sim-$i"; done
  for i in $(seq 1 "$count"); do wait_ready "sim-$i"; done
  status
}

status() {
  load_env || die "the control plane is not answering (npm run up)"
  say "nodes, as the control plane sees them:"
  gql '{ nodes(first: 100) { edges { node { name status epoch labels { key value } } } } }' |
    node -e 'for (const {node: n} of JSON.parse(require("fs").readFileSync(0,"utf8")).data.nodes.edges) console.log(`  ${n.name.padEnd(24)} ${n.status.padEnd(10)} epoch ${n.epoch}  ${n.labels.map(l=>`${l.key}=${l.value}`).join(",")}`)'
  say "simulated hosts on this machine:"
  for name in $(hosts); do
    local pid vms
    pid="$(agent_pid "$name")"
    vms="$(vm_pids "$name" | wc -l)"
    printf '  %-8s agent %-8s %s VM(s) in netns caas-%s\n' "$name" "${pid:-stopped}" "$vms" "$name"
  done
}

kill_host() {
  local name="sim-${1:?usage: infra/topology.sh kill I}"
  [ -d "$TOPOLOGY/$name" ] || die "no host $name"
  say "$name dies: its agent and its $(vm_pids "$name" | wc -l) VM(s) killed"
  local pid; pid="$(agent_pid "$name")"
  [ -n "$pid" ] && kill -KILL "$pid"
  pkill -KILL -f "qemu-system-x86_64 .*$TOPOLOGY/$name/" || true
  rm -f "$TOPOLOGY/$name.pid"
}

down() {
  load_env || true
  for name in $(hosts); do
    if [ -n "${URL:-}" ] && [ -n "$(agent_pid "$name")" ]; then
      local id; id="$(node_field "$name" id)"
      # Told to drain, the scheduler moves the host's pods away (to other hosts, or PENDING if there is none).
      [ -n "$id" ] && gql 'mutation($id: ID!) { drainNode(id: $id) { name status } }' "{\"id\":\"$id\"}" >/dev/null || true
      for _ in $(seq 1 60); do [ -z "$(vm_pids "$name")" ] && break; sleep 0.5; done
    fi
    local pid; pid="$(agent_pid "$name")"
    if [ -n "$pid" ]; then
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    pkill -KILL -f "qemu-system-x86_64 .*$TOPOLOGY/$name/" || true
    for ns in $(ip netns list | awk '{print $1}' | grep "^$name-t" || true); do ip netns delete "$ns"; done
    ip netns delete "caas-$name" 2>/dev/null || true
    # The identity stays: the node (same name) comes back with `up` (a second join of a name is refused).
    find "${TOPOLOGY:?}/$name" -mindepth 1 -maxdepth 1 ! -name identity.json -exec rm -rf {} +
    rm -f "$TOPOLOGY/$name.pid"
    say "$name stopped and cleaned up (its node stays in the control plane, NOT_READY once its lease runs out)"
  done
  ip netns delete "$FABRIC" 2>/dev/null || true
}

case "${1:-}" in
  up) up "${2:-2}" ;;
  status) status ;;
  kill) kill_host "${2:-}" ;;
  start) load_env || die "the control plane is not answering (npm run up)"; start_host "sim-${2:?usage: infra/topology.sh start I}"; wait_ready "sim-$2" ;;
  down) down ;;
  *) die "usage: infra/topology.sh up [N] | status | kill I | start I | down" ;;
esac
